"""Where encoded events go. A sink takes one finished JSONL line (bytes) at a time.

:class:`FileSink`, :class:`LoggingSink` and :class:`BackgroundSink` (which
wraps any object with a ``write(line)`` method) do their I/O on a background
thread, so a slow, failing or stalled destination costs events, counted,
never request time. :class:`MemorySink` is synchronous: replay and tests read
it right after the call.
"""

from __future__ import annotations

import logging
from typing import Protocol, final, runtime_checkable

import orjson

from pytest_replay.capture.buffered import BufferedSink
from pytest_replay.capture.filesink import FileSink
from pytest_replay.capture.stats import SINK_ERROR, SinkStats
from pytest_replay.format.events import Event


@runtime_checkable
class Sink(Protocol):
    """Anything that accepts encoded event lines."""

    def write(self, line: bytes) -> None:
        """Accept one JSONL line (newline included). Must return quickly and not raise."""

    def flush(self) -> bool | None:
        """Push buffered lines out (may block; never called on the request path)."""

    def close(self) -> None:
        """Flush and release resources."""


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

    def flush(self) -> bool:
        """Nothing to flush."""
        return True

    def close(self) -> None:
        """Nothing to release."""

    def events(self) -> list[Event]:
        """The kept lines decoded (the form replay compares)."""
        return [orjson.loads(line) for line in self.lines]

    def clear(self) -> None:
        """Forget every kept line."""
        self.lines.clear()

    def snapshot(self) -> dict[str, object]:
        """Counters for ``pytest_replay.stats()``."""
        out = self.stats.as_dict()
        out["written"] = len(self.lines)
        out["buffered"] = 0
        out["sink"] = "MemorySink"
        return out


@final
class LoggingSink(BufferedSink):
    """Sends each event line, as the message of one record, to a ``logging`` logger.

    For stacks that ship logs rather than files. Records are emitted from the
    sink's writer thread, so a slow handler never slows a request.
    """

    def __init__(
        self,
        logger: str | logging.Logger = "telemetry",
        level: int = logging.INFO,
        *,
        max_buffer: int = 100_000,
        flush_interval: float = 0.2,
        timeout: float = 5.0,
    ) -> None:
        self.logger = logging.getLogger(logger) if isinstance(logger, str) else logger
        self.level = level
        super().__init__(max_buffer=max_buffer, flush_interval=flush_interval, timeout=timeout,
                         thread_name="telemetry-replay-logging-sink")

    def __repr__(self) -> str:
        return f"LoggingSink({self.logger.name!r})"

    def _deliver(self, batch: list[bytes]) -> None:
        logger, level = self.logger, self.level
        if not logger.isEnabledFor(level):
            self._failed(len(batch), f"logger {logger.name!r} does not log level "
                         f"{logging.getLevelName(level)}", "filtered")
            return
        sent = failed = 0
        reason = ""
        for line in batch:
            try:
                logger.log(level, "%s", line[:-1].decode("utf-8", "replace"))
                sent += 1
            except Exception as exc:  # a raising filter; handlers' own errors stay in logging
                failed += 1
                reason = f"logging raised {type(exc).__name__}: {exc}"
        self._delivered(sent)
        if failed:
            self._failed(failed, reason, SINK_ERROR)

    def _release(self) -> None:
        for handler in self.logger.handlers:
            handler.flush()


@final
class BackgroundSink(BufferedSink):
    """Runs any ``write(line)`` object on a background thread, with the same guarantees.

    ``configure(sink=...)`` wraps sinks it does not know in one of these, so a
    custom sink that is slow, raises or hangs cannot hurt the application.
    """

    def __init__(
        self,
        inner: Sink,
        *,
        max_buffer: int = 100_000,
        flush_interval: float = 0.2,
        timeout: float = 5.0,
    ) -> None:
        self.inner = inner
        super().__init__(max_buffer=max_buffer, flush_interval=flush_interval, timeout=timeout,
                         thread_name="telemetry-replay-background-sink")

    def __repr__(self) -> str:
        return f"BackgroundSink({self.inner!r})"

    def _deliver(self, batch: list[bytes]) -> None:
        write = self.inner.write
        sent = failed = 0
        reason = ""
        for line in batch:
            try:
                write(line)
            except Exception as exc:
                if sent:  # runs are reported in order, so a recovery is seen as one
                    self._delivered(sent)
                    sent = 0
                failed += 1
                reason = f"{type(self.inner).__name__}.write raised {type(exc).__name__}: {exc}"
                continue
            if failed:
                self._failed(failed, reason, SINK_ERROR)
                failed = 0
            sent += 1
        self._delivered(sent)
        if failed:
            self._failed(failed, reason, SINK_ERROR)

    def _release(self) -> None:
        self.inner.close()


KNOWN_SINKS = (MemorySink, BufferedSink)
"""Sinks used as they are; anything else runs behind a :class:`BackgroundSink`."""


def adopt(sink: Sink) -> Sink:
    """``sink`` itself if it is one of ours, else the same behind a background thread."""
    if isinstance(sink, KNOWN_SINKS):
        return sink
    return BackgroundSink(sink)

__all__ = ["BackgroundSink", "FileSink", "LoggingSink", "MemorySink", "Sink", "SinkStats", "adopt"]
