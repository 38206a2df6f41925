"""The ``error`` event: what was raised, where, and the failing frame's locals.

Enough to print "at calculate_tax:15 -> discount_amount = amount / discount_count"
and the values that led there, with secret names redacted like everywhere else.
"""

from __future__ import annotations

import linecache
import types
from typing import TYPE_CHECKING, Any

from pytest_replay.capture.clock import wall_ns
from pytest_replay.format import events as ev

if TYPE_CHECKING:
    from pytest_replay.capture.runtime import Runtime


def error_event(exc: BaseException, correlation_id: str | None, runtime: Runtime
                ) -> dict[str, Any]:
    """An ``error`` event for ``exc`` at the innermost frame its traceback reaches."""
    tb = exc.__traceback__
    frame: types.FrameType | None = None
    lineno = 0
    while tb is not None:
        frame, lineno = tb.tb_frame, tb.tb_lineno
        tb = tb.tb_next
    event: dict[str, Any] = {
        "event_type": ev.ERROR,
        "timestamp_ns": wall_ns(),
        "correlation_id": correlation_id,
        "error_type": type(exc).__name__,
        "error_module": type(exc).__module__,
        "message": message_of(exc, runtime.max_str),
    }
    if frame is not None:
        code = frame.f_code
        event["function_name"] = code.co_name
        event["filename"] = code.co_filename
        event["lineno"] = lineno
        source = _source_line(code.co_filename, lineno)
        if source:
            event["source_line"] = source
        event["locals"] = runtime.encode_named(_safe_locals(frame))
    return event


def message_of(exc: BaseException, limit: int) -> str:
    """``str(exc)`` capped at ``limit`` characters; a raising ``__str__`` gives a placeholder."""
    try:
        text = str(exc)
    except Exception:
        return "<unprintable message>"
    if type(text) is not str:
        return "<unprintable message>"
    return text if len(text) <= limit else text[:limit] + "..."


def _source_line(filename: str, lineno: int) -> str:
    try:
        return linecache.getline(filename, lineno).strip()
    except Exception:  # an odd loader must cost the source line, not the event
        return ""


def _safe_locals(frame: types.FrameType) -> dict[str, Any]:
    try:
        return {k: v for k, v in frame.f_locals.items()
                if type(k) is str and not k.startswith("__")}
    except Exception:  # a frame whose locals cannot be read still yields its error
        return {}
