"""Freezing time shows freezegun only some modules; none it should see is ever left out.

At start freezegun is shown the modules holding a clock function, from an
index checked again when a module comes, goes or grows; at stop it is shown
the modules imported while frozen. These tests change ``sys.modules`` and
module namespaces between and during replays, and check every alias is
frozen inside and real again afterwards.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_replay.model import Root
from tests.replay.engine_support import AppPackage, make_app, write_lines

REAL_TIME = time.time
RECORDED_NS = 9_000_000_000 * 1_000_000_000
"""Recorded in 2255: no real clock can read this by chance."""
RECORDED_SECONDS = RECORDED_NS / 1e9

CLOCKS = """\
import importlib
import sys
from time import monotonic, time

import pytest_replay as replay


@replay.traced
def both_clocks() -> list[float]:
    \"\"\"The wall clock (frozen) and the monotonic clock (real), read by their aliases.\"\"\"
    return [time(), monotonic()]


@replay.traced
def read(name: str) -> float:
    \"\"\"Call the module attribute ``name`` (a clock function put there later).\"\"\"
    return globals()[name]()


@replay.traced
def import_and_read(module: str, again: bool) -> float:
    \"\"\"Import ``module`` now (again, as a new module, when asked) and read its clock.\"\"\"
    if again:
        del sys.modules[module]
    return importlib.import_module(module).now()


@replay.traced
def note_the_time() -> float:
    \"\"\"Read the wall clock and record what it said.\"\"\"
    now = time()
    replay.variable("now", now)
    return now
"""
LATE = "from time import time as now\n"


@pytest.fixture
def app(request: pytest.FixtureRequest, tmp_path: Path) -> AppPackage:
    package = make_app(request, tmp_path)
    package.write("clocks", CLOCKS)
    package.write("late", LATE)
    package.forget()
    return package


def root_calling(app: AppPackage, tmp_path: Path, function: str, **args: object) -> Root:
    trace = write_lines(tmp_path / f"{function}.jsonl", [{
        "event_type": "function_entry", "timestamp_ns": RECORDED_NS, "correlation_id": "r1",
        "function_name": function, "module": f"{app.name}.clocks", "qualname": function,
        "args": args, "v": 1}])
    return trace.roots[0]


def test_wall_clock_aliases_freeze_and_monotonic_aliases_stay_real(
        app: AppPackage, tmp_path: Path) -> None:
    root = root_calling(app, tmp_path, "both_clocks")
    engine = app.engine()
    for _replay in range(2):
        before = time.monotonic()
        wall, monotonic = engine.run(root).value
        assert wall == RECORDED_SECONDS
        assert before <= monotonic <= time.monotonic()
    clocks = app.module("clocks")
    assert (clocks.time, clocks.monotonic) == (REAL_TIME, time.monotonic)


def test_capture_stamps_events_by_the_real_clock_while_the_code_reads_the_frozen_one(
        app: AppPackage, tmp_path: Path) -> None:
    root = root_calling(app, tmp_path, "note_the_time")
    before = time.time_ns()
    outcome = app.engine().run(root)
    after = time.time_ns()
    assert outcome.value == RECORDED_SECONDS  # the application's clock is frozen
    variable = next(e for e in outcome.events if e["event_type"] == "variable_change")
    assert variable["value"] == RECORDED_SECONDS
    stamps = {e["event_type"]: e["timestamp_ns"] for e in outcome.events}
    assert set(stamps) == {"function_entry", "variable_change", "function_exit"}
    assert all(before <= stamp <= after for stamp in stamps.values()), stamps


def test_a_clock_alias_added_after_a_replay_is_frozen_in_the_next(
        app: AppPackage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = root_calling(app, tmp_path, "read", name="late_clock")
    engine = app.engine()
    assert isinstance(engine.run(root).error, KeyError)  # no such clock yet

    clocks = app.module("clocks")
    monkeypatch.setattr(clocks, "late_clock", time.time, raising=False)  # a new name

    assert engine.run(root).value == RECORDED_SECONDS
    assert clocks.late_clock is REAL_TIME


def test_a_module_imported_while_frozen_has_the_real_clock_afterwards(
        app: AppPackage, tmp_path: Path) -> None:
    late = f"{app.name}.late"
    root = root_calling(app, tmp_path, "import_and_read", module=late, again=False)
    engine = app.engine()
    assert late not in sys.modules

    assert engine.run(root).value == RECORDED_SECONDS  # imported inside the replay
    assert sys.modules[late].now is REAL_TIME
    assert engine.run(root).value == RECORDED_SECONDS  # imported before: found by the scan
    assert sys.modules[late].now is REAL_TIME


def test_a_module_imported_again_while_frozen_has_the_real_clock_afterwards(
        app: AppPackage, tmp_path: Path) -> None:
    """A new module under a name that was already loaded is restored too (by identity)."""
    late = f"{app.name}.late"
    app.module("late")
    root = root_calling(app, tmp_path, "import_and_read", module=late, again=True)
    engine = app.engine()

    for _replay in range(2):
        before = sys.modules[late]
        assert engine.run(root).value == RECORDED_SECONDS
        assert sys.modules[late] is not before
        assert sys.modules[late].now is REAL_TIME
        assert before.now is REAL_TIME


def test_an_import_blocked_in_sys_modules_keeps_the_scan_cached(
        app: AppPackage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``None`` entry (an import made to fail) is no reason to list every module again."""
    from pytest_replay.replay import frozen

    monkeypatch.setitem(sys.modules, "telemetry_replay_blocked", None)
    root = root_calling(app, tmp_path, "both_clocks")
    engine = app.engine()
    engine.run(root)
    scans: list[object] = []
    real_scan = frozen._scan_modules

    def counted_scan(ids: Any) -> dict[str, Any]:
        scans.append(ids)
        return real_scan(ids)

    monkeypatch.setattr(frozen, "_scan_modules", counted_scan)

    assert engine.run(root).value[0] == RECORDED_SECONDS
    assert scans == []
