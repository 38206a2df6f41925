"""Frozen time never leaks out of a replay, whatever the replay's outcome.

Inside a replay the clock stands at the recorded moment (2021-03-04 here);
after it, ``time.time()``, ``datetime.now()`` and ``time.monotonic()`` are the
real ones again: the very same functions, near the values taken before, and
advancing. An async root can still ``await asyncio.sleep``.
"""

from __future__ import annotations

import datetime
import importlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

from pytest_replay.replay.engine import ReplayResult
from tests.security.secsupport import (
    RECORDED_AT_NS,
    TARGET,
    Packages,
    entry,
    exit_,
    replay_file,
    time_traces,
    write_trace,
)

REAL_TIME: Final = time.time
REAL_MONOTONIC: Final = time.monotonic
REAL_PERF_COUNTER: Final = time.perf_counter
REAL_DATETIME: Final = datetime.datetime
REAL_DATE: Final = datetime.date
RECORDED_SECONDS: Final = RECORDED_AT_NS / 1e9
APP: Final = f"{TARGET}.app"


@dataclass(frozen=True)
class Clocks:
    """Readings of the three clocks at one moment."""

    wall: float
    now: datetime.datetime
    monotonic: float

    @classmethod
    def read(cls) -> Clocks:
        """Read the clocks through the module attributes replayed code would use."""
        return cls(time.time(), datetime.datetime.now(), time.monotonic())


OUTCOMES: Final = time_traces()


@pytest.fixture
def real_clocks(packages: Packages) -> Iterator[Callable[[Clocks], None]]:
    """A checker that the clocks are the real ones, advancing from ``before``."""
    app = importlib.import_module(APP)

    def check(before: Clocks) -> None:
        assert time.time is REAL_TIME, "time.time is still patched"
        assert time.monotonic is REAL_MONOTONIC, "time.monotonic is still patched"
        assert time.perf_counter is REAL_PERF_COUNTER, "time.perf_counter is still patched"
        assert datetime.datetime is REAL_DATETIME, "datetime.datetime is still patched"
        assert datetime.date is REAL_DATE, "datetime.date is still patched"
        assert app.imported_time is REAL_TIME, "a module's `from time import time` is patched"
        after = Clocks.read()
        assert type(after.now) is REAL_DATETIME
        assert before.wall <= after.wall < before.wall + 60, (before.wall, after.wall)
        assert before.monotonic <= after.monotonic < before.monotonic + 60
        assert abs(after.now - before.now) < datetime.timedelta(seconds=60)
        assert abs(after.now.timestamp() - after.wall) < 5
        time.sleep(0.02)
        later = Clocks.read()
        assert later.wall > after.wall, "time.time() does not advance"
        assert later.monotonic > after.monotonic, "time.monotonic() does not advance"
        assert later.now > after.now, "datetime.now() does not advance"

    yield check


@pytest.mark.parametrize("outcome", sorted(OUTCOMES))
def test_time_is_real_after_replay(outcome: str, real_clocks: Callable[[Clocks], None],
                                   tmp_path: Path) -> None:
    """After a passing, failing, raising, refused or async replay the clocks are real."""
    events, status = OUTCOMES[outcome]
    before = Clocks.read()
    result = replay_file(write_trace(tmp_path / "t.jsonl", events), (TARGET,)).only
    assert result.status == status, result.message
    real_clocks(before)


def test_time_is_real_after_replayed_code_calls_sys_exit(
        real_clocks: Callable[[Clocks], None], tmp_path: Path) -> None:
    """Even a ``SystemExit`` escaping the replayed code leaves the clocks restored."""
    before = Clocks.read()
    path = write_trace(tmp_path / "t.jsonl", [entry(APP, "leave", {"code": 3}),
                                              exit_("leave", None)])
    with pytest.raises(SystemExit):
        replay_file(path, (TARGET,))
    real_clocks(before)


def test_time_is_frozen_at_the_recorded_moment_inside(packages: Packages,
                                                      tmp_path: Path) -> None:
    """The passing case above is meaningful: inside, ``time.time()`` is the recorded moment."""
    path = write_trace(tmp_path / "t.jsonl", [entry(APP, "now_seconds"),
                                              exit_("now_seconds", RECORDED_SECONDS + 3600)])
    result = replay_file(path, (TARGET,)).only
    assert result.status == "diverged"
    exits = [e for e in result.replayed if e.get("event_type") == "function_exit"]
    assert exits[-1]["return_value"] == RECORDED_SECONDS


def test_async_root_sleeps_for_real_inside_frozen_time(packages: Packages,
                                                       tmp_path: Path) -> None:
    """``asyncio.sleep`` and ``wait_for`` work while the wall clock is frozen."""
    path = write_trace(tmp_path / "t.jsonl", [entry(APP, "nap", {"seconds": 0.01}),
                                              exit_("nap", "rested")])
    started = REAL_MONOTONIC()
    result: ReplayResult = replay_file(path, (TARGET,)).only
    elapsed = REAL_MONOTONIC() - started
    assert result.status == "passed", result.message
    assert elapsed >= 0.02, f"two 10 ms sleeps took {elapsed:.4f} s: they did not really sleep"
