"""Sinks: the file sink's background flush and rotation, logging, and flushing at exit."""

from __future__ import annotations

import io
import logging
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
import tracemalloc
from pathlib import Path

import orjson
import pytest

import pytest_replay as replay
from pytest_replay.capture.runtime import RUNTIME
from pytest_replay.capture.sinks import BackgroundSink


@replay.traced
def square(n: int) -> int:
    return n * n


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines() if path.exists() else []


def _wait_for(condition: object, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.01)
    return False


def test_file_sink_flushes_in_the_background(restore_capture: None, tmp_path: Path) -> None:
    path = tmp_path / "bg.jsonl"
    replay.configure(sink=replay.FileSink(path, flush_interval=0.05))
    for n in range(10):
        square(n)
    assert _wait_for(lambda: len(_lines(path)) == 20), _lines(path)
    assert replay.stats()["written"] == 20


def test_shutdown_flushes_everything(restore_capture: None, tmp_path: Path) -> None:
    path = tmp_path / "all.jsonl"
    replay.configure(sink=replay.FileSink(path, flush_interval=60.0))  # never on its own
    for n in range(5000):
        square(n)
    replay.shutdown()
    lines = _lines(path)
    assert len(lines) == 10_000
    assert [orjson.loads(line)["args"]["n"] for line in lines[::2]] == list(range(5000))
    final = replay.stats()
    assert (final["written"], final["dropped"], final["buffered"]) == (10_000, 0, 0)


def test_flush_waits_for_what_was_written_before_it(restore_capture: None,
                                                    tmp_path: Path) -> None:
    path = tmp_path / "flush.jsonl"
    sink = replay.FileSink(path, flush_interval=60.0)
    replay.configure(sink=sink)
    square(3)
    assert sink.flush(timeout=10) is True
    assert len(_lines(path)) == 2


def test_rotation_by_size_keeps_the_backups(restore_capture: None, tmp_path: Path) -> None:
    path = tmp_path / "rot.jsonl"
    sink = replay.FileSink(path, max_bytes=4096, backup_count=2, flush_interval=60.0)
    replay.configure(sink=sink)
    for round_ in range(12):
        for n in range(10):
            square(round_ * 10 + n)
        assert sink.flush(timeout=10)
    replay.shutdown()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["rot.jsonl", "rot.jsonl.1", "rot.jsonl.2"]
    for name in files:
        data = (tmp_path / name).read_bytes()
        assert 0 < len(data) <= 4096
        assert all(orjson.loads(line) for line in data.splitlines())
    newest = [orjson.loads(line) for line in _lines(path)]
    assert newest[-1]["return_value"] == 119 * 119  # the latest events are in the live file
    older = [orjson.loads(line) for line in _lines(tmp_path / "rot.jsonl.2")]
    assert older[0]["timestamp_ns"] < newest[0]["timestamp_ns"]


def test_a_file_moved_away_is_reopened(restore_capture: None, tmp_path: Path) -> None:
    path = tmp_path / "moved.jsonl"
    sink = replay.FileSink(path, flush_interval=60.0)
    replay.configure(sink=sink)
    square(1)
    assert sink.flush(timeout=10)
    path.rename(tmp_path / "moved.jsonl.old")  # what logrotate does
    square(2)
    replay.shutdown()
    assert len(_lines(path)) == 2
    assert len(_lines(tmp_path / "moved.jsonl.old")) == 2


def test_logging_sink_goes_through_a_real_handler(restore_capture: None) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    logger = logging.getLogger("telemetry.test_sinks")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        replay.configure(sink=replay.LoggingSink(logger), service="shop")
        with replay.request_scope("req_log"):
            square(7)
        replay.shutdown()
    finally:
        logger.removeHandler(handler)
    records = stream.getvalue().splitlines()
    assert len(records) == 2
    name, level, message = records[0].split(" ", 2)
    assert (name, level) == ("telemetry.test_sinks", "INFO")
    event = orjson.loads(message)
    assert event["correlation_id"] == "req_log" and event["service"] == "shop"
    assert orjson.loads(records[1].split(" ", 2)[2])["return_value"] == 49


def test_logging_sink_counts_what_a_silent_logger_loses(restore_capture: None,
                                                        caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    logger = logging.getLogger("telemetry.silent")
    logger.setLevel(logging.ERROR)
    replay.configure(sink=replay.LoggingSink(logger, level=logging.INFO))
    square(1)
    replay.shutdown()
    stats = replay.stats()
    assert stats["dropped_by_reason"] == {"filtered": 2}
    assert len([r for r in caplog.records if r.levelname == "WARNING"]) == 1


def test_a_foreign_sink_runs_behind_a_background_thread(restore_capture: None) -> None:
    class Collecting:
        def __init__(self) -> None:
            self.lines: list[bytes] = []
            self.closed = False

        def write(self, line: bytes) -> None:
            self.lines.append(line)

        def flush(self) -> None:
            """Nothing buffered."""

        def close(self) -> None:
            self.closed = True

    inner = Collecting()
    chosen = replay.configure(sink=inner)
    assert isinstance(chosen, BackgroundSink)
    square(2)
    replay.shutdown()
    assert len(inner.lines) == 2 and inner.closed


def test_stats_report_the_sink_and_its_counters(restore_capture: None, tmp_path: Path) -> None:
    replay.configure(path=tmp_path / "s.jsonl")
    square(1)
    live = replay.stats()
    assert live["sink"] == "FileSink" and live["active"] is True
    replay.shutdown()
    final = replay.stats()
    assert final["active"] is False
    assert (final["written"], final["dropped"], final["errors"]) == (2, 0, 0)


def test_interpreter_exit_flushes_without_shutdown(tmp_path: Path) -> None:
    path = tmp_path / "exit.jsonl"
    script = textwrap.dedent(f"""
        import pytest_replay as replay

        @replay.traced
        def work(n):
            return n + 1

        replay.configure(path={str(path)!r})
        with replay.request_scope("req_exit"):
            for n in range(3000):
                work(n)
        # no shutdown(): the interpreter's exit must flush
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr.decode()
    lines = _lines(path)
    assert len(lines) == 6000
    assert orjson.loads(lines[-1])["return_value"] == 3000


def test_runtime_sink_can_be_swapped_directly(restore_capture: None) -> None:
    first, second = replay.MemorySink(), replay.MemorySink()
    replay.configure(sink=first)
    square(1)
    RUNTIME.sink = second
    square(2)
    assert (len(first.lines), len(second.lines)) == (2, 2)


# -- the C write ---------------------------------------------------------------------------

WRITE_SCENARIO = textwrap.dedent("""
    import sys, threading
    import pytest_replay as replay
    from pytest_replay.capture._speedups_loader import SPEEDUPS

    path = sys.argv[1]
    sink = replay.FileSink(path, max_bytes=0, max_buffer=4, flush_interval=60)
    hold = threading.Event()
    original = sink._deliver
    def slow(batch):
        hold.wait(5)
        original(batch)
    sink._deliver = slow
    for n in range(10):  # the writer is held once it has a batch: the buffer fills up
        sink.write(b'{"event_type":"context","n":%d}\\n' % n)
    hold.set()
    assert sink.flush(5)
    sink.close()
    sink.write(b'{"event_type":"context","n":99}\\n')  # after close: counted, not written
    stats = sink.snapshot()
    print("C" if SPEEDUPS is not None else "Python", type(sink.write).__name__,
          stats["written"], stats["dropped"], sorted(stats["dropped_by_reason"].items()))
""")


@pytest.mark.parametrize("pure", [False, True])
def test_the_write_of_background_sinks_is_the_same_in_c_and_python(
        tmp_path: Path, pure: bool) -> None:
    import os

    env = {**os.environ, "TELEMETRY_REPLAY_PURE_PYTHON": "1" if pure else "0"}
    out = subprocess.run([sys.executable, "-c", WRITE_SCENARIO, str(tmp_path / "t.jsonl")],
                         capture_output=True, text=True, env=env, timeout=60, check=True)
    implementation, kind, written, dropped, reasons = out.stdout.split(" ", 4)
    from pytest_replay.capture._speedups_loader import SPEEDUPS

    if not pure and SPEEDUPS is not None:
        assert (implementation, kind) == ("C", "builtin_function_or_method")
    if pure:
        assert (implementation, kind) == ("Python", "method")
    # How many lines the writer took before it was held is up to the scheduler; what is
    # not: every line is written or counted, once, and the late one is counted as closed.
    assert int(written) + int(dropped) == 11 and int(written) >= 4
    assert reasons.strip() == f"[('buffer_full', {int(dropped) - 1}), ('sink_closed', 1)]"
    numbers = [orjson.loads(line)["n"] for line in (tmp_path / "t.jsonl").read_bytes().split()]
    assert len(numbers) == int(written) and numbers == sorted(numbers) and 99 not in numbers


def test_queued_lines_hold_only_their_own_bytes(restore_capture: None) -> None:
    """orjson hands back a 4 KB buffer for any line; a sink holding thousands must not
    keep 4 KB each (variables, environment reads and database calls alike)."""
    sink = replay.MemorySink()
    replay.configure(sink=sink)
    connection = sqlite3.connect(":memory:")
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        with replay.request_scope("r1"):
            for index in range(300):
                replay.variable("total", index)
                os.environ.get("HOME")
                connection.execute("select ?", (index,)).fetchone()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        connection.close()
    kinds = {orjson.loads(line)["event_type"] for line in sink.lines}
    assert {"variable_change", "nondeterminism", "db_call"} <= kinds
    assert len(sink.lines) >= 900
    assert held / len(sink.lines) < 1024, f"{held / len(sink.lines):.0f} bytes per line"
