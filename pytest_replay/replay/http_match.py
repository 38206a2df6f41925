"""Whether a live request is the recorded one, rule by rule, in the form capture writes.

The live request is redacted and encoded exactly as the recording was, so a
recorded ``[REDACTED]`` matches today's real secret and a token that
``extract-traces`` put in stands for whatever value is there now.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

from pytest_replay.capture.http import (
    as_written,
    redact_url,
    request_fields,
)
from pytest_replay.redaction import TOKEN, has_tokens, matches
from pytest_replay.replay.http_cassette import FORM

DEFAULT_MATCH_ON: Final = ("method", "url", "body")
MATCH_RULES: Final = ("method", "url", "scheme", "host", "port", "path", "query", "body",
                      "headers")


# -- matching ----------------------------------------------------------------------------


def form_of(request: Any) -> dict[str, Any]:
    """The request as capture would write it (cached on the request object)."""
    form: dict[str, Any] | None = request.__dict__.get(FORM)
    if form is None:
        from vcr.util import read_body

        form = as_written(request_fields(request.method, request.uri,
                                         request.headers.items(), read_body(request)))
        request.__dict__[FORM] = form
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
        reason = check(form_of(live), form_of(recorded))
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
    return [_rule(name, check) for name, check in checks_for(match_on)]


def checks_for(match_on: Sequence[str]) -> list[tuple[str, Check]]:
    """``(rule, check)`` for ``match_on``; an unknown rule is refused with the valid ones."""
    if isinstance(match_on, str):
        raise TypeError(f"match_on takes a sequence of rule names, not {match_on!r}")
    unknown = [name for name in match_on if name not in _CHECKS]
    if unknown:
        raise ValueError(f"unknown HTTP match rule(s) {', '.join(map(repr, unknown))}; "
                         f"valid rules: {', '.join(MATCH_RULES)}")
    return [(name, _CHECKS[name]) for name in dict.fromkeys(match_on)]


def results_of(live: Mapping[str, Any], recorded: Mapping[str, Any],
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


def asked_as(request: Any) -> str:
    """``GET http://host/path``, as a refusal names the request (secrets in the URL redacted)."""
    return f"{request.method} {redact_url(request.uri)}"

