"""Helpers for engine tests: a uniquely named app package, recorded for real, then replayed.

Each test writes its own package (``rapp_<hex>``) so no import, wrapper or
index cache of one test can leak into another. Recording runs the package
under the real capture library into a real trace file, and the trace is
read back with the real reader and model.
"""

from __future__ import annotations

import importlib
import shutil
import sys
import textwrap
import types
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

import pytest_replay as replay
from pytest_replay.config import ReplayConfig
from pytest_replay.model import Root, Trace, load_trace
from pytest_replay.replay.engine import ReplayEngine, ReplayResult

Call = tuple[str, Callable[..., Any], tuple[Any, ...]]
"""(correlation id, callable, positional args): one request to record."""


@dataclass
class AppPackage:
    """A package written into a temporary directory and importable by its unique name."""

    name: str
    directory: Path

    def write(self, module: str, source: str) -> Path:
        """Write ``<name>/<module>.py`` and forget any earlier import of it."""
        path = self.directory / self.name / f"{module}.py"
        path.write_text(textwrap.dedent(source), encoding="utf-8")
        shutil.rmtree(path.parent / "__pycache__", ignore_errors=True)
        self.forget()
        return path

    def module(self, module: str) -> types.ModuleType:
        """Import ``<name>.<module>`` from today's source."""
        importlib.invalidate_caches()
        return importlib.import_module(f"{self.name}.{module}")

    def forget(self) -> None:
        """Drop the package's modules so the next import reads the source again."""
        for loaded in [m for m in sys.modules if m == self.name or m.startswith(self.name + ".")]:
            del sys.modules[loaded]

    def engine(self, **config: Any) -> ReplayEngine:
        """An engine whose ``replay_targets`` is this package (plus ``config`` overrides)."""
        config.setdefault("targets", (self.name,))
        return ReplayEngine(ReplayConfig(**config))


def make_app(request: pytest.FixtureRequest, tmp_path: Path) -> AppPackage:
    """A fresh, empty, importable package; its modules are forgotten at teardown."""
    name = f"rapp_{uuid.uuid4().hex[:10]}"
    (tmp_path / name).mkdir()
    (tmp_path / name / "__init__.py").write_text("", encoding="utf-8")
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.syspath_prepend(str(tmp_path))
    app = AppPackage(name, tmp_path)
    request.addfinalizer(app.forget)
    request.addfinalizer(monkeypatch.undo)
    return app


def record(path: Path, calls: Iterable[Call]) -> Trace:
    """Run each call under capture in its own request scope, write ``path``, read it back.

    An exception ends the request, as in production (logged, then answered 500).
    """
    path.unlink(missing_ok=True)  # the file sink appends, like a production log
    replay.configure(path=path, service="test")
    try:
        for correlation_id, function, args in calls:
            with replay.request_scope(correlation_id=correlation_id):
                try:
                    function(*args)
                except Exception:
                    continue
    finally:
        replay.shutdown()
    return load_trace(path)


def write_lines(path: Path, lines: Iterable[dict[str, Any] | str]) -> Trace:
    """A hand-written trace (for seed lines and hostile ones), read back by the real reader."""
    path.write_text("".join((line if isinstance(line, str) else orjson.dumps(line).decode())
                            + "\n" for line in lines), encoding="utf-8")
    return load_trace(path)


def only_root(trace: Trace) -> Root:
    """The single root of a one-request trace (fails clearly otherwise)."""
    assert not [p for p in trace.problems if p.severity == "error"], trace.problems
    assert len(trace.roots) == 1, [r.name for r in trace.roots]
    return trace.roots[0]


def replay_twice(engine: ReplayEngine, root: Root) -> tuple[ReplayResult, ReplayResult]:
    """Two replays of the same root by the same engine (zero false alarms needs both green)."""
    return engine.replay(root), engine.replay(root)
