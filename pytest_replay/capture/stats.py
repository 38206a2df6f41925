"""Counters for what capture wrote and what it had to drop, reported once.

Capture never raises into the application, so the only way an operator
learns that events are missing is these counters (``pytest_replay.stats()``)
and one warning log record per sink at the first drop.
"""

from __future__ import annotations

import logging
import threading
from typing import Final, final

LOG: Final = logging.getLogger("pytest_replay.capture")

# Drop categories, stable keys of ``stats()["dropped_by_reason"]``.
BUFFER_FULL: Final = "buffer_full"
SINK_CLOSED: Final = "sink_closed"
IO_ERROR: Final = "io_error"
SINK_ERROR: Final = "sink_error"
UNENCODABLE: Final = "unencodable"
STALLED: Final = "stalled_at_close"


@final
class SinkStats:
    """Written/dropped counters of one sink; the first drop logs one warning."""

    __slots__ = ("_lock", "_reported", "by_reason", "dropped", "errors", "last_error",
                 "recoveries", "written")

    def __init__(self) -> None:
        self.written = 0
        self.dropped = 0
        self.errors = 0
        self.recoveries = 0
        self.last_error: str | None = None
        self.by_reason: dict[str, int] = {}
        self._reported = False
        self._lock = threading.Lock()

    def drop(self, count: int, reason: str, category: str) -> None:
        """Count ``count`` lost events; warn the first time only, so logs are not flooded."""
        with self._lock:
            self.dropped += count
            self.by_reason[category] = self.by_reason.get(category, 0) + count
            self.last_error = reason
            first = not self._reported
            self._reported = True
        if first:
            LOG.warning("telemetry-replay: dropping events (%s); capture goes on and further "
                        "drops are only counted in pytest_replay.stats()", reason)

    def error(self, reason: str) -> None:
        """Count a failed I/O attempt (its lost events are counted by :meth:`drop`)."""
        with self._lock:
            self.errors += 1
            self.last_error = reason

    def add_written(self, count: int) -> None:
        """Count lines that reached their destination (the writer thread calls this)."""
        with self._lock:
            self.written += count

    def recovered(self) -> None:
        """Note that writing works again after a failure (logged at INFO, not a warning)."""
        with self._lock:
            self.recoveries += 1
            dropped = self.dropped
        LOG.info("telemetry-replay: sink writes again (%d events dropped so far)", dropped)

    def reset_after_fork(self) -> None:
        """A forked worker counts its own events and warns once itself (a new lock too:
        the parent's may have been held by another thread at the fork)."""
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Back to zero, and the next drop warns again."""
        self.written = self.dropped = self.errors = self.recoveries = 0
        self.last_error = None
        self.by_reason = {}
        self._reported = False

    def as_dict(self) -> dict[str, object]:
        """A snapshot of the counters."""
        with self._lock:
            return {
                "written": self.written,
                "dropped": self.dropped,
                "dropped_by_reason": dict(self.by_reason),
                "errors": self.errors,
                "recoveries": self.recoveries,
                "last_error": self.last_error,
            }
