"""Where encoded events go. A sink takes one finished JSONL line (bytes) at a time.

The request path only appends bytes to a bounded buffer; a background thread
does the I/O. When the buffer is full or the disk fails, events are dropped
and counted, never raised into the application and never waited for.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections import deque
from pathlib import Path
from typing import Protocol, final, runtime_checkable

import orjson

from pytest_replay.format.events import Event

_log = logging.getLogger("pytest_replay.capture")


@runtime_checkable
class Sink(Protocol):
    """Anything that accepts encoded event lines."""

    def write(self, line: bytes) -> None:
        """Accept one JSONL line (newline included). Must not block for long."""

    def flush(self) -> None:
        """Push buffered lines out (may block; never called on the request path)."""

    def close(self) -> None:
        """Flush and release resources."""


@final
class SinkStats:
    """Counters a sink keeps, readable through ``pytest_replay.stats()``."""

    __slots__ = ("_lock", "_reported", "dropped", "errors", "last_error", "written")

    def __init__(self) -> None:
        self.written = 0
        self.dropped = 0
        self.errors = 0
        self.last_error: str | None = None
        self._reported = False
        self._lock = threading.Lock()

    def drop(self, count: int, reason: str) -> None:
        """Count dropped events and warn once per sink, so logs are not flooded."""
        with self._lock:
            self.dropped += count
            self.last_error = reason
            first = not self._reported
            self._reported = True
        if first:
            _log.warning("telemetry-replay: dropping events (%s); further drops are counted "
                         "in pytest_replay.stats()", reason)

    def as_dict(self) -> dict[str, int | str | None]:
        """A snapshot of the counters."""
        return {"written": self.written, "dropped": self.dropped, "errors": self.errors,
                "last_error": self.last_error}


@final
class MemorySink:
    """Keeps lines in memory: replay's sink, and handy in tests."""

    __slots__ = ("lines", "stats")

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.stats = SinkStats()

    def write(self, line: bytes) -> None:
        """Keep the line."""
        self.lines.append(line)
        self.stats.written += 1

    def flush(self) -> None:
        """Nothing to flush."""

    def close(self) -> None:
        """Nothing to release."""

    def events(self) -> list[Event]:
        """The kept lines decoded (the form replay compares)."""
        return [orjson.loads(line) for line in self.lines]

    def clear(self) -> None:
        """Forget every kept line."""
        self.lines.clear()


@final
class LoggingSink:
    """Sends each event line to a ``logging`` logger (for stacks that ship logs)."""

    __slots__ = ("level", "logger", "stats")

    def __init__(self, logger: str | logging.Logger = "telemetry", level: int = logging.INFO):
        self.logger = logging.getLogger(logger) if isinstance(logger, str) else logger
        self.level = level
        self.stats = SinkStats()

    def write(self, line: bytes) -> None:
        """Log the line without its newline; a failing handler only drops it."""
        try:
            self.logger.log(self.level, "%s", line[:-1].decode("utf-8", "replace"))
            self.stats.written += 1
        except Exception as exc:
            self.stats.drop(1, f"logging failed: {type(exc).__name__}: {exc}")

    def flush(self) -> None:
        """Flush the logger's handlers."""
        for handler in self.logger.handlers:
            try:
                handler.flush()
            except Exception as exc:
                self.stats.drop(0, f"flush failed: {exc}")

    def close(self) -> None:
        """Flush."""
        self.flush()


_FILE_SINKS: weakref.WeakSet[FileSink] = weakref.WeakSet()


@final
class FileSink:
    """Appends JSONL to a file from a background thread, rotating by size.

    ``write`` only appends to a bounded in-memory buffer (``max_buffer``
    lines); the writer thread wakes every ``flush_interval`` seconds or when
    the buffer is half full. A failing disk drops events (counted) and the
    sink retries on the next batch, so it recovers when the fault clears.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_bytes: int = 100 * 1024 * 1024,
        backup_count: int = 5,
        max_buffer: int = 100_000,
        flush_interval: float = 0.2,
    ) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backup_count = backup_count
        self.max_buffer = max_buffer
        self.flush_interval = flush_interval
        self.stats = SinkStats()
        self._buffer: deque[bytes] = deque()
        self._closed = False
        self._start()
        _FILE_SINKS.add(self)

    def _start(self) -> None:
        self._wake = threading.Event()
        self._io_lock = threading.Lock()
        self._fd: int | None = None
        self._size = 0
        self._thread = threading.Thread(
            target=self._run, name="telemetry-replay-sink", daemon=True
        )
        self._thread.start()

    def after_fork_in_child(self) -> None:
        """A forked worker keeps its own buffer and writer thread, not the parent's."""
        self._buffer = deque()
        if not self._closed:
            self._start()

    def write(self, line: bytes) -> None:
        """Queue one line; drop it (counted) if the buffer is full or the sink closed."""
        buffer = self._buffer
        if self._closed or len(buffer) >= self.max_buffer:
            self.stats.drop(1, "sink closed" if self._closed else "buffer full")
            return
        buffer.append(line)
        if len(buffer) * 2 >= self.max_buffer:
            self._wake.set()

    def flush(self) -> None:
        """Write everything buffered so far (blocks the caller; not for the request path)."""
        with self._io_lock:
            self._drain()

    def close(self) -> None:
        """Flush, stop the writer thread and close the file."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=5)
        with self._io_lock:
            self._drain()
            self._close_fd()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            with self._io_lock:
                self._drain()

    def _drain(self) -> None:
        buffer = self._buffer
        while buffer:
            batch: list[bytes] = []
            size = 0
            while buffer and size < 1 << 20:
                line = buffer.popleft()
                batch.append(line)
                size += len(line)
            self._write_batch(batch, size)

    def _write_batch(self, batch: list[bytes], size: int) -> None:
        try:
            if self._fd is None:
                self._open()
            elif self.max_bytes and self._size + size > self.max_bytes and self._size > 0:
                self._rotate()
            assert self._fd is not None
            data = b"".join(batch)
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            self._size += size
            self.stats.written += len(batch)
        except Exception as exc:
            self.stats.errors += 1
            self._close_fd()
            self.stats.drop(len(batch), f"cannot write {self.path}: {type(exc).__name__}: {exc}")

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._size = os.fstat(self._fd).st_size

    def _rotate(self) -> None:
        self._close_fd()
        if self.backup_count > 0:
            for index in range(self.backup_count - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{index}")
                if older.exists():
                    older.replace(self.path.with_name(f"{self.path.name}.{index + 1}"))
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink(missing_ok=True)
        self._open()

    def _close_fd(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None


def _reinit_file_sinks_in_child() -> None:
    for sink in list(_FILE_SINKS):
        sink.after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_file_sinks_in_child)
