"""Fixtures of the security suite: the throwaway packages on ``sys.path``, warmed up."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator

import pytest

from tests.security.secsupport import (
    LAZY,
    LOOKALIKE,
    NARROW,
    OUTSIDE,
    TARGET,
    Packages,
    entry,
    exit_,
    forget_packages,
    replay_file,
    write_packages,
    write_trace,
)


@pytest.fixture(scope="session")
def packages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Packages]:
    """The suite's packages, importable, with the target already imported and replayed once.

    Warming up first means a later ``sys.modules`` comparison sees only what a
    hostile trace caused, not the engine's own lazy imports.
    """
    root = tmp_path_factory.mktemp("security-packages")
    made = write_packages(root)
    sys.path.insert(0, str(root))
    try:
        importlib.import_module(f"{TARGET}.app")
        trace = write_trace(root / "warmup.jsonl",
                            [entry(f"{TARGET}.app", "add", {"a": 1, "b": 2}), exit_("add", 3)])
        warm = replay_file(trace, (TARGET,)).only
        assert warm.status == "passed", warm.message
        assert made.marks() == [], made.marks()
        yield made
    finally:
        sys.path.remove(str(root))
        forget_packages()


@pytest.fixture(autouse=True)
def fresh_marker(packages: Packages) -> Iterator[None]:
    """Each test sees only its own side effects: an earlier leak must not fail a later test."""
    packages.marker.unlink(missing_ok=True)
    for name in list(sys.modules):
        if name.split(".")[0] in (OUTSIDE, LOOKALIKE) or name in (f"{NARROW}.danger",
                                                                  f"{LAZY}.heavy"):
            del sys.modules[name]
    yield
