"""Redaction of HTTP calls: headers, cookies, URLs, card numbers and secret fields in bodies.

Everything here is deterministic and idempotent (redacting a redacted
request gives it back unchanged): replay matches a live request, redacted
the same way, against the recorded one.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from typing import Any, Final
from urllib.parse import unquote_plus

import orjson

from pytest_replay.capture.redact import Redaction
from pytest_replay.capture.runtime import RUNTIME
from pytest_replay.format.values import REDACTED_TEXT

REDACTED_CARD: Final = "[REDACTED:card]"
_ALWAYS_SECRET_HEADERS: Final = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
)
_HOP_BY_HOP_RESPONSE: Final = frozenset({"transfer-encoding"})
_DERIVED_REQUEST: Final = frozenset({"content-length"})
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
        elif kind is str:
            inner = _embedded_json(item)
            if inner is not None:
                _collect_keys(inner, keys)


def _embedded_json(text: str) -> dict[str, Any] | list[Any] | None:
    """A JSON object or array held as a string value (SNS/SQS ``Message``, a ``body``
    field), parsed; None for any other string."""
    if len(text) < 2 or (text[0] not in "{[ \t\r\n" or text[-1] not in "}] \t\r\n"):
        return None
    stripped = text.strip()
    if len(stripped) < 2 or stripped[0] not in "{[" or stripped[-1] not in "}]":
        return None
    try:
        parsed = orjson.loads(stripped)
    except orjson.JSONDecodeError:
        try:  # NaN, huge integers...: the standard parser decides, as for whole bodies
            parsed = json.loads(stripped)
        except ValueError:
            return None
    return parsed if type(parsed) is dict or type(parsed) is list else None


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
        inner = _embedded_json(value)
        if inner is not None:
            new_inner, inner_changed = _redact_json(inner)
            if inner_changed:
                return json.dumps(new_inner, ensure_ascii=False, separators=(",", ":")), True
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


def redact_text(text: str, content_type: str, *, complete: bool, raw: bytes | None = None
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
    elif "multipart/form-data" in content_type:
        text = redact_multipart(text)
    return _redact_cards(text)


_PART_NAME: Final = re.compile(r'(?im)^content-disposition:[^\r\n]*?\bname="([^"]*)"')
_PART_FILE: Final = re.compile(r'(?im)^content-disposition:[^\r\n]*?\bfilename\*?=')


def redact_multipart(text: str) -> str:
    """A ``multipart/form-data`` body with the values of secret-named fields replaced.

    The boundary is read from the body's first line (the header's copy has been
    lower-cased); parts with a ``filename`` (uploads) are kept as they are.
    """
    first_end = text.find("\r\n")
    if not text.startswith("--") or first_end < 3:
        return text
    delimiter = text[:first_end]
    parts = text.split(delimiter)
    changed = False
    for index in range(1, len(parts)):  # parts[0] is the preamble
        part = parts[index]
        if part.startswith("--"):
            break  # the closing delimiter: what follows is the epilogue (a body cut at
            # max_body has none, and its last part, cut too, is still looked at)
        split = part.find("\r\n\r\n")
        if split < 0:
            continue
        headers, content = part[:split], part[split + 4:]
        named = _PART_NAME.search(headers)
        if named is None or _PART_FILE.search(headers) is not None:
            continue
        if not _secret(named.group(1)):
            continue
        ending = "\r\n" if content.endswith("\r\n") else ""
        if content[: len(content) - len(ending)] == REDACTED_TEXT:
            continue
        parts[index] = f"{headers}\r\n\r\n{REDACTED_TEXT}{ending}"
        changed = True
    return delimiter.join(parts) if changed else text


