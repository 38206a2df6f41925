"""A replay's recorded ``http_call`` events, checked before anything is served.

Each event becomes a :class:`RecordedCall`; a malformed one is refused with
:class:`HttpCassetteError` naming its line and field. Answers for httpx are
encoded back as the server sent them, since httpx decodes what it is served.
"""

from __future__ import annotations

import base64
import gzip
import http
import importlib.util
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, final

from pytest_replay.capture.http import (
    ServedError,
)
from pytest_replay.format import events as ev
from pytest_replay.format.values import TAG

FORM: Final = "_telemetry_replay_form"
"""Where a live request keeps the written form it was matched in."""
_KNOWN_ENCODINGS: Final = frozenset({"", "identity", "gzip", "x-gzip", "deflate", "br", "zstd"})


class HttpCassetteError(ValueError):
    """A recorded ``http_call`` that cannot be served; names the event and the field."""

    def __init__(self, index: int, line: int | None, field: str, problem: str) -> None:
        where = f"line {line}" if line is not None else f"index {index} of the HTTP calls"
        super().__init__(f"recorded http_call at {where}: field {field!r}: {problem}")
        self.index = index
        self.line = line
        self.field = field
        self.problem = problem


# -- the recording, checked --------------------------------------------------------------


@final
@dataclass(frozen=True)
class RecordedCall:
    """One recorded call, checked and ready to serve."""

    index: int
    line: int | None
    form: dict[str, Any]
    """The request fields exactly as the event holds them (what matching compares)."""
    status: int | None
    headers: dict[str, list[str]]
    body: bytes
    error: tuple[str, str, str] | None
    """``(error_type, error_module, error_message)`` when the call raised."""

    def describe(self) -> str:
        """``POST http://host/path (line 12)``: how reports name this call."""
        where = f"line {self.line}" if self.line is not None else f"index {self.index}"
        return f"{self.form['method']} {self.form['url']} ({where})"

    def vcr_request(self, request_class: Any) -> Any:
        """A vcrpy request carrying this call's form, for the in-memory cassette."""
        request = request_class(self.form["method"], self.form["url"], self.body_of_request(),
                                {k: ", ".join(v) if isinstance(v, list) else v
                                 for k, v in self.form["request_headers"].items()})
        request.__dict__[FORM] = self.form
        return request

    def body_of_request(self) -> bytes | None:
        value = self.form.get("request_body")
        if value is None:
            return None
        if isinstance(value, str):
            return value.encode("utf-8")
        return base64.b64decode(value["b64"])

    def vcr_response(self, *, encode_for_httpx: bool = False) -> dict[str, Any]:
        """The answer in vcrpy's form (fresh each time: vcrpy's stubs edit it)."""
        status = self.status or 0
        try:
            reason = http.HTTPStatus(status).phrase
        except ValueError:
            reason = ""
        body = self.body
        if encode_for_httpx:
            body = _encode_content(self, body)
        return {"status": {"code": status, "message": reason},
                "headers": {name: list(values) for name, values in self.headers.items()},
                "body": {"string": body}}


def _line_of(event: Mapping[str, Any]) -> int | None:
    line = event.get("_line")
    return line if isinstance(line, int) and not isinstance(line, bool) else None


def recorded_calls(events: Sequence[Mapping[str, Any]]) -> list[RecordedCall]:
    """Check ``events`` (recorded ``http_call`` dicts, in order); raise on the first bad one."""
    return [_check(index, event) for index, event in enumerate(events)]


def _check(index: int, event: Mapping[str, Any]) -> RecordedCall:
    line = _line_of(event) if isinstance(event, Mapping) else None

    def bad(field: str, problem: str) -> HttpCassetteError:
        return HttpCassetteError(index, line, field, problem)

    if not isinstance(event, Mapping):
        raise bad("event", f"expected a JSON object, got {type(event).__name__}")
    if event.get("event_type") != ev.HTTP_CALL:
        raise bad("event_type", f"expected {ev.HTTP_CALL!r}, got {event.get('event_type')!r}")
    method = event.get("method")
    if not isinstance(method, str) or not method:
        raise bad("method", f"expected an HTTP method such as 'GET', got {method!r}")
    url = event.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise bad("url", f"expected an absolute http:// or https:// URL, got {url!r}")
    form: dict[str, Any] = {"method": method.upper(), "url": url,
                            "request_headers": _headers(event, "request_headers", bad)}
    _body(event, "request", bad)  # checked; the form keeps the recorded value itself
    form["request_body"] = event.get("request_body")
    for suffix in ("_truncated", "_length", "_skipped"):
        key = f"request_body{suffix}"
        if key in event:
            form[key] = event[key]
    error: tuple[str, str, str] | None = None
    status: int | None = None
    headers: dict[str, list[str]] = {}
    body = b""
    if "error_type" in event:
        error = (_string(event, "error_type", bad, required=True),
                 _string(event, "error_module", bad), _string(event, "error_message", bad))
    else:
        status = event.get("status")
        if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
            raise bad("status", f"expected an HTTP status code (100-599), got {status!r}")
        recorded_headers = _headers(event, "response_headers", bad)
        headers = {name: value if isinstance(value, list) else [value]
                   for name, value in recorded_headers.items()}
        if event.get("response_body_truncated") is True:
            raise bad("response_body_truncated",
                      f"the answer was cut at capture ({event.get('response_body_length')!r} "
                      "bytes, only the head kept) and cannot be served whole; raise max_body "
                      "where it was captured, or answer this call with HttpOverrides")
        body = _body(event, "response", bad) or b""
        for name, values in headers.items():
            if name.lower() == "content-encoding":
                for coding in ",".join(values).split(","):
                    if coding.strip().lower() not in _KNOWN_ENCODINGS:
                        raise bad("response_headers",
                                  f"unknown Content-Encoding {coding.strip()!r}; known: "
                                  + ", ".join(sorted(_KNOWN_ENCODINGS - {""})))
    return RecordedCall(index, line, form, status, headers, body, error)


def _string(event: Mapping[str, Any], field: str, bad: Callable[[str, str], Exception],
            *, required: bool = False) -> str:
    value = event.get(field)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise bad(field, f"expected a string, got {value!r}")
    return value


def _headers(event: Mapping[str, Any], field: str, bad: Callable[[str, str], Exception]
             ) -> dict[str, str | list[str]]:
    value = event.get(field)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad(field, f"expected an object of header name -> value, got {value!r}")
    for name, item in value.items():
        ok = isinstance(item, str) or (isinstance(item, list) and item
                                       and all(isinstance(v, str) for v in item))
        if not ok:
            raise bad(field, f"header {name!r}: expected a string or a list of strings, "
                             f"got {item!r}")
    return value


def _body(event: Mapping[str, Any], prefix: str, bad: Callable[[str, str], Exception]
          ) -> bytes | None:
    field = f"{prefix}_body"
    truncated = event.get(f"{field}_truncated", False)
    if not isinstance(truncated, bool):
        raise bad(f"{field}_truncated", f"expected true or false, got {truncated!r}")
    if truncated:
        length = event.get(f"{field}_length")
        if not isinstance(length, int) or isinstance(length, bool) or length < 0:
            raise bad(f"{field}_length",
                      f"a truncated body needs its full length in bytes, got {length!r}")
    skipped = event.get(f"{field}_skipped")
    if skipped is not None and not isinstance(skipped, str):
        raise bad(f"{field}_skipped", f"expected a reason string, got {skipped!r}")
    value = event.get(field)
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, dict) and value.get(TAG) == "bytes":
        data = value.get("b64")
        if not isinstance(data, str):
            raise bad(field, "a bytes value needs its content under 'b64'")
        try:
            return base64.b64decode(data, validate=True)
        except ValueError as exc:
            raise bad(field, f"invalid base64 under 'b64': {exc}") from None
    if isinstance(value, dict) and TAG in value:
        raise bad(field, f"unknown body encoding {value.get(TAG)!r}; a body is text, null, "
                         "or {'$type': 'bytes', 'b64': ...}")
    raise bad(field, f"expected text, null or a tagged bytes value, got {type(value).__name__}")


# -- answering httpx, which decodes what it is served ------------------------------------


def _encode_content(call: RecordedCall, body: bytes) -> bytes:
    """``body`` (recorded decoded) encoded again as its Content-Encoding says, for httpx."""
    codings = [c.strip().lower()
               for name, values in call.headers.items() if name.lower() == "content-encoding"
               for c in ",".join(values).split(",")]
    for coding in codings:
        if coding in ("gzip", "x-gzip"):
            body = gzip.compress(body, mtime=0)
        elif coding == "deflate":
            body = zlib.compress(body)
        elif coding == "br":
            body = _optional_codec(call, "brotli").compress(body)
        elif coding == "zstd":
            body = _optional_codec(call, "zstandard").ZstdCompressor().compress(body)
    return body


def _optional_codec(call: RecordedCall, module: str) -> Any:
    if importlib.util.find_spec(module) is None:
        raise ServedError(HttpCassetteError(
            call.index, call.line, "response_headers",
            f"httpx needs this answer encoded, and the {module!r} package is not installed"))
    return importlib.import_module(module)


