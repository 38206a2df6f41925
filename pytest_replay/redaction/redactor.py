"""Replace personal data with deterministic tokens wherever it hides in a JSON value.

A token is ``<kind:8 hex digits>``: an HMAC of the value under a key drawn
at random once per :class:`Redactor`. Within one output the same e-mail is
the same token everywhere (in the arguments, in the recorded HTTP body, in
the SQL parameters), so recorded calls still match at replay; across runs
tokens differ, so they cannot be joined or looked up.

Where data hides, and how it is found:

- under a secret key (``password``, ``Authorization``...): the whole value;
- in strings, by shape (:mod:`pytest_replay.redaction.detectors`);
- in strings that are themselves JSON, URLs or form bodies: parsed, redacted
  by the same rules (keys included), and written back only if something
  changed;
- in dictionary keys (an e-mail used as a key is redacted too);
- in payment card numbers stored as JSON integers.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections import Counter
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson

from pytest_replay.redaction.detectors import DETECTORS, Detector, card_number
from pytest_replay.redaction.rules import SECRET_NAMES, SECRET_WORDS, Rules
from pytest_replay.redaction.tokens import TOKEN

MAX_DEPTH: Final = 200
_TOKEN_CACHE: Final = 100_000
_INERT_TAGS: Final = frozenset({
    "datetime", "date", "time", "timedelta", "uuid", "float", "complex", "enum", "ref",
    "cycle", "max_depth", "bytes", "decimal", "unencodable",
})
_META_KEYS: Final = frozenset({"$type", "class", "len", "truncated", "rule"})
_URL: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$")
_FORM: Final = re.compile(r"^[\w.\-\[\]%+]+=[^\s&]*(?:&[\w.\-\[\]%+]+=[^\s&]*)*$")
_WORTH_A_LOOK: Final = re.compile(r"[@:=]|\d[\d .()+/-]{5,}|eyJ|[A-Z]{2}\d\d|Bearer|Basic",
                                  re.IGNORECASE)
_BEARER: Final = re.compile(r"\b(Bearer|Basic|Token)\s+([A-Za-z0-9._~+/=-]{8,})")


def _assignment_regex(words: tuple[str, ...], names: frozenset[str]) -> re.Pattern[str]:
    """``password=hunter2``, ``"api_key": "abc"``, ``token: abc`` inside free text."""
    keyed = "|".join(sorted({re.escape(word) for word in words}, key=len, reverse=True))
    exact = "|".join(sorted({re.escape(name) for name in names}, key=len, reverse=True))
    return re.compile(
        rf"(?i)(?<![\w<-])((?:[\w-]*(?:{keyed})[\w-]*|(?:{exact}))[\"']?\s*[=:]\s*)"
        r"(?:'([^']*)'|\"([^\"]*)\"|((?:Bearer|Basic|Token)\s+[^\s\"',;&)]+|[^\s\"',;&)]+))"
    )


class Redactor:
    """Tokenizes personal data and counts what it replaced, by rule."""

    def __init__(self, rules: Rules | None = None, *, key: bytes | None = None) -> None:
        self.rules = rules or Rules()
        self._key = key if key is not None else secrets.token_bytes(32)
        self.counts: Counter[str] = Counter()
        """Values replaced, by rule (``email``, ``secret_key``, ``custom:<regex>``...)."""
        self.secret_keys: Counter[str] = Counter()
        """Key names whose values were replaced under the ``secret_key`` rule."""
        self._tokens: dict[tuple[str, str], str] = {}
        self._assignment = (
            _assignment_regex(self.rules.words, self.rules.names)
            if self.rules.words != SECRET_WORDS or self.rules.names != frozenset(SECRET_NAMES)
            else _DEFAULT_ASSIGNMENT
        )

    # -- tokens --------------------------------------------------------------------

    def token(self, kind: str, normal: str, rule: str | None = None) -> str:
        """The token of one value (``normal`` is its normal form), counted under ``rule``."""
        self.counts[rule or kind] += 1
        cached = self._tokens.get((kind, normal))
        if cached is not None:
            return cached
        message = f"{kind}\x00{normal}".encode("utf-8", "surrogatepass")
        digest = hmac.new(self._key, message, hashlib.sha256).hexdigest()[:8]
        token = f"<{kind}:{digest}>"
        if len(self._tokens) < _TOKEN_CACHE:
            self._tokens[(kind, normal)] = token
        return token

    # -- JSON values ---------------------------------------------------------------

    def value(self, value: Any, key: str | None = None, depth: int = 0) -> Any:
        """``value`` with personal data replaced; ``key`` is the name it is stored under."""
        if key is not None and self.rules.is_secret_key(key):
            return self._secret(value, key)
        kind = type(value)
        if kind is str:
            return self.text(value, depth)
        if depth >= MAX_DEPTH and kind in (dict, list):
            return self.token("deep", orjson.dumps(value).decode(), "too_deep")
        if kind is dict:
            return self._mapping(value, depth)
        if kind is list:
            return self._sequence(value, depth)
        if kind is int:
            return self._number(value)
        return value

    def _secret(self, value: Any, key: str) -> Any:
        if value is None or isinstance(value, bool) or value == "":
            return value
        if isinstance(value, dict) and value.get("$type") == "redacted":
            return value
        if isinstance(value, str):
            if TOKEN.match(value):
                return value
            normal = value
        else:
            normal = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
        self.secret_keys[key.lower()] += 1
        return self.token("secret", normal, "secret_key")

    def _mapping(self, mapping: dict[str, Any], depth: int) -> Any:
        tag = mapping.get("$type")
        if isinstance(tag, str):
            if tag == "redacted" or tag in _INERT_TAGS:
                return mapping
            return {name: item if name in _META_KEYS else self.value(item, None, depth + 1)
                    for name, item in mapping.items()}
        return {self.text(name, depth): self.value(item, name, depth + 1)
                for name, item in mapping.items()}

    def _sequence(self, items: list[Any], depth: int) -> list[Any]:
        if items and all(type(pair) is list and len(pair) == 2 and type(pair[0]) is str
                         for pair in items):
            # Header lists and tagged dict items: [name, value] pairs.
            return [[self.text(name, depth), self.value(item, name, depth + 1)]
                    for name, item in items]
        return [self.value(item, None, depth + 1) for item in items]

    def _number(self, number: int) -> Any:
        if 10**12 <= number < 10**19:
            digits = card_number(str(number))
            if digits is not None:
                return self.token("card", digits)
        return number

    # -- strings -------------------------------------------------------------------

    def text(self, text: str, depth: int = 0) -> str:
        """A string with personal data replaced: parsed first if it is JSON, a URL or a form."""
        if not self.rules.patterns and (len(text) < 6 or not _WORTH_A_LOOK.search(text)):
            return text
        stripped = text.strip()
        head = stripped[:1]
        if head in ("{", "[") and depth < MAX_DEPTH:
            nested = self._json(stripped, depth)
            if nested is not None:
                return nested
        if _URL.match(stripped):
            return self._url(text)
        if _FORM.match(stripped):
            return self._form(text, depth)
        return self.free_text(text)

    def _json(self, text: str, depth: int) -> str | None:
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(parsed, (dict, list)):
            return None
        redacted = self.value(parsed, None, depth + 1)
        return text if redacted == parsed else _dumps_like(redacted, text)

    def _url(self, text: str) -> str:
        try:
            parts = urlsplit(text.strip())
        except ValueError:
            return self.free_text(text)
        userinfo, at, host = parts.netloc.rpartition("@")
        netloc = self.free_text(host)
        if at:
            user, colon, password = userinfo.partition(":")
            if colon and password:
                password = self.token("secret", password, "url_password")
            netloc = f"{self.free_text(user)}{colon}{password}@{netloc}"
        rebuilt = urlunsplit((
            parts.scheme, netloc, self.free_text(parts.path),
            self._form(parts.query, 0) if parts.query else "",
            self.free_text(parts.fragment),
        ))
        return text if rebuilt == text.strip() else rebuilt

    def _form(self, text: str, depth: int) -> str:
        pairs = parse_qsl(text.strip(), keep_blank_values=True)
        if not pairs:
            return self.free_text(text)
        changed = False
        out: list[tuple[str, str]] = []
        for name, item in pairs:
            if item and self.rules.is_secret_key(name):
                new = item if TOKEN.match(item) else self._secret(item, name)
            else:
                new = self.text(item, depth + 1)
            new_name = self.free_text(name)
            changed = changed or new != item or new_name != name
            out.append((new_name, new))
        return urlencode(out) if changed else text

    def free_text(self, text: str) -> str:
        """Prose, log messages, SQL: every detector and custom pattern over the string."""
        out = text
        for pattern in self.rules.patterns:
            out = pattern.sub(self._custom_replacer(f"custom:{pattern.pattern}"), out)
        if "=" in out or ":" in out:
            out = self._assignment.sub(self._assigned, out)
        if "Bearer" in out or "Basic" in out or "Token" in out:
            out = _BEARER.sub(self._bearer, out)
        for detector in DETECTORS:
            out = detector.regex.sub(_replacer(self, detector), out)
        return out

    def _custom_replacer(self, rule: str) -> Callable[[re.Match[str]], str]:
        def replace(match: re.Match[str]) -> str:
            found = match.group(0)
            return found if not found or TOKEN.match(found) else self.token("custom", found, rule)

        return replace

    def _bearer(self, match: re.Match[str]) -> str:
        return f"{match.group(1)} {self.token('secret', match.group(2), 'bearer')}"

    def _assigned(self, match: re.Match[str]) -> str:
        prefix = match.group(1)
        for group, quote in ((2, "'"), (3, '"'), (4, "")):
            found = match.group(group)
            if found is not None:
                if not found or TOKEN.match(found):
                    return match.group(0)
                return f"{prefix}{quote}{self.token('secret', found, 'secret_in_text')}{quote}"
        return match.group(0)


_DEFAULT_ASSIGNMENT: Final = _assignment_regex(SECRET_WORDS, frozenset(SECRET_NAMES))
_INDENT: Final = re.compile(r"^[\[{]\s*\n( +|\t)", re.ASCII)


def _dumps_like(value: Any, original: str) -> str:
    """JSON in the original's style (spacing, indentation, escapes).

    A request body rewritten compactly would no longer match the body the
    same code sends at replay; written the way it was, only the tokens
    differ.
    """
    indent = _INDENT.match(original)
    spaced = '": ' in original or '", "' in original
    return json.dumps(
        value,
        ensure_ascii="\\u" in original,
        indent=indent.group(1) if indent else None,
        separators=(", " if spaced and not indent else ",", ": " if spaced or indent else ":"),
    )


def _replacer(redactor: Redactor, detector: Detector) -> Callable[[re.Match[str]], str]:
    def replace(match: re.Match[str]) -> str:
        found = match.group(0)
        normal = detector.confirm(found)
        return found if normal is None else redactor.token(detector.kind, normal)

    return replace
