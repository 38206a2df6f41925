"""The one assertion every hostile trace must pass: refused, clearly, with no side effect."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Final

from tests.security.hostile_corpus import Hostile
from tests.security.secsupport import (
    LOOKALIKE,
    NARROW,
    OUTSIDE,
    Packages,
    outside_targets,
    replay_file,
    write_trace,
)

NEVER_IMPORTED: Final = ("antigravity", "this", "webbrowser", OUTSIDE, f"{OUTSIDE}.tools",
                         f"{OUTSIDE}.models", f"{OUTSIDE}._marker", LOOKALIKE,
                         f"{LOOKALIKE}.app", f"{NARROW}.danger")
"""Modules a hostile trace names (or that they would pull in): none may ever be loaded."""


def trace_file(case: Hostile, directory: Path) -> Path:
    """Write the case's trace under a file name safe on every platform."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", case.id)
    return write_trace(directory / f"hostile_{name}.jsonl", case.events)


def assert_refused(case: Hostile, directory: Path, packages: Packages) -> str:
    """Replay ``case`` through the engine; return its refusal message after checking it."""
    before = set(sys.modules)
    replayed = replay_file(trace_file(case, directory), case.targets)
    gained = set(sys.modules) - before
    result = replayed.only
    assert result.status == "not_replayable", (
        f"{case.id}: expected a refusal, got {result.status}: {result.message}")
    assert re.search(case.expect, result.message), (
        f"{case.id}: refusal message {result.message!r} does not match {case.expect!r}")
    assert packages.marks() == [], f"{case.id}: side effect happened: {packages.marks()}"
    assert outside_targets(gained, case.targets) == [], (
        f"{case.id}: imported modules outside the targets: {outside_targets(gained, case.targets)}")
    loaded = [name for name in NEVER_IMPORTED if name in sys.modules]
    assert loaded == [], f"{case.id}: imported {loaded}"
    assert result.replayed == [], f"{case.id}: something ran: {result.replayed}"
    return result.message
