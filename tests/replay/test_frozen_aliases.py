"""Clock functions imported by name into a target module are frozen too, replay after replay."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import pytest_replay as replay
from pytest_replay.config import ReplayConfig
from pytest_replay.model import load_trace
from pytest_replay.replay.engine import ReplayEngine

APP = '''
from datetime import datetime
from time import time

import pytest_replay as replay


@replay.traced
def stamp() -> dict[str, object]:
    return {"epoch": int(time()), "year": datetime.now().year}
'''


@pytest.fixture
def clock_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    package = tmp_path / "clockapp"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "stamps.py").write_text(textwrap.dedent(APP))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [n for n in sys.modules if n.startswith("clockapp")]:
        del sys.modules[name]


def test_aliases_are_frozen_on_every_replay(clock_app: Path) -> None:
    from clockapp import stamps  # type: ignore[import-not-found]

    sink = replay.MemorySink()
    replay.configure(sink=sink)
    with replay.request_scope("req_clock"):
        stamps.stamp()
    replay.shutdown()
    lines = [line.replace(b'"timestamp_ns":1', b'"timestamp_ns":9', 1) for line in sink.lines]
    trace = clock_app / "clock.jsonl"
    trace.write_bytes(b"".join(lines))  # recorded around 2255: no clock can agree by chance
    root = load_trace(trace).roots[0]
    engine = ReplayEngine(ReplayConfig(targets=("clockapp",)))
    for _ in range(3):
        run = engine.run(root)
        assert run.value["year"] > 2200, run.value
        assert run.value["epoch"] > 9_000_000_000
    assert stamps.datetime.now().year < 2200  # and real again afterwards
