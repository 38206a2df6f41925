"""Capture state: the configured sink and options, and the per-request context.

Which frame an event belongs to lives in context variables, so threads and
asyncio tasks each see their own call stack. The configuration itself is
process-wide by nature (one sink per process) and lives on one
:class:`Runtime` object.
"""

from __future__ import annotations

import linecache
import random
import sys
import time
import types
import warnings
from contextvars import ContextVar
from typing import Any, Final, final

import orjson

from pytest_replay.capture.ids import IDS
from pytest_replay.capture.redact import DEFAULT_REDACTION, Redaction
from pytest_replay.capture.sinks import Sink
from pytest_replay.format import events as ev
from pytest_replay.format.values import DEFAULT_LIMITS, Limits, encode, encode_mapping

_NEWLINE: Final = orjson.OPT_APPEND_NEWLINE
_SCALARS: Final = frozenset({int, float, bool, type(None)})


@final
class FrameState:
    """The call an event belongs to. ``None`` id means "not sampled"."""

    __slots__ = ("correlation_id", "recorded_error", "trace_id")

    def __init__(self, correlation_id: str | None, trace_id: str | None) -> None:
        self.correlation_id = correlation_id
        self.trace_id = trace_id
        self.recorded_error: BaseException | None = None


@final
class Scope:
    """One request: its id, its trace, and whether it is sampled."""

    __slots__ = ("parent_correlation_id", "request_id", "roots", "sampled", "trace_id")

    def __init__(self, request_id: str, trace_id: str, sampled: bool,
                 parent_correlation_id: str | None) -> None:
        self.request_id = request_id
        self.trace_id = trace_id
        self.sampled = sampled
        self.parent_correlation_id = parent_correlation_id
        self.roots = 0

    def take_root_id(self) -> str:
        """The request id for the first top-level call, then ``<id>.2``, ``<id>.3``..."""
        self.roots += 1
        return self.request_id if self.roots == 1 else f"{self.request_id}.{self.roots}"


CURRENT_FRAME: ContextVar[FrameState | None] = ContextVar("replay_frame", default=None)
CURRENT_SCOPE: ContextVar[Scope | None] = ContextVar("replay_scope", default=None)
UNSAMPLED: Final = FrameState(None, None)


@final
class Runtime:
    """The process's capture configuration and the single place events are emitted."""

    __slots__ = ("active", "limits", "redaction", "sample_rate", "service", "sink",
                 "track_errors_seen")

    def __init__(self) -> None:
        self.sink: Sink | None = None
        self.active = False
        self.service: str | None = None
        self.redaction: Redaction = DEFAULT_REDACTION
        self.limits: Limits = DEFAULT_LIMITS
        self.sample_rate = 1.0
        self.track_errors_seen = True

    def emit(self, event: dict[str, Any]) -> None:
        """Encode and hand one event to the sink; never raises."""
        sink = self.sink
        if sink is None:
            return
        if self.service is not None:
            event["service"] = self.service
        try:
            line = orjson.dumps(event, option=_NEWLINE)
        except Exception as exc:  # an encoder gap must cost an event, not the request
            _count_drop(sink, f"unencodable event: {exc}")
            return
        try:
            sink.write(line)
        except Exception as exc:
            _count_drop(sink, f"sink failed: {type(exc).__name__}: {exc}")

    def sampled(self) -> bool:
        """Decide, once per request, whether it is captured."""
        rate = self.sample_rate
        return rate >= 1.0 or (rate > 0.0 and random.random() < rate)  # noqa: S311

    def encode(self, value: Any) -> Any:
        """Encode one value with this runtime's caps and redaction."""
        kind = type(value)
        if kind in _SCALARS or (kind is str and len(value) <= self.limits.max_str):
            return value
        return encode(value, self.limits, self.redaction.is_secret_key)

    def encode_named(self, values: dict[str, Any]) -> dict[str, Any]:
        """Encode a name -> value mapping, redacting secret names."""
        return encode_mapping(values, self.limits, self.redaction.is_secret_key)

    def error_event(self, exc: BaseException, correlation_id: str | None) -> dict[str, Any]:
        """An ``error`` event for ``exc`` at the innermost frame it passed through."""
        tb = exc.__traceback__
        frame: types.FrameType | None = None
        lineno = 0
        while tb is not None:
            frame, lineno = tb.tb_frame, tb.tb_lineno
            tb = tb.tb_next
        event: dict[str, Any] = {
            "event_type": ev.ERROR,
            "timestamp_ns": time.time_ns(),
            "correlation_id": correlation_id,
            "error_type": type(exc).__name__,
            "error_module": type(exc).__module__,
            "message": _message(exc, self.limits.max_str),
        }
        if frame is not None:
            code = frame.f_code
            event["function_name"] = code.co_name
            event["filename"] = code.co_filename
            event["lineno"] = lineno
            source = linecache.getline(code.co_filename, lineno).strip()
            if source:
                event["source_line"] = source
            event["locals"] = self.encode_named(_safe_locals(frame))
        return event


def _message(exc: BaseException, limit: int) -> str:
    try:
        text = str(exc)
    except Exception:
        return "<unprintable message>"
    return text if len(text) <= limit else text[:limit] + "..."


def _safe_locals(frame: types.FrameType) -> dict[str, Any]:
    try:
        return {k: v for k, v in frame.f_locals.items() if not k.startswith("__")}
    except Exception:
        return {}


def _count_drop(sink: Sink, reason: str) -> None:
    stats = getattr(sink, "stats", None)
    if stats is not None:
        stats.drop(1, reason)
    else:
        RUNTIME_DROPS.drop(reason)


@final
class _LooseDrops:
    """Drops of sinks that keep no stats of their own."""

    __slots__ = ("count", "reported")

    def __init__(self) -> None:
        self.count = 0
        self.reported = False

    def drop(self, reason: str) -> None:
        self.count += 1
        if not self.reported:
            self.reported = True
            warnings.warn(f"telemetry-replay: dropping events ({reason})", RuntimeWarning,
                          stacklevel=1)


RUNTIME_DROPS: Final = _LooseDrops()
RUNTIME: Final = Runtime()


def current_ids() -> tuple[str | None, str | None]:
    """``(correlation_id, trace_id)`` events emitted right now belong to."""
    frame = CURRENT_FRAME.get()
    if frame is not None:
        return frame.correlation_id, frame.trace_id
    scope = CURRENT_SCOPE.get()
    if scope is not None:
        return (scope.request_id, scope.trace_id) if scope.sampled else (None, None)
    return None, None


def new_frame_ids() -> tuple[str | None, str | None, str | None]:
    """``(correlation_id, parent_id, trace_id)`` for a call starting now.

    ``correlation_id`` is None when the request is not sampled.
    """
    parent = CURRENT_FRAME.get()
    if parent is not None:
        if parent.correlation_id is None:
            return None, None, None
        return IDS.next(), parent.correlation_id, parent.trace_id
    scope = CURRENT_SCOPE.get()
    if scope is not None:
        if not scope.sampled:
            return None, None, None
        return scope.take_root_id(), scope.parent_correlation_id, scope.trace_id
    if not RUNTIME.sampled():
        return None, None, None
    cid = IDS.next()
    return cid, None, cid


def python_version() -> str:
    """The interpreter version, for context events."""
    return ".".join(map(str, sys.version_info[:3]))
