"""From a call to an ``http_call`` event: the bodies, the request and response fields, the recorder.

The per-library wrappers build their request and response halves with the
functions here, so every client library writes the same event for the same call.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable, Iterable
from typing import Any, Final, final

from pytest_replay.capture.clock import wall_ns
from pytest_replay.capture.http_redact import redact_headers, redact_text, redact_url
from pytest_replay.capture.http_state import DROP_CATEGORY, LOG, STATE
from pytest_replay.capture.runtime import RUNTIME, current_ids
from pytest_replay.format import events as ev
from pytest_replay.format.values import TAG

_ADDRESS: Final = re.compile(r" at 0x[0-9a-fA-F]+")


# -- bodies ------------------------------------------------------------------------------


def _bytes_value(data: bytes) -> dict[str, str]:
    return {TAG: "bytes", "b64": base64.b64encode(data).decode("ascii")}


def body_fields(prefix: str, body: Any, content_type: str, max_body: int | None = None
                ) -> dict[str, Any]:
    """``<prefix>_body`` (and its markers) for a body as the event writes it.

    Text (UTF-8) is kept as text, JSON as its text, anything else as a tagged
    bytes value. Past ``max_body`` bytes only the head is kept, marked
    ``<prefix>_body_truncated`` with ``<prefix>_body_length`` (the full size in
    bytes). Redaction runs first, so the same body always gives the same value.
    """
    limit = STATE.config.max_body if max_body is None else max_body
    key = f"{prefix}_body"
    if body is None or (isinstance(body, (str, bytes)) and not body):
        return {key: None}
    if isinstance(body, str):
        if len(body) * 4 <= limit:  # short enough whatever its characters
            return {key: redact_text(body, content_type, complete=True)}
        raw = body.encode("utf-8", "surrogatepass")
        text: str | None = body
    elif isinstance(body, (bytes, bytearray, memoryview)):
        raw = bytes(body)
        text = None
    else:
        return {key: None, f"{key}_skipped": "stream"}
    size = len(raw)
    if size <= limit:
        if text is None:
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                return {key: _bytes_value(raw)}
        return {key: redact_text(text, content_type, complete=True, raw=raw)}
    head = raw[:limit]
    try:
        head_text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A character cut at the limit is still text; a bad byte earlier is binary.
        if exc.start < len(head) - 3:
            return {key: _bytes_value(head), f"{key}_truncated": True, f"{key}_length": size}
        head_text = head[: exc.start].decode("utf-8")
    return {key: redact_text(head_text, content_type, complete=False),
            f"{key}_truncated": True, f"{key}_length": size}


def _content_type(headers: dict[str, str | list[str]]) -> str:
    for name, value in headers.items():
        if name.lower() == "content-type":
            return (value[0] if isinstance(value, list) else value).lower()
    return ""


def request_fields(method: str, url: str, header_pairs: Iterable[tuple[Any, Any]], body: Any,
                   max_body: int | None = None) -> dict[str, Any]:
    """The request half of an ``http_call`` event (replay matches on exactly this)."""
    headers = redact_headers(header_pairs)
    fields: dict[str, Any] = {
        "method": method.upper(),
        "url": redact_url(url),
        "request_headers": headers,
    }
    fields.update(body_fields("request", body, _content_type(headers), max_body))
    return fields


def as_written(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` as the sink receives them: emit scans values for secret-shaped text too.

    Replay matches a live request against a recorded one in this form.
    """
    redaction = RUNTIME.redaction
    if redaction.enabled and redaction.value_patterns:
        scrubbed: dict[str, Any] = redaction.scrub_encoded(fields)  # type: ignore[assignment]
        return scrubbed
    return fields


def response_fields(status: int, header_pairs: Iterable[tuple[Any, Any]], body: Any,
                      skipped: str | None = None) -> dict[str, Any]:
    headers = redact_headers(header_pairs, response=True)
    fields: dict[str, Any] = {"status": int(status), "response_headers": headers}
    if skipped is not None:
        fields["response_body"] = None
        fields["response_body_skipped"] = skipped
    else:
        fields.update(body_fields("response", body, _content_type(headers)))
    return fields


# -- events ------------------------------------------------------------------------------


@final
class Recorder:
    """One call being captured: who it belongs to and when it started."""

    __slots__ = ("correlation_id", "started", "timestamp_ns", "trace_id")

    def __init__(self, correlation_id: str, trace_id: str | None) -> None:
        self.correlation_id = correlation_id
        self.trace_id = trace_id
        self.timestamp_ns = wall_ns()
        self.started = time.perf_counter_ns()

    def emit(self, request: Callable[[], dict[str, Any]],
             response: Callable[[], dict[str, Any]] | None,
             error: BaseException | None = None, duration_ns: int | None = None) -> None:
        """Build and emit the event; a failure here costs the event (counted), never the call."""
        try:
            event: dict[str, Any] = {
                "event_type": ev.HTTP_CALL,
                "timestamp_ns": self.timestamp_ns,
                "correlation_id": self.correlation_id,
            }
            if self.trace_id is not None and self.trace_id != self.correlation_id:
                event["trace_id"] = self.trace_id
            event.update(request())
            if response is not None:
                event.update(response())
            event["duration_ns"] = (time.perf_counter_ns() - self.started
                                    if duration_ns is None else duration_ns)
            if error is not None:
                event.update(error_fields(error))
        except Exception as exc:  # an odd request object must cost the event, not the call
            RUNTIME.drop(f"http_call not captured: {type(exc).__name__}: {exc}", DROP_CATEGORY)
            return
        RUNTIME.emit(event)


def error_fields(error: BaseException) -> dict[str, str]:
    """``error_type``/``error_module``/``error_message`` of a failed call (addresses removed)."""
    kind = type(error)
    try:
        message = str(error)
    except Exception:
        message = "<unprintable message>"
    limit = RUNTIME.max_str
    if len(message) > limit:
        message = message[:limit] + "..."
    return {"error_type": kind.__qualname__, "error_module": kind.__module__,
            "error_message": _ADDRESS.sub("", message)}


def start_recording(url: str) -> Recorder | None:
    """A recorder when this call is to be captured, else None (the fast path)."""
    if not RUNTIME.active:
        return None
    correlation_id, trace_id = current_ids()
    if correlation_id is None or STATE.config.excluded(url):
        return None
    return Recorder(correlation_id, trace_id)


def not_captured(exc: Exception) -> None:
    """Count a call capture could not follow (the call itself goes on)."""
    RUNTIME.drop(f"http_call not captured: {type(exc).__name__}: {exc}", DROP_CATEGORY)


def attach_request(error: BaseException, request: Any) -> None:
    """Give a rebuilt library error its request, as the library would have (if it has none)."""
    if getattr(error, "__dict__", {}).get("request") is not None:
        return
    try:
        error.request = request  # type: ignore[attr-defined]
    except Exception as exc:  # some exception types refuse attributes; the error stands
        LOG.debug("cannot set request on %s: %s", type(error).__name__, exc)


def elapsed_ns(response: Any) -> int | None:
    elapsed = getattr(response, "elapsed", None)
    try:
        return int(elapsed.total_seconds() * 1e9) if elapsed is not None else None
    except Exception:
        return None


