"""From a call to an ``http_call`` event: the bodies, the request and response fields, the recorder.

The per-library wrappers hand over their request and response halves as raw
facts (:func:`raw_request`, :func:`raw_response`: copies of what the
application could still change), and :class:`HttpCall` builds the event from
them with the functions here, so every client library writes the same event
for the same call. The building (redaction, encoding) is deferred to the
sink's writer thread when the sink has one.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable, Iterable
from typing import Any, Final, final

from pytest_replay.capture.clock import wall_ns
from pytest_replay.capture.deferred import Pending
from pytest_replay.capture.http_redact import (
    header_text,
    redact_headers,
    redact_text,
    redact_url,
)
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
                      skipped: str | None = None, max_body: int | None = None
                      ) -> dict[str, Any]:
    """The response half of an ``http_call`` event."""
    headers = redact_headers(header_pairs, response=True)
    fields: dict[str, Any] = {"status": int(status), "response_headers": headers}
    if skipped is not None:
        fields["response_body"] = None
        fields["response_body_skipped"] = skipped
    else:
        fields.update(body_fields("response", body, _content_type(headers), max_body))
    return fields


# -- raw facts ---------------------------------------------------------------------------

RawRequest = tuple[str, str, list[tuple[Any, Any]], Any]
"""``(method, url, header pairs, body)`` as the call left them, copied."""
RawResponse = tuple[int, list[tuple[Any, Any]], Any, "str | None"]
"""``(status, header pairs, body, why the body was skipped)``, copied."""

_STREAM: Final = object()
"""Stands for a body that is no text or bytes (a file, a generator): written as a stream."""


def _header_pairs(pairs: Iterable[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """The pairs as a new list; names and values neither str nor bytes become their text now."""
    out: list[tuple[Any, Any]] = []
    for raw_name, raw_value in pairs:
        kind = type(raw_name)
        name = raw_name if kind is str or kind is bytes else header_text(raw_name)
        kind = type(raw_value)
        value = raw_value if kind is str or kind is bytes else header_text(raw_value)
        out.append((name, value))
    return out


def _body(body: Any) -> Any:
    """``body`` as something the application cannot change (what :func:`body_fields` reads)."""
    kind = type(body)
    if body is None or kind is str or kind is bytes:
        return body
    if isinstance(body, str):
        return str.__str__(body)
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    return _STREAM


def raw_request(method: str, url: str, header_pairs: Iterable[tuple[Any, Any]], body: Any
                ) -> RawRequest:
    """The request half's facts, copied now: the event may be built later."""
    return str(method), str(url), _header_pairs(header_pairs), _body(body)


def raw_response(status: int, header_pairs: Iterable[tuple[Any, Any]], body: Any,
                 skipped: str | None = None) -> RawResponse:
    """The response half's facts, copied now."""
    return int(status), _header_pairs(header_pairs), _body(body), skipped


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

    def emit(self, request: Callable[[], RawRequest],
             response: Callable[[], RawResponse] | None,
             error: BaseException | None = None, duration_ns: int | None = None) -> None:
        """Take the call's facts and emit; a failure costs the event (counted), never the call."""
        try:
            ended = time.perf_counter_ns()
            call = HttpCall(self, request(), None if response is None else response(),
                            ended - self.started if duration_ns is None else duration_ns,
                            None if error is None else error_fields(error),
                            STATE.config.max_body)
        except Exception as exc:  # an odd request object must cost the event, not the call
            RUNTIME.drop(f"http_call not captured: {type(exc).__name__}: {exc}", DROP_CATEGORY)
            return
        RUNTIME.emit_deferred(call)


@final
class HttpCall(Pending):
    """An ``http_call`` event's facts; redaction and encoding happen in :meth:`build`."""

    __slots__ = ("correlation_id", "duration_ns", "error", "max_body", "request", "response",
                 "timestamp_ns", "trace_id")

    failure = "http_call not captured"
    category = DROP_CATEGORY

    def __init__(self, recorder: Recorder, request: RawRequest, response: RawResponse | None,
                 duration_ns: int, error: dict[str, str] | None, max_body: int) -> None:
        self.generation = RUNTIME.generation  # Pending's, inline
        self.correlation_id = recorder.correlation_id
        self.trace_id = recorder.trace_id
        self.timestamp_ns = recorder.timestamp_ns
        self.request = request
        self.response = response
        self.duration_ns = duration_ns
        self.error = error
        self.max_body = max_body

    def build(self) -> dict[str, Any]:
        """The event, fields in the order every library writes them."""
        event: dict[str, Any] = {
            "event_type": ev.HTTP_CALL,
            "timestamp_ns": self.timestamp_ns,
            "correlation_id": self.correlation_id,
        }
        if self.trace_id is not None and self.trace_id != self.correlation_id:
            event["trace_id"] = self.trace_id
        method, url, headers, body = self.request
        event.update(request_fields(method, url, headers, body, self.max_body))
        if self.response is not None:
            status, headers, body, skipped = self.response
            event.update(response_fields(status, headers, body, skipped, self.max_body))
        event["duration_ns"] = self.duration_ns
        if self.error is not None:
            event.update(self.error)
        return event


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


