"""HTTP capture: one ``http_call`` event per outbound call, whatever client made it.

:func:`install_http_capture` wraps the public entry points of requests
(``Session.send``), httpx (``Client.send``, ``AsyncClient.send``), urllib3
(``HTTPConnectionPool.urlopen``) and http.client (``HTTPConnection.request`` +
``getresponse``, which urllib.request also uses). Each library is imported only
by the installer, and only when it is installed.

The outermost wrapper owns the call: it sets a context variable naming its
layer, so the layers below it (requests -> urllib3 -> http.client) pass
through and one call is one event. The same wrappers run during replay, so a
served call emits the same event the recorded one did; for that, everything
written here is deterministic and redaction is idempotent (redacting a
redacted request gives it back unchanged).

Capture never raises into the application and never consumes a streamed body
the application has not read: such a body is marked ``*_body_skipped``.
"""

from __future__ import annotations

import base64
import functools
import importlib
import importlib.util
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextvars import ContextVar
from typing import Any, Final, final
from urllib.parse import unquote_plus, urlsplit

import orjson

from pytest_replay.capture.redact import Redaction
from pytest_replay.capture.runtime import RUNTIME, current_ids
from pytest_replay.format import events as ev
from pytest_replay.format.values import REDACTED_TEXT, TAG

__all__ = [
    "DEFAULT_MAX_BODY",
    "REDACTED_CARD",
    "ServedError",
    "active_layer",
    "as_written",
    "body_fields",
    "http_capture_installed",
    "install_http_capture",
    "redact_headers",
    "redact_url",
    "request_fields",
    "uninstall_http_capture",
    "wrap_http_client_class",
]

DEFAULT_MAX_BODY: Final = 16 * 1024
"""Bodies longer than this many bytes keep their first bytes only (``*_body_truncated``)."""
REDACTED_CARD: Final = "[REDACTED:card]"
DROP_CATEGORY: Final = "http_capture"
"""The ``stats()["dropped_by_reason"]`` key for events this module failed to build."""

_LOG: Final = logging.getLogger("pytest_replay.capture")
_ALWAYS_SECRET_HEADERS: Final = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
)
_HOP_BY_HOP_RESPONSE: Final = frozenset({"transfer-encoding"})
_DERIVED_REQUEST: Final = frozenset({"content-length"})
_ADDRESS: Final = re.compile(r" at 0x[0-9a-fA-F]+")
_JSON_START: Final = re.compile(r"\s*[\[{]")
_CARD: Final = re.compile(r"(?<![0-9])[2-6](?:[ -]?[0-9]){12,18}(?![0-9])")
_CARD_CHARS: Final = bytes(48 if chr(i) in "0123456789 -" else 32 for i in range(256))
_THIRTEEN: Final = b"0" * 13
_JSON_PAIR: Final = re.compile(
    r'"((?:[^"\\]|\\.)*)"(\s*:\s*)("(?:[^"\\]|\\.)*(?:"|$)|[-+\w.]+)'
)
_USERINFO: Final = re.compile(r"^([a-zA-Z][\w+.-]*://[^/?#@:]*:)([^/?#@]*)@")
_COOKIE_HEADERS: Final = frozenset({"cookie", "set-cookie"})
_COOKIE_PAIR: Final = re.compile(r"([^=;,\s]+)=([^;,]*)")
_COOKIE_ATTRIBUTES: Final = frozenset(
    {"path", "domain", "expires", "max-age", "samesite", "secure", "httponly", "priority",
     "partitioned", "version", "comment"}
)


# -- configuration and per-call state ---------------------------------------------------


@final
class HttpCaptureConfig:
    """What :func:`install_http_capture` was told: hosts left out, body cap."""

    __slots__ = ("exact_hosts", "host_suffixes", "max_body")

    def __init__(self, exclude_hosts: Iterable[str], max_body: int) -> None:
        exact: set[str] = set()
        suffixes: list[str] = []
        for host in exclude_hosts:
            name = host.strip().lower()
            if name.startswith("*."):
                suffixes.append(name[1:])
            elif name.startswith("."):
                suffixes.append(name)
            elif name:
                exact.add(name)
        self.exact_hosts = frozenset(exact)
        self.host_suffixes = tuple(suffixes)
        self.max_body = max_body

    def excluded(self, url: str) -> bool:
        """Whether calls to ``url``'s host are left out of the trace."""
        if not self.exact_hosts and not self.host_suffixes:
            return False
        try:
            host = (urlsplit(url).hostname or "").lower()
        except ValueError:
            return False
        return host in self.exact_hosts or host.endswith(self.host_suffixes)


@final
class _State:
    """What is installed: process-wide by nature, like the patched classes themselves."""

    __slots__ = ("config", "enabled", "lock", "patches")

    def __init__(self) -> None:
        self.config = HttpCaptureConfig((), DEFAULT_MAX_BODY)
        self.enabled = False
        self.lock = threading.Lock()
        self.patches: list[tuple[Any, str, Any, Any]] = []  # owner, name, original, wrapper


_STATE: Final = _State()
_LAYER: ContextVar[str | None] = ContextVar("replay_http_layer", default=None)


class ServedError(Exception):
    """Raised by replay's stubs below the client library; capture re-raises ``replacement``.

    The libraries between the stub and the application wrap ``OSError`` into
    their own errors (and urllib3 retries them). This class is no ``OSError``,
    so it travels through them untouched up to the outermost capture wrapper,
    which raises ``replacement`` in its place: the error the recording holds,
    or :class:`~pytest_replay.replay.external.UnrecordedCall`.
    """

    def __init__(self, replacement: BaseException) -> None:
        super().__init__(str(replacement))
        self.replacement = replacement


def active_layer() -> str | None:
    """The client library that owns the HTTP call in progress (``"httpx"``...), or None."""
    return _LAYER.get()


def http_capture_installed() -> bool:
    """Whether :func:`install_http_capture` is in effect."""
    return _STATE.enabled


# -- redaction ---------------------------------------------------------------------------


def _secret(name: str) -> bool:
    return RUNTIME.is_secret(name)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("latin-1")
    return str(value)


_KEEP: Final = 0
_SECRET: Final = 1
_COOKIE: Final = 2
_LEAVE_OUT: Final = 3


@functools.lru_cache(maxsize=2048)
def _header_kind(redaction: Redaction, name: str, response: bool) -> tuple[str, int]:
    """``(lowered name, what to do with the value)``; header names are a small vocabulary."""
    lowered = name.lower()
    if lowered in (_HOP_BY_HOP_RESPONSE if response else _DERIVED_REQUEST):
        return lowered, _LEAVE_OUT
    if not redaction.enabled:
        return lowered, _KEEP
    if lowered in _COOKIE_HEADERS:
        return lowered, _COOKIE
    if lowered in _ALWAYS_SECRET_HEADERS or redaction.is_secret_key(name):
        return lowered, _SECRET
    return lowered, _KEEP


def redact_headers(
    pairs: Iterable[tuple[Any, Any]], *, response: bool = False
) -> dict[str, str | list[str]]:
    """Headers as the event writes them: first-seen name case, repeats as a list, secrets hidden.

    ``Transfer-Encoding`` is left out of response headers: it describes the
    connection, and a served answer has none. ``Content-Length`` is left out of
    request headers: the body says it, and with a redacted secret in the body
    it would differ between production and replay (and tell the secret's length).
    """
    redaction = RUNTIME.redaction
    out: dict[str, str | list[str]] = {}
    names: dict[str, str] = {}
    for raw_name, raw_value in pairs:
        name = raw_name if type(raw_name) is str else _text(raw_name)
        lowered, kind = _header_kind(redaction, name, response)
        if kind == _LEAVE_OUT:
            continue
        if kind == _SECRET:
            value = REDACTED_TEXT
        else:
            value = raw_value if type(raw_value) is str else _text(raw_value)
            if kind == _COOKIE:
                value = _redact_cookies(value)
        first = names.get(lowered)
        if first is None:
            names[lowered] = name
            out[name] = value
        else:
            held = out[first]
            out[first] = [*held, value] if isinstance(held, list) else [held, value]
    return out


def _cookie_sub(match: re.Match[str]) -> str:
    name, value = match.group(1), match.group(2)
    if name.lower() in _COOKIE_ATTRIBUTES or value == REDACTED_TEXT:
        return match.group(0)
    return f"{name}={REDACTED_TEXT}"


def _redact_cookies(value: str) -> str:
    """Cookie values hidden, names and attributes kept: a served cookie comes back the same."""
    if "=" not in value:
        return REDACTED_TEXT
    return _COOKIE_PAIR.sub(_cookie_sub, value)


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        if index % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def _is_card(digits: str) -> bool:
    return any(_luhn(digits[:size]) for size in range(min(len(digits), 19), 12, -1))


def _card_sub(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = text.replace(" ", "").replace("-", "")
    return REDACTED_CARD if _is_card(digits) else text


def _redact_cards(text: str) -> str:
    if not _may_hold_card(text.encode("utf-8", "surrogatepass")):
        return text
    return _CARD.sub(_card_sub, text)


def _may_hold_card(data: bytes) -> bool:
    """False only when ``data`` has no run of 13 digits, spaces or dashes: no card fits."""
    return _THIRTEEN in data.translate(_CARD_CHARS)


def _collect_keys(value: Any, keys: set[str]) -> None:
    if type(value) is dict:
        keys.update(value)
        items: Iterable[Any] = value.values()
    else:
        items = value
    for item in items:
        kind = type(item)
        if kind is dict or kind is list:
            _collect_keys(item, keys)


def _any_secret_key(parsed: Any) -> bool:
    """Whether any object key in a parsed JSON document is secret (cached verdicts first)."""
    if type(parsed) is not dict and type(parsed) is not list:
        return False
    keys: set[str] = set()
    _collect_keys(parsed, keys)
    redaction = RUNTIME.redaction
    verdicts = redaction.verdicts
    for key in keys:
        verdict = verdicts.get(key)
        if verdict is None:
            verdict = redaction.is_secret_key(key)
        if verdict:
            return True
    return False


def _redact_pairs(text: str) -> str:
    """``a=1&token=x`` with secret names' values replaced; untouched text when none is."""
    if "=" not in text:
        return text
    parts = text.split("&")
    changed = False
    for index, part in enumerate(parts):
        name, eq, value = part.partition("=")
        if eq and value != REDACTED_TEXT and _secret(unquote_plus(name)):
            parts[index] = f"{name}={REDACTED_TEXT}"
            changed = True
    return "&".join(parts) if changed else text


def redact_url(url: str) -> str:
    """``url`` with a userinfo password, secret query parameters and card numbers hidden."""
    if not RUNTIME.redaction.enabled:
        return url
    match = _USERINFO.match(url)
    if match is not None and match.group(2) != REDACTED_TEXT:
        url = f"{match.group(1)}{REDACTED_TEXT}@{url[match.end():]}"
    start = url.find("?")
    if start >= 0:
        end = url.find("#", start)
        end = len(url) if end < 0 else end
        query = url[start + 1 : end]
        redacted_query = _redact_pairs(query)
        if redacted_query is not query:
            url = f"{url[: start + 1]}{redacted_query}{url[end:]}"
    return _redact_cards(url)


_MISSING: Final = object()


def _redact_json(value: Any) -> tuple[Any, bool]:
    kind = type(value)
    if kind is dict:
        changed = False
        out: dict[Any, Any] = {}
        for key, item in value.items():
            if type(key) is str and _secret(key):
                out[key] = REDACTED_TEXT
                changed = True
            else:
                out[key], item_changed = _redact_json(item)
                changed = changed or item_changed
        return out, changed
    if kind is list:
        changed = False
        items = []
        for item in value:
            new, item_changed = _redact_json(item)
            items.append(new)
            changed = changed or item_changed
        return items, changed
    if kind is str:
        new_text = _redact_cards(value)
        return new_text, new_text != value
    if kind is int and 13 <= len(str(abs(value))) <= 19:
        digits = str(abs(value))
        if digits[0] in "23456" and _luhn(digits):
            return REDACTED_CARD, True
    return value, False


def _json_pair_sub(match: re.Match[str]) -> str:
    if not _secret(match.group(1)):
        return match.group(0)
    return f'"{match.group(1)}"{match.group(2)}"{REDACTED_TEXT}"'


def _redact_text(text: str, content_type: str, *, complete: bool, raw: bytes | None = None
                 ) -> str:
    """Secrets and card numbers out of a body; JSON is re-written only when it changed."""
    if not RUNTIME.redaction.enabled:
        return text
    if _JSON_START.match(text):
        if complete:
            try:  # orjson first: fast, and most bodies hold nothing to hide
                quick = orjson.loads(text)
            except orjson.JSONDecodeError:
                quick = _MISSING  # NaN, huge integers...: the standard parser decides
            if (quick is not _MISSING and not _any_secret_key(quick)
                    and not _may_hold_card(
                        text.encode("utf-8", "surrogatepass") if raw is None else raw)):
                return text  # kept exactly as it came
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = _MISSING
            if parsed is not _MISSING:
                new, changed = _redact_json(parsed)
                if not changed:
                    return text
                return json.dumps(new, ensure_ascii=False, separators=(",", ":"))
        text = _JSON_PAIR.sub(_json_pair_sub, text)
    elif "x-www-form-urlencoded" in content_type:
        text = _redact_pairs(text)
    return _redact_cards(text)


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
    limit = _STATE.config.max_body if max_body is None else max_body
    key = f"{prefix}_body"
    if body is None or (isinstance(body, (str, bytes)) and not body):
        return {key: None}
    if isinstance(body, str):
        if len(body) * 4 <= limit:  # short enough whatever its characters
            return {key: _redact_text(body, content_type, complete=True)}
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
        return {key: _redact_text(text, content_type, complete=True, raw=raw)}
    head = raw[:limit]
    try:
        head_text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A character cut at the limit is still text; a bad byte earlier is binary.
        if exc.start < len(head) - 3:
            return {key: _bytes_value(head), f"{key}_truncated": True, f"{key}_length": size}
        head_text = head[: exc.start].decode("utf-8")
    return {key: _redact_text(head_text, content_type, complete=False),
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


def _response_fields(status: int, header_pairs: Iterable[tuple[Any, Any]], body: Any,
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
class _Recorder:
    """One call being captured: who it belongs to and when it started."""

    __slots__ = ("correlation_id", "started", "timestamp_ns", "trace_id")

    def __init__(self, correlation_id: str, trace_id: str | None) -> None:
        self.correlation_id = correlation_id
        self.trace_id = trace_id
        self.timestamp_ns = time.time_ns()
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


def _start(url: str) -> _Recorder | None:
    """A recorder when this call is to be captured, else None (the fast path)."""
    if not RUNTIME.active:
        return None
    correlation_id, trace_id = current_ids()
    if correlation_id is None or _STATE.config.excluded(url):
        return None
    return _Recorder(correlation_id, trace_id)


def _not_captured(exc: Exception) -> None:
    """Count a call capture could not follow (the call itself goes on)."""
    RUNTIME.drop(f"http_call not captured: {type(exc).__name__}: {exc}", DROP_CATEGORY)


def _attach_request(error: BaseException, request: Any) -> None:
    """Give a rebuilt library error its request, as the library would have (if it has none)."""
    if getattr(error, "__dict__", {}).get("request") is not None:
        return
    try:
        error.request = request  # type: ignore[attr-defined]
    except Exception as exc:  # some exception types refuse attributes; the error stands
        _LOG.debug("cannot set request on %s: %s", type(error).__name__, exc)


def _elapsed_ns(response: Any) -> int | None:
    elapsed = getattr(response, "elapsed", None)
    try:
        return int(elapsed.total_seconds() * 1e9) if elapsed is not None else None
    except Exception:
        return None


# -- requests ----------------------------------------------------------------------------


def _requests_request(prepared: Any) -> Callable[[], dict[str, Any]]:
    return lambda: request_fields(prepared.method or "GET", prepared.url or "",
                                  prepared.headers.items(), prepared.body)


def _requests_response(response: Any, streamed: bool) -> Callable[[], dict[str, Any]]:
    if streamed:
        return lambda: _response_fields(response.status_code, response.headers.items(), None,
                                        skipped="stream")
    return lambda: _response_fields(response.status_code, response.headers.items(),
                                    response.content)


def _wrap_requests_send(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def send(self: Any, request: Any, **kwargs: Any) -> Any:
        if not _STATE.enabled or _LAYER.get() is not None:
            return original(self, request, **kwargs)
        recorder = _start(request.url or "")
        token = _LAYER.set("requests")
        try:
            response = original(self, request, **kwargs)
        except ServedError as exc:
            error = exc.replacement
            _attach_request(error, request)
            if recorder is not None:
                recorder.emit(_requests_request(request), None, error)
            raise error from None
        except Exception as exc:
            if recorder is not None:
                recorder.emit(_requests_request(request), None, exc)
            raise
        finally:
            _LAYER.reset(token)
        if recorder is not None:
            for hop in response.history:
                recorder.emit(_requests_request(hop.request), _requests_response(hop, False),
                              duration_ns=_elapsed_ns(hop))
            recorder.emit(_requests_request(response.request),
                          _requests_response(response, bool(kwargs.get("stream"))))
        return response

    return send


# -- httpx -------------------------------------------------------------------------------


def _httpx_body(request: Any) -> Any:
    try:
        return request.content
    except Exception:  # a streaming request body the application has not read
        return _STREAMED


_STREAMED: Final = object()


def _httpx_request(request: Any) -> Callable[[], dict[str, Any]]:
    return lambda: request_fields(request.method, str(request.url), request.headers.raw,
                                  _httpx_body(request))


def _httpx_response(response: Any, streamed: bool) -> Callable[[], dict[str, Any]]:
    if streamed:
        return lambda: _response_fields(response.status_code, response.headers.raw, None,
                                        skipped="stream")
    return lambda: _response_fields(response.status_code, response.headers.raw,
                                    response.content)


def _httpx_finished(recorder: _Recorder, response: Any, streamed: bool) -> None:
    for hop in response.history:
        recorder.emit(_httpx_request(hop.request), _httpx_response(hop, False),
                      duration_ns=_elapsed_ns(hop))
    recorder.emit(_httpx_request(response.request), _httpx_response(response, streamed))


def _wrap_httpx_send(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def send(self: Any, request: Any, **kwargs: Any) -> Any:
        if not _STATE.enabled or _LAYER.get() is not None:
            return original(self, request, **kwargs)
        recorder = _start(str(request.url))
        token = _LAYER.set("httpx")
        try:
            response = original(self, request, **kwargs)
        except ServedError as exc:
            error = exc.replacement
            _attach_request(error, request)
            if recorder is not None:
                recorder.emit(_httpx_request(request), None, error)
            raise error from None
        except Exception as exc:
            if recorder is not None:
                recorder.emit(_httpx_request(request), None, exc)
            raise
        finally:
            _LAYER.reset(token)
        if recorder is not None:
            _httpx_finished(recorder, response, bool(kwargs.get("stream")))
        return response

    return send


def _wrap_httpx_async_send(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def send(self: Any, request: Any, **kwargs: Any) -> Any:
        if not _STATE.enabled or _LAYER.get() is not None:
            return await original(self, request, **kwargs)
        recorder = _start(str(request.url))
        token = _LAYER.set("httpx")
        try:
            response = await original(self, request, **kwargs)
        except ServedError as exc:
            error = exc.replacement
            _attach_request(error, request)
            if recorder is not None:
                recorder.emit(_httpx_request(request), None, error)
            raise error from None
        except Exception as exc:
            if recorder is not None:
                recorder.emit(_httpx_request(request), None, exc)
            raise
        finally:
            _LAYER.reset(token)
        if recorder is not None:
            _httpx_finished(recorder, response, bool(kwargs.get("stream")))
        return response

    return send


# -- urllib3 -----------------------------------------------------------------------------


def _origin(scheme: str, host: str, port: int | None) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host}" if port in (None, default) else f"{scheme}://{host}:{port}"


def _absolute(origin: Callable[[], str], target: str) -> str:
    if target.startswith("/") or not target:
        return origin() + (target or "/")
    return target  # already absolute (a request through a proxy)


def _wrap_urlopen(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def urlopen(self: Any, method: str, url: str, body: Any = None, headers: Any = None,
                *args: Any, **kwargs: Any) -> Any:
        if not _STATE.enabled or _LAYER.get() is not None:
            return original(self, method, url, body, headers, *args, **kwargs)
        full_url = url
        try:
            full_url = _absolute(lambda: _origin(self.scheme, self.host, self.port), url)
            recorder = _start(full_url)
        except Exception as exc:  # an unusual pool: the call goes on, uncaptured
            _not_captured(exc)
            recorder = None
        token = _LAYER.set("urllib3")
        sent_headers = headers if headers is not None else self.headers

        def request() -> dict[str, Any]:
            return request_fields(method, full_url, dict(sent_headers).items(), body)

        try:
            response = original(self, method, url, body, headers, *args, **kwargs)
        except ServedError as exc:
            if recorder is not None:
                recorder.emit(request, None, exc.replacement)
            raise exc.replacement from None
        except Exception as exc:
            if recorder is not None:
                recorder.emit(request, None, exc)
            raise
        finally:
            _LAYER.reset(token)
        if recorder is not None:
            # urlopen's parameters after ``headers``: preload_content is the ninth.
            preloaded = bool(args[8] if len(args) > 8 else kwargs.get("preload_content", True))
            recorder.emit(request, lambda: _response_fields(
                response.status, response.headers.items(),
                response.data if preloaded else None,
                skipped=None if preloaded else "stream"))
        return response

    return urlopen


# -- http.client -------------------------------------------------------------------------

_PENDING: Final = "_telemetry_replay_http_call"


@final
class _Pending:
    """A request sent through http.client whose answer ``getresponse`` will read."""

    __slots__ = ("method", "recorder", "request")

    def __init__(self, recorder: _Recorder, request: Callable[[], dict[str, Any]],
                 method: str) -> None:
        self.recorder = recorder
        self.request = request
        self.method = method


def _split_request_args(args: Sequence[Any], kwargs: dict[str, Any]
                        ) -> tuple[str, str, Any, Any]:
    names = ("method", "url", "body", "headers")
    values: list[Any] = [None, None, None, None]
    for index, value in enumerate(args[:4]):
        values[index] = value
    for index, name in enumerate(names):
        if name in kwargs:
            values[index] = kwargs[name]
    return str(values[0]), str(values[1]), values[2], values[3] or {}


def _http_client_response(response: Any, method: str) -> Callable[[], dict[str, Any]]:
    """Read a body of known, small length now and give it back; never a stream.

    A replayed answer (vcrpy's) holds its body in memory and is read without
    consuming it; the same rules decide, from the same headers, what is kept.
    """
    status = response.status
    headers = response.getheaders()
    replayed = hasattr(response, "recorded_response")
    skipped: str | None = None
    body: Any = None
    if method != "HEAD" and status not in (204, 304) and not 100 <= status < 200:
        length = _declared_length(headers) if replayed else response.length
        if length is None:
            skipped = "stream"
        elif length > _STATE.config.max_body:
            skipped = "too_large"
        elif replayed:
            body = response.data
        else:
            body = _read_and_restore(response)
            if body is None:
                skipped = "read_error"
    return lambda: _response_fields(status, headers, body, skipped=skipped)


def _declared_length(headers: Iterable[tuple[str, str]]) -> int | None:
    for name, value in headers:
        if name.lower() == "content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _read_and_restore(response: Any) -> bytes | None:
    import io

    try:
        data = response.read()
    except Exception as exc:  # the application will meet the same failure when it reads
        _LOG.debug("http.client body not captured: %s", exc)
        return None
    response.fp = io.BufferedReader(io.BytesIO(data))
    response.length = len(data)
    return bytes(data)


def _http_client_wrappers(scheme_of: Callable[[Any], str]
                          ) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """``request``/``getresponse`` replacements calling whatever ``cls`` defined before."""

    def wrap_request(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def request(self: Any, *args: Any, **kwargs: Any) -> Any:
            if not _STATE.enabled or _LAYER.get() is not None:
                return original(self, *args, **kwargs)
            self.__dict__.pop(_PENDING, None)
            try:
                method, target, body, headers = _split_request_args(args, kwargs)
                url = _absolute(lambda: _origin(scheme_of(self), self.host, self.port), target)
                recorder = _start(url)
            except Exception as exc:  # an unusual connection: the call goes on, uncaptured
                _not_captured(exc)
                return original(self, *args, **kwargs)

            def fields() -> dict[str, Any]:
                return request_fields(method, url, dict(headers).items(), body)

            token = _LAYER.set("http.client")
            try:
                result = original(self, *args, **kwargs)
            except Exception as exc:
                if recorder is not None:
                    recorder.emit(fields, None, exc)
                raise
            finally:
                _LAYER.reset(token)
            if recorder is not None:
                self.__dict__[_PENDING] = _Pending(recorder, fields, method.upper())
            return result

        return request

    def wrap_getresponse(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def getresponse(self: Any, *args: Any, **kwargs: Any) -> Any:
            if not _STATE.enabled or _LAYER.get() is not None:
                return original(self, *args, **kwargs)
            pending: _Pending | None = self.__dict__.pop(_PENDING, None)
            token = _LAYER.set("http.client")
            try:
                response = original(self, *args, **kwargs)
            except ServedError as exc:
                if pending is not None:
                    pending.recorder.emit(pending.request, None, exc.replacement)
                raise exc.replacement from None
            except Exception as exc:
                if pending is not None:
                    pending.recorder.emit(pending.request, None, exc)
                raise
            finally:
                _LAYER.reset(token)
            if pending is not None:
                try:
                    answer = _http_client_response(response, pending.method)
                except Exception as exc:  # capture must not break the application's read
                    RUNTIME.drop(f"http_call not captured: {type(exc).__name__}: {exc}",
                                 DROP_CATEGORY)
                    return response
                pending.recorder.emit(pending.request, answer)
            return response

        return getresponse

    return wrap_request, wrap_getresponse


def wrap_http_client_class(cls: type, scheme: str) -> Callable[[], None]:
    """Capture calls through ``cls`` (an http.client-like connection class); returns the undo.

    Replay uses this for the connection classes vcrpy puts in ``http.client``
    during a replay, which are not subclasses of the real ones.
    """
    wrap_request, wrap_getresponse = _http_client_wrappers(lambda _conn: scheme)
    had = {name: name in cls.__dict__ for name in ("request", "getresponse")}
    saved = {name: cls.__dict__.get(name) for name in had}
    type.__setattr__(cls, "request", wrap_request(getattr(cls, "request")))  # noqa: B009
    type.__setattr__(cls, "getresponse", wrap_getresponse(getattr(cls, "getresponse")))  # noqa: B009

    def undo() -> None:
        for name, present in had.items():
            if present:
                type.__setattr__(cls, name, saved[name])
            else:
                type.__delattr__(cls, name)

    return undo


# -- installing --------------------------------------------------------------------------


def _patch(owner: Any, name: str, make: Callable[[Callable[..., Any]], Callable[..., Any]]
           ) -> None:
    original = owner.__dict__[name]
    wrapper = make(original)
    setattr(owner, name, wrapper)
    _STATE.patches.append((owner, name, original, wrapper))


def _install_http_client() -> None:
    import http.client

    https = http.client.HTTPSConnection
    wrap_request, wrap_getresponse = _http_client_wrappers(
        lambda conn: "https" if isinstance(conn, https) else "http")
    _patch(http.client.HTTPConnection, "request", wrap_request)
    _patch(http.client.HTTPConnection, "getresponse", wrap_getresponse)


def _install_urllib3() -> None:
    connectionpool = importlib.import_module("urllib3.connectionpool")
    _patch(connectionpool.HTTPConnectionPool, "urlopen", _wrap_urlopen)


def _install_requests() -> None:
    sessions = importlib.import_module("requests.sessions")
    _patch(sessions.Session, "send", _wrap_requests_send)


def _install_httpx() -> None:
    httpx = importlib.import_module("httpx")
    _patch(httpx.Client, "send", _wrap_httpx_send)
    _patch(httpx.AsyncClient, "send", _wrap_httpx_async_send)


_INSTALLERS: Final = (
    ("http.client", _install_http_client),
    ("urllib3", _install_urllib3),
    ("requests", _install_requests),
    ("httpx", _install_httpx),
)


def install_http_capture(*, exclude_hosts: Iterable[str] = (),
                         max_body: int = DEFAULT_MAX_BODY) -> None:
    """Capture outbound HTTP calls of every installed client library as ``http_call`` events.

    Idempotent and thread-safe; calling it again only changes the options.
    ``exclude_hosts`` leaves calls to those hosts out (``"api.example.com"``,
    or ``"*.example.com"`` for a domain); ``max_body`` caps each body in bytes.
    A call is written only inside a sampled request while capture is active.
    """
    if isinstance(exclude_hosts, str):
        raise TypeError("exclude_hosts takes a sequence of host names, not one string")
    if max_body < 0:
        raise ValueError(f"max_body must be 0 or more bytes, got {max_body!r}")
    with _STATE.lock:
        _STATE.config = HttpCaptureConfig(exclude_hosts, max_body)
        if _STATE.enabled:
            return
        for module, installer in _INSTALLERS:
            if importlib.util.find_spec(module.partition(".")[0]) is None:
                continue
            try:
                installer()
            except Exception as exc:  # an incompatible version: capture the others
                _LOG.warning("telemetry-replay: HTTP capture for %s not installed: %s: %s",
                             module, type(exc).__name__, exc)
        _STATE.enabled = True


def uninstall_http_capture() -> None:
    """Remove what :func:`install_http_capture` installed (idempotent, thread-safe)."""
    with _STATE.lock:
        _STATE.enabled = False
        while _STATE.patches:
            owner, name, original, wrapper = _STATE.patches.pop()
            if owner.__dict__.get(name) is wrapper:
                setattr(owner, name, original)
            else:  # someone wrapped us since; ours stays, inert, under theirs
                _LOG.warning("telemetry-replay: %s.%s was re-patched after HTTP capture; "
                             "the capture wrapper stays in place, disabled",
                             getattr(owner, "__qualname__", owner), name)
        _STATE.config = HttpCaptureConfig((), DEFAULT_MAX_BODY)
