"""A bounded buffer drained by one background thread: the request path never waits for I/O.

``write`` appends one finished line to a list (atomic under the GIL, so no
lock on the request path) and returns. A daemon thread wakes every
``flush_interval`` seconds, or early when the buffer is half full, and hands
batches to :meth:`BufferedSink._deliver`. When the buffer is full, or the
destination fails, events are dropped and counted, never waited for.

``flush`` and ``close`` wait at most ``timeout`` seconds: a destination that
stalls for ever (a hung NFS mount, a pipe nobody reads) costs the events it
holds, counted, and never the application's shutdown. Forked workers get a
fresh buffer and writer thread of their own (nothing inherited is written
twice).
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from typing import Any, Final

from pytest_replay.capture._speedups_loader import SPEEDUPS
from pytest_replay.capture.stats import (
    BUFFER_FULL,
    SINK_CLOSED,
    SINK_ERROR,
    STALLED,
    SinkStats,
)

BATCH_LINES: Final = 4096
"""Most lines handed over in one delivery: one ``write(2)`` of about 1 MB for files,
small enough that joining it reuses memory instead of faulting in fresh pages."""
_MARKER: Final = b""
"""Queued by ``flush``: event lines are never empty, so an empty item is a flush request."""


class BufferedSink:
    """Base of the sinks that write from a background thread (file, logging, foreign)."""

    def __init__(
        self,
        *,
        max_buffer: int = 100_000,
        flush_interval: float = 0.2,
        timeout: float = 5.0,
        thread_name: str = "telemetry-replay-sink",
    ) -> None:
        if max_buffer < 1:
            raise ValueError(f"max_buffer must be at least 1, got {max_buffer!r}")
        if flush_interval <= 0 or timeout < 0:
            raise ValueError("flush_interval must be > 0 and timeout >= 0")
        self.max_buffer = max_buffer
        self.flush_interval = flush_interval
        self.timeout = timeout
        self.stats = SinkStats()
        self._thread_name = thread_name
        self._closed = False
        self._thread: threading.Thread
        self._inflight = 0
        self._queue: Any = None
        self._start()
        if SPEEDUPS is not None and type(self).write is BufferedSink.write:
            # ``write`` in C: the same steps, without a Python frame per line. Its list and
            # limit follow the sink's (see _point_queue).
            self._queue = SPEEDUPS.LineQueue(self._buffer, self._soft_limit,
                                             self._write_crowded)
            self.write = self._queue.write  # type: ignore[method-assign]
        _LIVE.add(self)

    # -- the request path -------------------------------------------------------------

    def write(self, line: bytes) -> None:
        """Queue one line; never blocks. Past half full it wakes the writer; full, it drops."""
        buffer = self._buffer
        if len(buffer) < self._soft_limit:
            buffer.append(line)
            return
        self._write_crowded(line)

    def _write_crowded(self, line: bytes) -> None:
        if self._closed:
            self.stats.drop(1, "the sink is closed", SINK_CLOSED)
            return
        buffer = self._buffer
        if len(buffer) >= self.max_buffer:
            self.stats.drop(1, f"buffer full ({self.max_buffer} events): the destination is "
                            "slower than the application or stalled", BUFFER_FULL)
            return
        buffer.append(line)
        self._wake.set()

    # -- flushing and closing ---------------------------------------------------------

    @property
    def buffered(self) -> int:
        """Lines waiting for the writer thread."""
        return len(self._buffer)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every line queued before this call is delivered; False on timeout.

        Flush requests are numbered and queued in order, so the writer
        answers them by counting the markers it has passed.
        """
        if threading.current_thread() is self._thread:
            self._drain()
            return True
        if not self._thread.is_alive():
            return not self._buffer
        with self._flushed:
            self._flush_requests += 1
            ticket = self._flush_requests
            self._buffer.append(_MARKER)
        self._wake.set()
        with self._flushed:
            return self._flushed.wait_for(lambda: self._flush_answers >= ticket,
                                          self.timeout if timeout is None else timeout)

    def close(self, timeout: float | None = None) -> None:
        """Deliver what is queued (waiting at most ``timeout``), stop the writer, release.

        If the destination is stalled, whatever did not make it out in time is
        counted as dropped and the writer thread is abandoned (it is a daemon).
        """
        if self._closed:
            return
        self._closed = True
        self._soft_limit = -1  # every later write takes the counted "closed" path
        self._point_queue()
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        self.flush(limit)
        self._stopping = True
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            self._abandoned = True
            lost = self._sweep() + self._inflight
            if lost:
                self.stats.drop(lost, f"the destination stalled: {lost} events not written "
                                f"within {limit:g}s at close", STALLED)
            return
        late = self._sweep()
        if late:
            self.stats.drop(late, "the sink is closed", SINK_CLOSED)

    def snapshot(self) -> dict[str, object]:
        """Counters plus what is still queued, for ``pytest_replay.stats()``."""
        out = self.stats.as_dict()
        out["buffered"] = self.buffered
        out["sink"] = type(self).__name__
        return out

    # -- the writer thread ------------------------------------------------------------

    def _start(self) -> None:
        self._buffer: list[bytes] = []
        self._soft_limit = -1 if self._closed else max(1, self.max_buffer // 2)
        self._wake = threading.Event()
        self._stopping = False
        self._abandoned = False
        self._inflight = 0
        self._failing = False
        self._flushed = threading.Condition(threading.Lock())
        self._flush_requests = 0
        self._flush_answers = 0
        self._thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
        self._point_queue()
        if not self._closed:
            self._thread.start()

    def _run(self) -> None:
        wake = self._wake
        try:
            while not self._abandoned:
                wake.wait(self.flush_interval)
                wake.clear()
                self._drain()
                if self._stopping and not self._buffer:
                    break
        finally:
            if not self._abandoned:
                self._release_quietly()

    def _drain(self) -> None:
        buffer = self._buffer
        while buffer and not self._abandoned:
            # Only this thread removes items, and writers only append: the first
            # ``count`` items are the same before the slice and at the ``del``, and
            # both are single C-level steps (no per-line Python work).
            count = min(len(buffer), BATCH_LINES)
            batch = buffer[:count]
            del buffer[:count]
            markers = batch.count(_MARKER)
            if markers:
                batch = [line for line in batch if line]
            if batch:
                self._inflight = len(batch)
                try:
                    self._deliver(batch)
                except Exception as exc:  # a bug in a destination costs its batch, not the thread
                    self._failed(len(batch), f"{type(exc).__name__}: {exc}", SINK_ERROR)
                self._inflight = 0
            if markers:
                with self._flushed:
                    self._flush_answers += markers
                    self._flushed.notify_all()

    def _sweep(self) -> int:
        """Empty the queue (after close); return how many lines were in it.

        The queue is swapped out whole: a stalled writer that comes back later
        finds the old one, and what it then delivers is not counted twice
        (``_delivered`` ignores an abandoned sink).
        """
        left, self._buffer = self._buffer, []
        self._point_queue()
        return len(left) - left.count(_MARKER)

    def _point_queue(self) -> None:
        """Tell the C ``write`` (when in use) that the queue or its limit changed."""
        if self._queue is not None:
            self._queue.point(self._buffer, self._soft_limit)

    def _release_quietly(self) -> None:
        try:
            self._release()
        except Exception as exc:
            self.stats.error(f"release failed: {type(exc).__name__}: {exc}")

    # -- what subclasses provide ------------------------------------------------------

    def _deliver(self, batch: list[bytes]) -> None:
        """Send ``batch`` (complete lines) on; report with :meth:`_delivered`/:meth:`_failed`."""
        raise NotImplementedError

    def _release(self) -> None:
        """Free what the destination holds (called once by the writer thread at the end)."""

    def _forget_inherited(self) -> None:
        """In a forked child: drop handles that belong to the parent's writer."""

    # -- accounting helpers for subclasses ----------------------------------------------

    def _delivered(self, count: int) -> None:
        if self._abandoned or count <= 0:
            return
        self.stats.add_written(count)
        if self._failing:
            self._failing = False
            self.stats.recovered()

    def _failed(self, count: int, reason: str, category: str) -> None:
        self._failing = True
        self.stats.error(reason)
        if count > 0:
            self.stats.drop(count, reason, category)

    # -- fork -------------------------------------------------------------------------

    def _after_fork_in_child(self) -> None:
        self.stats.reset_after_fork()
        self._forget_inherited()
        self._start()


_LIVE: weakref.WeakSet[BufferedSink] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for sink in list(_LIVE):
        sink._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
