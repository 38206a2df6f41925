"""Serve a replay's HTTP calls from the recorded ``http_call`` events, never the network.

Every client vcrpy patches (requests, urllib3, http.client, httpx sync and
async) is answered by vcrpy's stubs, which open no socket; the stubs ask one
process-wide stand-in for a vcrpy cassette, which passes each request to the
serve in progress, so the stubs and patches are made once per process, not
per replay. The serve decides what to answer:

* overrides first (:class:`HttpOverrides`, built on ``responses``);
* then the first recorded call, not yet served, that matches on the chosen
  rules (so a repeated identical request takes the next recorded answer);
* else the call is refused with :class:`UnrecordedCall` naming method and URL.

Matching compares requests in the form capture writes them: the live
request is redacted and encoded exactly as the recording was, so a recorded
``[REDACTED]`` matches today's real secret; a token that ``extract-traces``
put in (``<email:3f2a9c1b>``) stands for whatever value is there now. Capture runs during the
replay too (``install_http_capture`` is ensured), so each served call emits
the same ``http_call`` event as the recorded one.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import http
import importlib.util
import json
import operator
import sys
import threading
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, final
from urllib.parse import parse_qs, parse_qsl, urlsplit

from pytest_replay.capture.http import (
    ServedError,
    active_layer,
    as_written,
    http_capture_installed,
    install_http_capture,
    redact_url,
    request_fields,
    uninstall_http_capture,
    wrap_http_client_class,
)
from pytest_replay.format import events as ev
from pytest_replay.format.values import TAG
from pytest_replay.redaction import TOKEN, has_tokens, matches
from pytest_replay.replay.external import ServedCalls, UnrecordedCall

__all__ = [
    "DEFAULT_MATCH_ON",
    "MATCH_RULES",
    "HttpCassetteError",
    "HttpOverrides",
    "RecordedCall",
    "matchers_for",
    "rebuild_error",
    "recorded_calls",
    "serve_http",
]

DEFAULT_MATCH_ON: Final = ("method", "url", "body")
MATCH_RULES: Final = ("method", "url", "scheme", "host", "port", "path", "query", "body",
                      "headers")
_KNOWN_ENCODINGS: Final = frozenset({"", "identity", "gzip", "x-gzip", "deflate", "br", "zstd"})
_FORM: Final = "_telemetry_replay_form"
_SERVING: Final = threading.Lock()
_MISSING: Final = object()


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
        request.__dict__[_FORM] = self.form
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


# -- matching ----------------------------------------------------------------------------


def _form_of(request: Any) -> dict[str, Any]:
    """The request as capture would write it (cached on the request object)."""
    form: dict[str, Any] | None = request.__dict__.get(_FORM)
    if form is None:
        from vcr.util import read_body

        form = as_written(request_fields(request.method, request.uri,
                                         request.headers.items(), read_body(request)))
        request.__dict__[_FORM] = form
    return form


def _same(recorded: str, live: str) -> bool:
    """Equal, or equal but for extraction tokens (``<email:3f2a9c1b>`` stands for a value)."""
    return recorded == live or matches(recorded, live)


def _same_json(recorded: Any, live: Any) -> bool:
    """JSON values alike, a recorded token standing for any value (keys in recorded order)."""
    if type(recorded) is str:
        if type(live) is str:
            return _same(recorded, live)
        return TOKEN.fullmatch(recorded) is not None and not isinstance(live, (dict, list))
    if type(recorded) is dict:
        return (type(live) is dict and len(live) == len(recorded)
                and all(_same(rk, lk) and _same_json(rv, lv) for (rk, rv), (lk, lv)
                        in zip(recorded.items(), live.items(), strict=True)))
    if type(recorded) is list:
        return (type(live) is list and len(live) == len(recorded)
                and all(_same_json(r, v) for r, v in zip(recorded, live, strict=True)))
    return bool(recorded == live and type(recorded) is type(live))


def _url_parts(form: Mapping[str, Any]) -> tuple[str, str, str, str, str]:
    """(scheme, host, port, path, query) of a form's URL; tolerant of tokens in the host."""
    parts = urlsplit(form["url"])
    netloc = parts.netloc.rpartition("@")[2]
    host, colon, port = netloc.rpartition(":")
    if not colon or not port.isdigit() or host.endswith(":") or (
            host.startswith("[") and not host.endswith("]")):
        host, port = netloc, ""
    port = port or {"http": "80", "https": "443"}.get(parts.scheme, "")
    return parts.scheme, host.strip("[]").lower(), port, parts.path or "/", parts.query


def _normal_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.path:
        return url
    origin = f"{parts.scheme}://{parts.netloc}"
    return origin + "/" + url[len(origin):] if url.startswith(origin) else url


def _header_text(value: Any) -> str:
    return ", ".join(value) if isinstance(value, list) else str(value)


def _rule(name: str, check: Callable[[Mapping[str, Any], Mapping[str, Any]], str | None]
          ) -> Callable[[Any, Any], None]:
    """A vcrpy matcher (raises AssertionError) from ``check(live, recorded) -> why or None``."""

    def matcher(live: Any, recorded: Any) -> None:
        reason = check(_form_of(live), _form_of(recorded))
        if reason is not None:
            raise AssertionError(reason)

    matcher.__name__ = name
    return matcher


def _differs(what: str, live: Any, recorded: Any) -> str | None:
    alike = _same(recorded, live) if isinstance(recorded, str) and isinstance(live, str) else (
        live == recorded)
    return None if alike else f"{what}: {live!r} now, {recorded!r} recorded"


def _check_query(live: Mapping[str, Any], recorded: Mapping[str, Any]) -> str | None:
    now = sorted(parse_qsl(_url_parts(live)[4], keep_blank_values=True))
    then = sorted(parse_qsl(_url_parts(recorded)[4], keep_blank_values=True))
    if len(now) == len(then) and all(
            n[0] == t[0] and _same(t[1], n[1]) for n, t in zip(now, then, strict=True)):
        return None
    return f"query: {now!r} now, {then!r} recorded"


def _check_body(live: Mapping[str, Any], recorded: Mapping[str, Any]) -> str | None:
    if recorded.get("request_body_skipped"):
        return None  # the recording holds no body to compare (a streamed upload)
    keys = ("request_body", "request_body_truncated", "request_body_length")
    now = tuple(live.get(k) for k in keys)
    then = tuple(recorded.get(k) for k in keys)
    if now == then or _same_text_body(then, now):
        return None
    return f"body: {_short(now[0])} now, {_short(then[0])} recorded"


def _same_text_body(then: tuple[Any, ...], now: tuple[Any, ...]) -> bool:
    """Text bodies equal but for extraction tokens (JSON compared as JSON)."""
    recorded, live = then[0], now[0]
    if not (isinstance(recorded, str) and isinstance(live, str) and has_tokens(recorded)):
        return False
    if then[1] != now[1]:
        return False  # one cut at capture and not the other
    if not then[1]:
        try:
            return _same_json(json.loads(recorded), json.loads(live))
        except ValueError:
            pass  # not JSON: compared as text
    return _same(recorded, live)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _check_headers(live: Mapping[str, Any], recorded: Mapping[str, Any]) -> str | None:
    now = {k.lower(): _header_text(v) for k, v in live["request_headers"].items()}
    for name, value in recorded["request_headers"].items():
        have = now.get(name.lower())
        if have is None or not _same(_header_text(value), have):
            return f"header {name}: {have!r} now, {_header_text(value)!r} recorded"
    return None


Check = Callable[[Mapping[str, Any], Mapping[str, Any]], str | None]
"""``check(live form, recorded form) -> why they differ, or None``."""

_CHECKS: Final[dict[str, Check]] = {
    "method": lambda a, b: _differs("method", a["method"], b["method"]),
    "url": lambda a, b: _differs("url", _normal_url(a["url"]), _normal_url(b["url"])),
    "scheme": lambda a, b: _differs("scheme", _url_parts(a)[0], _url_parts(b)[0]),
    "host": lambda a, b: _differs("host", _url_parts(a)[1], _url_parts(b)[1]),
    "port": lambda a, b: _differs("port", _url_parts(a)[2], _url_parts(b)[2]),
    "path": lambda a, b: _differs("path", _url_parts(a)[3], _url_parts(b)[3]),
    "query": _check_query,
    "body": _check_body,
    "headers": _check_headers,
}


def matchers_for(match_on: Sequence[str]) -> list[Callable[[Any, Any], None]]:
    """The matchers for ``match_on``; an unknown rule is refused with the valid ones listed."""
    return [_rule(name, check) for name, check in _checks_for(match_on)]


def _checks_for(match_on: Sequence[str]) -> list[tuple[str, Check]]:
    """``(rule, check)`` for ``match_on``; an unknown rule is refused with the valid ones."""
    if isinstance(match_on, str):
        raise TypeError(f"match_on takes a sequence of rule names, not {match_on!r}")
    unknown = [name for name in match_on if name not in _CHECKS]
    if unknown:
        raise ValueError(f"unknown HTTP match rule(s) {', '.join(map(repr, unknown))}; "
                         f"valid rules: {', '.join(MATCH_RULES)}")
    return [(name, _CHECKS[name]) for name in dict.fromkeys(match_on)]


def _results(live: Mapping[str, Any], recorded: Mapping[str, Any],
             checks: Sequence[tuple[str, Check]]) -> tuple[list[str], list[tuple[str, str]]]:
    """The rules that pass and ``(rule, why)`` of those that fail, as vcrpy reports them."""
    passed: list[str] = []
    failed: list[tuple[str, str]] = []
    for name, check in checks:
        reason = check(live, recorded)
        if reason is None:
            passed.append(name)
        else:
            failed.append((name, reason))
    return passed, failed


# -- recorded errors ---------------------------------------------------------------------


def rebuild_error(error_type: str, error_module: str, message: str) -> BaseException:
    """The recorded exception again: same class (if already imported) and same message.

    Only classes of modules the process already imported are considered, and
    only ``Exception`` subclasses: a trace never makes replay import anything.
    Anything else becomes a ``ConnectionError`` carrying the recorded message.
    """
    cls = _exception_class(error_module, error_type)
    if cls is not None:
        for error in (_built(cls, message), _bare(cls, message)):
            if error is not None and _text_of(error) == message:
                return error
    return ConnectionError(message)


def _built(cls: type[Exception], message: str) -> Exception | None:
    try:
        return cls(message)
    except Exception:  # a constructor that wants more than a message: try without it
        return None


def _bare(cls: type[Exception], message: str) -> Exception | None:
    try:
        error = cls.__new__(cls)
        BaseException.__init__(error, message)
    except Exception:  # a class that cannot even be made bare: the fallback serves
        return None
    return error


def _text_of(error: BaseException) -> str | None:
    try:
        return str(error)
    except Exception:
        return None


def _exception_class(module_name: str, qualname: str) -> type[Exception] | None:
    """The class ``module:qualname`` names, read from namespaces only: no code runs.

    Attribute access could run a module's lazy ``__getattr__`` (and import on
    the trace's word) or a metaclass's hooks; reading ``__dict__`` does not.
    """
    found: Any = sys.modules.get(module_name or "builtins")
    for part in qualname.split("."):
        if found is None or not part.isidentifier() or part.startswith("__"):
            return None
        try:
            namespace = object.__getattribute__(found, "__dict__")
        except AttributeError:
            return None
        found = namespace.get(part) if isinstance(namespace, Mapping) else None
    if isinstance(found, type) and issubclass(found, Exception):
        return found
    return None


# -- overrides ---------------------------------------------------------------------------


@final
class HttpOverrides:
    """Answers a test adds or changes for a replay, consulted before the recording.

    Built on ``responses``: each :meth:`add` registers a ``responses.Response``
    (``match=`` takes ``responses.matchers``), and several answers for one
    request are served in the order added, the last one repeating. Overrides
    answer every client the replay serves (requests, urllib3, http.client,
    httpx), because the cassette consults them, not a patched ``requests``.
    """

    def __init__(self) -> None:
        self._registry: Any = None
        self.calls: list[str] = []
        """``METHOD URL`` of each request an override answered, in order."""

    def add(self, method: str, url: str | Any, *, json: Any = None, body: str | bytes |
            BaseException = "", status: int = 200, headers: Mapping[str, str] | None = None,
            content_type: str | None = None, match: Sequence[Any] = ()) -> None:
        """Answer ``method url`` (a string, or a compiled regex) with this response.

        ``body`` may be an exception instance: the request then raises it.
        """
        import responses

        if self._registry is None:
            self._registry = responses.registries.FirstMatchRegistry()
        extra: dict[str, Any] = {} if content_type is None else {"content_type": content_type}
        self._registry.add(responses.Response(method=method.upper(), url=url, json=json,
                                              body=body, status=status, headers=headers,
                                              match=tuple(match), **extra))

    def answer(self, request: Any) -> dict[str, Any] | None:
        """vcrpy's form of the override answering ``request`` (a vcrpy request), or None.

        An override whose body is an exception raises it (through
        :class:`ServedError`, so the application sees that exception).
        """
        if self._registry is None:
            return None
        prepared = _prepared(request)
        found, _reasons = self._registry.find(prepared)
        if found is None:
            return None
        self.calls.append(f"{request.method} {request.uri}")
        try:
            response = found.get_response(prepared)
        except Exception as exc:  # the override says: this call fails with exc
            raise ServedError(exc) from None
        headers: dict[str, list[str]] = {}
        for name, value in response.headers.items():
            headers.setdefault(name, []).append(value)
        return {"status": {"code": response.status, "message": response.reason or ""},
                "headers": headers, "body": {"string": response.read()}}


def _prepared(request: Any) -> Any:
    """A ``requests.PreparedRequest`` of a vcrpy request, for ``responses``' matchers."""
    import requests
    from vcr.util import read_body

    prepared = requests.PreparedRequest()
    prepared.prepare(method=request.method, url=request.uri,
                     headers=dict(request.headers.items()), data=read_body(request) or None)
    query = urlsplit(request.uri).query
    prepared.params = {k: v[0] if len(v) == 1 else v  # type: ignore[attr-defined]
                       for k, v in parse_qs(query, keep_blank_values=True).items()}
    prepared.req_kwargs = {}  # type: ignore[attr-defined]
    return prepared


# -- answering ---------------------------------------------------------------------------


def _asked(request: Any) -> str:
    """``GET http://host/path``, as a refusal names the request (secrets in the URL redacted)."""
    return f"{request.method} {redact_url(request.uri)}"


@final
class _Answers:
    """One serve's recorded calls: answers each request from them, or refuses it.

    Requests are matched in capture's written form on both sides (the
    recorded form is the event itself), rule by rule, as vcrpy would run the
    same rules as matchers; vcrpy requests for the recording are made only
    when a vcrpy stub asks for them.
    """

    def __init__(self, calls: list[RecordedCall], checks: Sequence[tuple[str, Check]],
                 served: ServedCalls, overrides: HttpOverrides | None) -> None:
        self.calls = calls
        self.played = [False] * len(calls)
        self.checks = checks
        self.served = served
        self.overrides = overrides
        self._requests: list[Any] | None = None

    @property
    def requests(self) -> list[Any]:
        """The recorded calls as vcrpy requests (made on first use)."""
        if self._requests is None:
            from vcr.request import Request

            self._requests = [call.vcr_request(Request) for call in self.calls]
        return self._requests

    def play(self, request: Any) -> dict[str, Any]:
        """The override or next matching recorded answer; raises for a recorded failure."""
        if self.overrides is not None:
            answer = self.overrides.answer(request)
            if answer is not None:
                self.served.served += 1
                return answer
        live = _form_of(request)
        for index, call in enumerate(self.calls):
            if self.played[index] or any(check(live, call.form) is not None
                                         for _name, check in self.checks):
                continue
            self.played[index] = True
            self.served.served += 1
            if call.error is not None:
                raise ServedError(rebuild_error(*call.error))
            return call.vcr_response(encode_for_httpx=active_layer() == "httpx")
        raise ServedError(self.served.refuse(_asked(request), self._closest(live)))

    def _closest(self, live: Mapping[str, Any]) -> str:
        best: tuple[int, int, list[tuple[str, str]]] | None = None
        for index, call in enumerate(self.calls):
            passed, failed = _results(live, call.form, self.checks)
            if not failed:  # it matches: only served already
                best = (len(passed) + 1, index, [])
                break
            if best is None or len(passed) > best[0]:
                best = (len(passed), index, failed)
        if best is None:
            return "the recording holds no HTTP call"
        call = self.calls[best[1]]
        if not best[2]:
            return f"{call.describe()} matches but was already served"
        reasons = "; ".join(message for _name, message in best[2])
        return f"closest recorded call {call.describe()} differs: {reasons}"

    def most_alike(self, request: Any) -> list[tuple[Any, list[str], list[tuple[str, str]]]]:
        """The recorded requests matching most rules (at least one), as vcrpy lists them."""
        live = _form_of(request)
        results = [(stored, *_results(live, call.form, self.checks))
                   for stored, call in zip(self.requests, self.calls, strict=True)]
        most = max((len(passed) for _stored, passed, _failed in results), default=0)
        return [result for result in results if most and len(result[1]) == most]

    def unused(self) -> list[str]:
        """Recorded calls no request took."""
        return [call.describe() for call, played in zip(self.calls, self.played, strict=True)
                if not played]


@final
class _Dispatcher:
    """What vcrpy's stubs take for their cassette: hands each request to the serve in progress.

    One for the process, so the stub classes and patches made for it serve
    every replay (see :func:`_patch_table`).
    """

    _path = "<telemetry-replay http>"  # vcrpy's patch builder names stub classes after it
    custom_patches: tuple[Any, ...] = ()
    skip_patchers: tuple[str, ...] = ()
    write_protected = True

    def __init__(self) -> None:
        self.answers: _Answers | None = None

    def can_play_response_for(self, request: Any) -> bool:
        """Always: every request is answered or refused here, never sent."""
        return True

    def play_response(self, request: Any) -> dict[str, Any]:
        """The answer of the serve in progress (a connection kept past its replay is refused)."""
        answers = self.answers
        if answers is None:
            raise ServedError(UnrecordedCall("http", _asked(request),
                                             "no replay is serving HTTP now"))
        return answers.play(request)

    def find_requests_with_most_matches(
            self, request: Any) -> list[tuple[Any, list[str], list[tuple[str, str]]]]:
        """The recorded requests most like ``request`` (aiohttp's stub follows redirects so)."""
        return [] if self.answers is None else self.answers.most_alike(request)

    def filter_request(self, request: Any) -> Any:
        """vcrpy's hook before recording: nothing to filter, nothing is recorded."""
        return request

    def append(self, request: Any, response: Any) -> None:
        """Never called while every request is played; a call would mean something recorded."""
        raise RuntimeError("a replay never records an HTTP call")


_DISPATCHER: Final = _Dispatcher()


# -- patching, once per process ----------------------------------------------------------
#
# Building a vcrpy cassette and its patchers for each replay cost more than the replay:
# the builder retries the import of every client library vcrpy knows, installed or not,
# and makes new stub classes; and each connection a stub opens undoes and redoes every
# patch (retrying those imports again). Here the patch table is built once for the
# dispatcher, and built again only when what it was built from changed; a serve sets
# the table's attributes and restores them.


@final
@dataclass(frozen=True)
class _Patch:
    """Set ``owner.name`` to ``replacement`` while serving (``seen``: the value at build)."""

    owner: Any
    name: str
    seen: Any
    replacement: Any


@final
@dataclass(frozen=True)
class _Table:
    """Every patch vcrpy's builder makes, and the pool cleaners for urllib3's stubs.

    One patch per attribute (vcrpy lists urllib3's twice, once for requests):
    the last replacement is the one that stayed in place, and the value before
    is the same for both.
    """

    path: tuple[str, ...]
    """``sys.path`` when built: a library may have become importable since."""
    targets: tuple[tuple[Any, str], ...]
    """``(owner, name)`` of each patched attribute."""
    seen: tuple[Any, ...]
    """What each target held when the table was built (raw, or ``_MISSING``)."""
    replacements: tuple[Any, ...]
    classes: tuple[bool, ...]
    """Whether each replacement puts a class (or a table of classes) in place."""
    cleaners: tuple[Any, ...]

    def holding(self) -> list[Any] | None:
        """What each target holds now, or None when the table no longer fits.

        It fits while the import path is the same and every target holds
        what it held at build (a monkeypatched target means a new build).
        """
        if tuple(sys.path) != self.path:
            return None
        now = [vars(owner).get(name, _MISSING) for owner, name in self.targets]
        return now if all(map(operator.is_, now, self.seen)) else None


@final
class _Serving:
    """The table in use and, while serving, what each patched attribute held before."""

    __slots__ = ("applied", "classes", "table")

    def __init__(self) -> None:
        self.table: _Table | None = None
        self.applied: list[tuple[Any, str, Any]] = []
        """``(owner, name, raw value before or _MISSING)`` in the order they were set."""
        self.classes: list[tuple[Any, str, Any]] = []
        """The entries of ``applied`` that put a class (or a table of classes) in place."""


_STATE: Final = _Serving()


def _patch_table() -> tuple[_Table, list[Any]]:
    """The table to apply and what its targets hold now (built again when it no longer fits)."""
    table = _STATE.table
    now = table.holding() if table is not None else None
    if table is None or now is None:
        table = _STATE.table = _build_table()
        now = list(table.seen)
    return table, now


def _build_table() -> _Table:
    from vcr.patch import CassettePatcherBuilder
    from vcr.stubs import VCRConnection

    class Builder(CassettePatcherBuilder):  # type: ignore[misc]
        """vcrpy's own patch list for the dispatcher, as plain patches instead of mocks."""

        def _build_patcher(self, obj: Any, attribute: str, replacement: Any) -> _Patch | None:
            if not hasattr(obj, attribute):
                return None
            return _Patch(obj, attribute, vars(obj).get(attribute, _MISSING),
                          self._recursively_apply_get_cassette_subclass(replacement))

        def _build_cassette_subclass(self, base_class: Any) -> type:
            namespace: dict[str, Any] = {"cassette": self._cassette}
            if issubclass(base_class, VCRConnection) and (
                    base_class.__init__ is VCRConnection.__init__):
                namespace["__init__"] = _connection_init
            return type(f"{base_class.__name__}Replay", (base_class,), namespace)

    path = tuple(sys.path)
    patches: dict[tuple[Any, str], _Patch] = {}
    cleaners: list[Any] = []
    for item in [*Builder(_DISPATCHER).build(), *_header_patch()]:
        if isinstance(item, _Patch):
            patches[(item.owner, item.name)] = item  # the last one listed stays in place
        else:
            cleaners.append(item)
    listed = list(patches.values())
    _instrument_http_client(listed)
    return _Table(path, tuple(patches.keys()), tuple(patch.seen for patch in listed),
                  tuple(patch.replacement for patch in listed),
                  tuple(isinstance(patch.replacement, (type, dict)) for patch in listed),
                  tuple(cleaners))


def _header_patch() -> list[_Patch]:
    """vcrpy's stubs parse answer headers with a fast path while serving (see http_headers)."""
    import vcr.stubs

    from pytest_replay.replay.http_headers import header_parser

    original = vars(vcr.stubs).get("parse_headers")
    if not callable(original):  # another vcrpy: its own parsing stands
        return []
    return [_Patch(vcr.stubs, "parse_headers", original, header_parser(original))]


def _connection_init(self: Any, *args: Any, **kwargs: Any) -> None:
    """vcrpy's stub constructor, with the real classes put back by the table, not by mocks."""
    kwargs.pop("strict", None)
    with _real_classes():  # http.client's HTTPSConnection names its own class in super()
        self.real_connection = self._baseclass(*args, **kwargs)
    self._sock = None


def _set(owner: Any, name: str, value: Any) -> None:
    if value is _MISSING:
        if name in vars(owner):
            delattr(owner, name)
    else:
        setattr(owner, name, value)


@contextlib.contextmanager
def _real_classes() -> Iterator[None]:
    """The connection classes a serve replaced are the real ones again for the block.

    Then each holds what it held before the block (a patch made meanwhile stays).
    """
    swapped = _STATE.classes
    now = [(owner, name, vars(owner).get(name, _MISSING)) for owner, name, _before in swapped]
    for owner, name, before in reversed(swapped):
        _set(owner, name, before)
    try:
        yield
    finally:
        for owner, name, value in now:
            _set(owner, name, value)


def _apply(table: _Table, before: list[Any]) -> None:
    applied = [(owner, name, value)
               for (owner, name), value in zip(table.targets, before, strict=True)]
    _STATE.applied = applied
    _STATE.classes = [entry for entry, is_class in zip(applied, table.classes, strict=True)
                      if is_class]
    for (owner, name), replacement in zip(table.targets, table.replacements, strict=True):
        setattr(owner, name, replacement)


def _restore() -> None:
    _STATE.classes = []
    applied, _STATE.applied = _STATE.applied, []
    for owner, name, before in reversed(applied):
        _set(owner, name, before)


def _clean_pools(table: _Table) -> None:
    """Close the stub connections urllib3's pools still hold (vcrpy's ConnectionRemover)."""
    for cleaner in table.cleaners:
        cleaner.__exit__(None, None, None)
        pools = getattr(cleaner, "_connection_pool_to_connections", None)
        if isinstance(pools, dict):
            pools.clear()  # this serve's pools: the next serve starts with none


def _instrument_http_client(patches: list[_Patch]) -> None:
    """Capture on the stub classes the table puts in ``http.client``, once per table.

    The stub classes are the table's own and are only reachable while it is
    applied; capture's wrappers do nothing unless capture is installed.
    """
    import http.client

    schemes = {"HTTPConnection": "http", "HTTPSConnection": "https"}
    for patch in patches:
        if (patch.owner is http.client and patch.name in schemes
                and getattr(patch.replacement, "cassette", None) is _DISPATCHER):
            wrap_http_client_class(patch.replacement, schemes[patch.name])


# -- serving -----------------------------------------------------------------------------


@contextlib.contextmanager
def serve_http(recorded: Sequence[Mapping[str, Any]], *,
               match_on: Sequence[str] = DEFAULT_MATCH_ON,
               overrides: HttpOverrides | None = None) -> Iterator[ServedCalls]:
    """Answer HTTP calls from ``recorded`` (``http_call`` events in recorded order).

    Yields the :class:`ServedCalls` report (kind ``"http"``): ``served``,
    ``unrecorded`` (calls refused) and, after exit, ``unused`` (recorded calls
    never asked for). Raises :class:`HttpCassetteError` before serving when an
    event cannot be served, and ``ValueError`` for an unknown match rule.
    One serve at a time per process: the stubs are patched in process-wide.
    """
    checks = _checks_for(match_on)
    calls = recorded_calls(recorded)
    if not _SERVING.acquire(blocking=False):
        raise RuntimeError("serve_http is already serving in this process; HTTP replay "
                           "patches process-wide and serves one replay at a time")
    try:
        yield from _serving(calls, checks, overrides)
    finally:
        _SERVING.release()


def _serving(calls: list[RecordedCall], checks: Sequence[tuple[str, Check]],
             overrides: HttpOverrides | None) -> Iterator[ServedCalls]:
    served = ServedCalls("http")
    answers = _Answers(calls, checks, served, overrides)
    capture_here = not http_capture_installed()
    if capture_here:
        install_http_capture()
    try:
        table, before = _patch_table()
        _DISPATCHER.answers = answers
        try:
            _apply(table, before)
            for cleaner in table.cleaners:
                cleaner.__enter__()
            try:
                yield served
            finally:
                _clean_pools(table)
        finally:
            _restore()
            _DISPATCHER.answers = None
            served.unused.extend(answers.unused())
    finally:
        if capture_here:
            uninstall_http_capture()
