"""Capture under fault: the application's requests complete, with the same results, always.

Each fault is real: a sink that raises or never returns, a disk write that
blocks (a FIFO nobody reads), a full disk (``/dev/full``), a path nobody may
write (under a regular file, in ``/sys``). Every lost event is counted in
``pytest_replay.stats()``, one warning is logged per sink, and when the fault
clears, capture writes again by itself.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

import pytest_replay as replay
from pytest_replay.capture.sinks import BackgroundSink
from pytest_replay.format.values import DEFAULT_LIMITS

EVENTS_PER_REQUEST = 4  # handle + price, entry and exit each


@replay.traced
def price(order_id: int, qty: int) -> float:
    return round(order_id * 0.5 * qty, 2)


@replay.traced
def handle(order_id: int) -> dict[str, Any]:
    return {"order": order_id, "total": price(order_id, 3)}


def expected(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"order": n, "total": round(n * 0.5 * 3, 2)} for n in range(start, start + count)]


def run_requests(count: int, start: int = 0) -> tuple[list[dict[str, Any]], float]:
    """Serve ``count`` requests; return their results and the slowest one's seconds."""
    results = []
    slowest = 0.0
    for n in range(start, start + count):
        began = time.perf_counter()
        with replay.request_scope(f"req_{n}"):
            results.append(handle(n))
        slowest = max(slowest, time.perf_counter() - began)
    return results, slowest


def warnings_from_capture(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records
            if r.name == "pytest_replay.capture" and r.levelno == logging.WARNING]


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


class Raising:
    """A sink whose destination refuses every line (or only the first ``failures``)."""

    def __init__(self, failures: int | None = None) -> None:
        self.failures = failures
        self.lines: list[bytes] = []

    def write(self, line: bytes) -> None:
        if self.failures is None or self.failures > 0:
            if self.failures is not None:
                self.failures -= 1
            raise ConnectionResetError("collector hung up")
        self.lines.append(line)

    def flush(self) -> None:
        """Nothing buffered."""

    def close(self) -> None:
        """Nothing held."""


class Stalling:
    """A sink whose ``write`` never returns until the test lets it."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()

    def write(self, line: bytes) -> None:
        self.entered.set()
        self.release.wait()

    def flush(self) -> None:
        """Nothing buffered."""

    def close(self) -> None:
        """Nothing held."""


def test_a_sink_that_raises(restore_capture: None, caplog: pytest.LogCaptureFixture) -> None:
    replay.configure(sink=Raising())
    results, _ = run_requests(300)
    replay.shutdown()
    assert results == expected(300)
    stats = replay.stats()
    assert stats["dropped"] == 300 * EVENTS_PER_REQUEST
    assert stats["dropped_by_reason"] == {"sink_error": 300 * EVENTS_PER_REQUEST}
    assert stats["written"] == 0
    assert "ConnectionResetError: collector hung up" in stats["last_error"]
    assert len(warnings_from_capture(caplog)) == 1


def test_a_sink_that_raises_for_a_while_recovers(restore_capture: None,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pytest_replay.capture")
    inner = Raising(failures=40)
    replay.configure(sink=inner)
    results, _ = run_requests(100)
    replay.shutdown()
    assert results == expected(100)
    stats = replay.stats()
    assert (stats["dropped"], stats["written"]) == (40, 400 - 40)
    assert len(inner.lines) == 360
    assert stats["recoveries"] == 1
    assert len(warnings_from_capture(caplog)) == 1
    assert any("writes again" in r.getMessage() for r in caplog.records)


def test_a_sink_that_stalls_forever(restore_capture: None,
                                    caplog: pytest.LogCaptureFixture) -> None:
    inner = Stalling()
    sink = BackgroundSink(inner, max_buffer=200, flush_interval=0.01, timeout=0.5)
    replay.configure(sink=sink)
    try:
        results, slowest = run_requests(1000)
        assert inner.entered.wait(10)
        assert sink.flush(timeout=0.2) is False  # flush gives up instead of hanging
        began = time.monotonic()
        replay.shutdown(timeout=0.3)
        shutdown_took = time.monotonic() - began
    finally:
        inner.release.set()  # let the abandoned writer thread end
    assert results == expected(1000)
    assert slowest < 1.0, f"a request waited {slowest:.3f}s on a stalled sink"
    assert shutdown_took < 5.0
    stats = replay.stats()
    assert stats["written"] == 0
    assert stats["dropped"] == 1000 * EVENTS_PER_REQUEST  # every event accounted for
    assert stats["dropped_by_reason"]["buffer_full"] > 0
    assert stats["dropped_by_reason"]["stalled_at_close"] > 0
    assert len(warnings_from_capture(caplog)) == 1


def test_a_stalled_disk_write_then_the_disk_comes_back(restore_capture: None,
                                                      tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    fifo = tmp_path / "stalled.jsonl"
    os.mkfifo(fifo)  # opening it for writing blocks until someone reads: a hung disk
    sink = replay.FileSink(fifo, max_buffer=100, flush_interval=0.01, timeout=0.5)
    replay.configure(sink=sink)
    results, slowest = run_requests(500)
    assert results == expected(500)
    assert slowest < 1.0
    assert sink.flush(timeout=0.2) is False
    dropped_while_stalled = replay.stats()["dropped"]
    # At most one batch is in the blocked writer's hands and one buffer-full waits.
    assert dropped_while_stalled >= 500 * EVENTS_PER_REQUEST - 2 * 100

    received = bytearray()

    def read_everything() -> None:
        with fifo.open("rb") as reader:
            while chunk := reader.read(65536):
                received.extend(chunk)

    reader = threading.Thread(target=read_everything, daemon=True)
    reader.start()  # the fault clears: the writer's open() returns
    assert sink.flush(timeout=10) is True
    more, _ = run_requests(20, start=500)  # 80 events: they fit in the buffer
    assert more == expected(20, start=500)
    replay.shutdown(timeout=10)
    reader.join(10)
    stats = replay.stats()
    lines = bytes(received).splitlines()
    assert stats["written"] == len(lines)
    assert stats["written"] + stats["dropped"] == 520 * EVENTS_PER_REQUEST
    events = [orjson.loads(line) for line in lines]
    request_of = {e["correlation_id"]: e.get("trace_id", e["correlation_id"])
                  for e in events if e["event_type"] == "function_entry"}
    after = [e for e in events if int(request_of.get(e["correlation_id"], "req_0")[4:]) >= 500]
    assert len(after) == 20 * EVENTS_PER_REQUEST
    assert len(warnings_from_capture(caplog)) == 1


def test_a_full_disk_then_space_again(restore_capture: None, tmp_path: Path,
                                      caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "full.jsonl"
    path.symlink_to("/dev/full")  # every write: ENOSPC, "No space left on device"
    sink = replay.FileSink(path, flush_interval=0.01)
    replay.configure(sink=sink)
    results, _ = run_requests(200)
    assert results == expected(200)
    assert sink.flush(timeout=10)
    stats = replay.stats()
    assert stats["dropped"] == 200 * EVENTS_PER_REQUEST
    assert stats["dropped_by_reason"] == {"io_error": 200 * EVENTS_PER_REQUEST}
    assert "No space left on device" in stats["last_error"]
    assert stats["errors"] >= 1

    path.unlink()
    path.write_bytes(b"")  # space again: the same path is now a regular file
    more, _ = run_requests(100, start=200)
    replay.shutdown()
    assert more == expected(100, start=200)
    written = lines_of(path)
    assert len(written) == 100 * EVENTS_PER_REQUEST
    assert written[0]["correlation_id"] == "req_200"
    final = replay.stats()
    assert (final["written"], final["dropped"], final["recoveries"]) == (400, 800, 1)
    assert len(warnings_from_capture(caplog)) == 1


def test_a_directory_that_is_a_file_then_fixed(restore_capture: None, tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "logs"
    blocker.write_text("not a directory")  # root ignores permissions; ENOTDIR stops it
    path = blocker / "trace.jsonl"
    sink = replay.FileSink(path, flush_interval=0.01)
    replay.configure(sink=sink)
    results, _ = run_requests(100)
    assert results == expected(100)
    assert sink.flush(timeout=10)
    stats = replay.stats()
    assert stats["dropped"] == 100 * EVENTS_PER_REQUEST
    assert "cannot open" in stats["last_error"]

    blocker.unlink()
    blocker.mkdir()
    more, _ = run_requests(10, start=100)
    replay.shutdown()
    assert more == expected(10, start=100)
    assert len(lines_of(path)) == 10 * EVENTS_PER_REQUEST
    assert replay.stats()["recoveries"] == 1
    assert len(warnings_from_capture(caplog)) == 1


def test_a_path_the_kernel_refuses(restore_capture: None,
                                   caplog: pytest.LogCaptureFixture) -> None:
    path = Path("/sys/telemetry-replay-test.jsonl")
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    except OSError:
        pass
    else:  # pragma: no cover - a writable /sys is no fault to test
        path.unlink()
        pytest.skip("/sys is writable here, so it makes no fault")
    sink = replay.FileSink(path, flush_interval=0.01)
    replay.configure(sink=sink)
    results, _ = run_requests(50)
    replay.shutdown()
    assert results == expected(50)
    stats = replay.stats()
    assert stats["dropped"] == 50 * EVENTS_PER_REQUEST
    assert "Errno" in stats["last_error"]
    assert len(warnings_from_capture(caplog)) == 1


# -- values that fight back ------------------------------------------------------------


@replay.traced
def take(value: Any) -> Any:
    return value


@pytest.fixture
def memory(restore_capture: None) -> replay.MemorySink:
    sink = replay.MemorySink()
    replay.configure(sink=sink)
    return sink


def _events(sink: replay.MemorySink) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in sink.lines]


def test_a_repr_that_raises(memory: replay.MemorySink) -> None:
    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("repr refused")

    hostile = Hostile()
    assert take(hostile) is hostile
    assert _events(memory)[0]["args"]["value"]["repr_error"] is True


def test_recursive_containers(memory: replay.MemorySink) -> None:
    ring: list[Any] = []
    ring.append(ring)
    mapping: dict[str, Any] = {}
    mapping["me"] = [mapping]
    assert take(ring) is ring
    assert take(mapping) is mapping
    assert b'"$type":"cycle"' in memory.lines[0]
    assert b'"$type":"cycle"' in memory.lines[2]


def test_a_fifty_megabyte_string(memory: replay.MemorySink) -> None:
    huge = "x" * (50 * 1024 * 1024)
    assert take(huge) is huge
    assert all(len(line) < 3 * DEFAULT_LIMITS.max_str for line in memory.lines)
    entry = _events(memory)[0]
    assert entry["args"]["value"]["len"] == len(huge)


def test_a_million_element_list_stays_fast(memory: replay.MemorySink) -> None:
    big = list(range(1_000_000))
    small = list(range(1_000))

    def cost(value: list[int]) -> float:
        best = float("inf")
        for _ in range(5):
            began = time.perf_counter()
            for _ in range(20):
                take(value)
            best = min(best, time.perf_counter() - began)
        return best

    ratio = cost(big) / cost(small)
    # Both are cut to 100 items; walking a million would cost ~1000x more.
    assert ratio < 20, f"capturing a 10**6 list costs {ratio:.0f}x a 10**3 one"
    assert _events(memory)[0]["args"]["value"]["len"] == 1_000_000


def test_attribute_access_with_side_effects_is_never_triggered(
        memory: replay.MemorySink) -> None:
    touched: list[str] = []

    class Tripwire:
        def __init__(self) -> None:
            self.plain = 1

        @property
        def expensive(self) -> int:
            touched.append("property")
            return 2

        def __getattr__(self, name: str) -> Any:
            touched.append(f"__getattr__ {name}")
            raise AttributeError(name)

    class Proxy:
        def __getattribute__(self, name: str) -> Any:
            touched.append(f"__getattribute__ {name}")
            return object.__getattribute__(self, name)

    @replay.traced
    def fails(wire: Tripwire, proxy: Proxy) -> None:
        local_wire = wire
        raise ValueError(f"{type(local_wire).__name__}")

    wire, proxy = Tripwire(), Proxy()
    assert take(wire) is wire
    assert take(proxy) is proxy
    with pytest.raises(ValueError):
        fails(wire, proxy)
    assert touched == []
    error = next(e for e in _events(memory) if e["event_type"] == "error")
    assert error["locals"]["local_wire"]["attrs"] == {"plain": 1}


def test_generators_are_never_consumed(memory: replay.MemorySink) -> None:
    pulled: list[int] = []

    def counting() -> Any:
        for n in range(3):
            pulled.append(n)
            yield n

    generator = counting()
    assert take(generator) is generator
    with replay.request_scope("req_gen"):
        replay.variable("pending", generator)
        replay.context(stream=generator)
    assert pulled == []
    assert list(generator) == [0, 1, 2]
