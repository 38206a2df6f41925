"""Redaction at capture: secret-looking names and values never reach a sink.

Names (argument, attribute, dict key, variable, context field, loop, the
function whose result it is) are judged once and cached. Values are
scanned with regular expressions (bearer tokens, well-known key formats,
passwords in URLs and ``key=value`` strings, and the user's own patterns):
that costs microseconds per string, so it runs where events are rare
(variables, context, loops, errors, HTTP and database calls) and, for the
per-call lines of ``@traced``, only when asked (``Redaction(everywhere=True)``
or any pattern of the user's own).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from typing import Any, Final, final

from pytest_replay.capture.textscan import NATIVE, gate_for

DEFAULT_SECRET_WORDS: Final = (
    "password", "passwd", "passphrase", "secret", "token", "apikey", "api_key", "api-key",
    "authorization", "credential", "bearer", "session", "cookie", "csrf", "xsrf",
    "private_key", "privatekey", "access_key", "signature", "x-api-key", "card_number",
    "cardnumber", "credit_card", "creditcard", "security_code", "social_security",
    "subscription_key",
)
"""Key names containing one of these are secret. The one list every writer uses
(capture here, ``extract-traces`` in :mod:`pytest_replay.redaction.rules`)."""
DEFAULT_SECRET_NAMES: Final = ("auth", "pwd", "pass", "sid", "ssn", "cvv", "cvc", "cvv2", "pin",
                               "otp", "iban", "jwt")
"""Key names that are secret as whole words (``auth_header``, not ``author``)."""
_CACHE_SIZE: Final = 4096
_CLEAN_TEXT: Final = 64
"""Longest string remembered as clean: longer ones are bodies, which rarely repeat."""
REDACTED_VALUE: Final = "[REDACTED]"
_SENSITIVE_WORDS: Final = ("key", "token", "secret", "password", "passwd", "pwd", "pass", "auth",
                           "signature", "sig", "session", "sid", "credential", "credentials",
                           "jwt")
_QUOTED_VALUE: Final = (r"""(?P<done>\[REDACTED(?::\w+)?\])"""
                        r"""|"(?P<dq>[^"\\]*(?:\\.[^"\\]*)*)"|'(?P<sq>[^'\\]*(?:\\.[^'\\]*)*)'""")
"""A value redacted already, or one in double or single quotes (kept, the inside replaced)."""
_PAIR: Final = re.compile(
    r"(?:^|(?<=[?&;,\s#(]))(?P<name>[\w.-]+)="
    r"(?=(?P<value>" + _QUOTED_VALUE + r"""|(?P<bare>[^&\s#;,)?"']+)))""")
"""``name=value`` after a separator. The value is looked at, not taken (a lookahead), so
the next pair may start inside it; a bare value stops before ``?`` so that a query inside
a value (``target=/cb?api_key=...``) is a pair of its own."""


@functools.lru_cache(maxsize=4096)
def _sensitive_parameter(name: str) -> bool:
    """A parameter name ending in a sensitive word, or in one followed by ``id`` (one
    separator allowed between: ``session_id``, ``JSESSIONID``), in any case."""
    lowered = name.lower()
    if lowered.endswith(_SENSITIVE_WORDS):
        return True
    if not lowered.endswith("id"):
        return False
    stem = lowered[:-2]
    if stem.endswith(("_", ".", "-")):
        stem = stem[:-1]
    return stem.endswith(_SENSITIVE_WORDS)


@final
class JudgedPairs:
    """A ``name``/value rule: a pattern whose matches count only when ``judge(name)`` says so.

    It answers ``search`` and ``sub`` as a compiled pattern does, so the rules
    run it as any other; ``sub`` replaces the value (and keeps its quotes).
    Matching the name loosely and judging it in Python keeps the pattern free
    of the backtracking an alternation of words after ``[\\w.-]*`` costs.
    """

    __slots__ = ("flags", "judge", "regex")

    def __init__(self, regex: re.Pattern[str], judge: Callable[[str], bool],
                 flags: int = 0) -> None:
        self.regex = regex
        self.judge = judge
        self.flags = flags
        """``re.IGNORECASE`` when the rule's anchors are to be found in any case."""

    @property
    def pattern(self) -> str:
        """The pattern's text, as a compiled pattern has it."""
        return self.regex.pattern

    def search(self, text: str) -> re.Match[str] | None:
        """The first pair whose name is judged secret, or None."""
        judge = self.judge
        for match in self.regex.finditer(text):
            if judge(match.group("name")) and not _done(match):
                return match
        return None

    def sub(self, _repl: object, text: str) -> str:
        """``text`` with the value of every pair under a secret name replaced.

        The value is replaced inside its quotes; a bare value under a name in
        double quotes (JSON held as text: ``"token_count": 5``) becomes the
        string ``"[REDACTED]"``, so the text stays valid JSON.
        """
        judge = self.judge
        pieces: list[str] = []
        kept = 0
        for match in self.regex.finditer(text):
            if not judge(match.group("name")) or _done(match):
                continue
            for group in ("dq", "sq", "bare"):
                start, end = match.span(group)
                if start >= kept:
                    break
            else:
                continue  # inside a value replaced already
            quoted_name = match.groupdict().get("nq") == '"'
            pieces.append(text[kept:start])
            pieces.append(f'"{REDACTED_VALUE}"' if group == "bare" and quoted_name
                          else REDACTED_VALUE)
            kept = end
        if not pieces:
            return text
        pieces.append(text[kept:])
        return "".join(pieces)


def _common_character(anchors: tuple[str, ...]) -> str:
    """A punctuation character in every one of ``anchors`` (case-proof), or ""."""
    if not anchors:
        return ""
    shared = set(anchors[0]).intersection(*anchors[1:])
    for character in sorted(shared):
        if not character.isalnum() and character.isascii():
            return character
    return ""


def _done(match: re.Match[str]) -> bool:
    """Whether a ``name: value`` match holds a value redacted already (quoted or not)."""
    if match.group("done") is not None:  # every JudgedPairs pattern has these groups
        return True
    quoted = match.group("dq") or match.group("sq")
    return quoted is not None and _REDACTED_MARK.fullmatch(quoted) is not None


_REDACTED_MARK: Final = re.compile(r"\[REDACTED(?::\w+)?\]")


def _replace(match: re.Match[str]) -> str:
    """The match with its first group that took part replaced (the whole match if none)."""
    for group in range(1, match.re.groups + 1):
        start, end = match.span(group)
        if start >= 0:
            whole_start = match.start()
            text = match.group(0)
            return text[: start - whole_start] + REDACTED_VALUE + text[end - whole_start:]
    return REDACTED_VALUE


DEFAULT_VALUE_RULES: Final[tuple[tuple[tuple[str, ...], Any], ...]] = (
    (("earer", "EARER", "asic", "ASIC", "oken", "OKEN"),
     re.compile(r"(?i)\b(?:bearer|basic|token)\s+([A-Za-z0-9._~+/=-]{6,})")),
    (("_live_", "_test_"), re.compile(r"\b((?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{6,})")),
    (("gh", "github_pat_"),
     re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})")),
    (("AKIA",), re.compile(r"\b(AKIA[0-9A-Z]{16})\b")),
    (("xox",), re.compile(r"\b(xox[abprs]-[A-Za-z0-9-]{10,})")),
    (("eyJ",), re.compile(r"\b(eyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]*)")),
    (("://",), re.compile(r"://[^/\s:@]+:([^/\s@]+)@|://([A-Za-z0-9._~-]{16,})@")),
    ((*(f"{word}{tail}=" for word in _SENSITIVE_WORDS  # any match holds one
        for tail in ("", "id", "_id", "-id", ".id")),),
     JudgedPairs(_PAIR, _sensitive_parameter, re.IGNORECASE)),
)
"""Secret-shaped text inside values: the first group that matched (or the whole match) is
replaced; a :class:`JudgedPairs` rule replaces the value of a pair it judges secret. Each rule
has literal anchors, one of which must be in the text before its regular expression
runs: ``in`` on a string is a fast C search, a regular expression is not."""
DEFAULT_VALUE_PATTERNS: Final = tuple(pattern for _anchors, pattern in DEFAULT_VALUE_RULES)
_NAMED_VALUE: Final = re.compile(
    r"""(?:^|(?<=[\s{,;(\[]))(?P<nq>["']?)(?P<name>[A-Za-z_][\w.-]*)(?P=nq)"""
    r"""[ \t]*(?::|[ \t]=)[ \t]*"""
    r"""(?=(?P<value>""" + _QUOTED_VALUE + r"""|(?P<bare>[^"'\s,;&}\])\[{][^"'\s,;&}\])]*)))""")
_NAMED_VALUE_ANCHORS: Final = ('":', "':", ": ", ":\t", " =", "\t=")
"""A name, a colon (or ``=`` after a space), and its value: ``"password": "..."`` in JSON
held as text, ``'api_key': '...'`` in a dict's repr, ``X-Api-Key: ...`` on a header line,
``client_secret: ...`` in YAML, ``SET password = '...'`` in SQL. The name is judged as
dict keys are (:meth:`Redaction.is_secret_key`), so text and structure agree."""
STRUCTURAL_FIELDS: Final = frozenset({
    "event_type", "timestamp_ns", "correlation_id", "parent_correlation_id", "trace_id",
    "service", "function_name", "module", "qualname", "v", "duration_ns", "lineno", "filename",
    "source_line", "error_type", "error_module", "variable_name", "loop_name", "iteration",
    "iterations", "truncated", "$type", "class", "rule", "len", "observed",
})
"""Keys whose values are code or bookkeeping, never user data: value scans skip them."""
MIN_SCANNED: Final = 6
"""Strings shorter than this hold no secret worth a regular expression."""
_CAMEL: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATOR: Final = re.compile(r"[^a-z0-9]+")


@final
class Redaction:
    """Which keys and values are secret. ``Redaction.off()`` turns it off, explicitly."""

    __slots__ = ("anchor_commons", "anchor_gate", "anchored", "clean_texts", "enabled",
                 "everywhere", "names",
                 "patterns", "plain_keys", "text_gate", "value_patterns", "value_rules", "verdicts",
                 "words")

    def __init__(
        self,
        keys: Iterable[str] = (),
        patterns: Iterable[str | re.Pattern[str]] = (),
        *,
        defaults: bool = True,
        enabled: bool = True,
        values: bool = True,
        everywhere: bool = False,
    ) -> None:
        """``keys`` add secret names, ``patterns`` (regexes) match names and text in values.

        ``values=False`` stops scanning values with the built-in patterns;
        ``everywhere=True`` scans the per-call lines of ``@traced`` too (any
        pattern of your own implies it).
        """
        extra = tuple(key.lower() for key in keys)
        self.enabled = enabled
        self.words: tuple[str, ...] = (DEFAULT_SECRET_WORDS if defaults else ()) + extra
        self.names: frozenset[str] = frozenset(DEFAULT_SECRET_NAMES if defaults else ()) | set(
            extra
        )
        self.patterns: tuple[re.Pattern[str], ...] = tuple(
            re.compile(p) if isinstance(p, str) else p for p in patterns
        )
        builtin: tuple[tuple[tuple[str, ...], Any], ...] = (
            (*DEFAULT_VALUE_RULES,
             (_NAMED_VALUE_ANCHORS, JudgedPairs(_NAMED_VALUE, self.is_secret_key)))
            if enabled and defaults and values else ())
        own = tuple(((), pattern) for pattern in self.patterns) if enabled else ()
        self.value_rules: tuple[tuple[tuple[str, ...], Any], ...] = builtin + own
        self.value_patterns: tuple[Any, ...] = tuple(
            pattern for _anchors, pattern in self.value_rules)
        self.everywhere = enabled and bool(self.value_patterns) and (
            everywhere or bool(self.patterns))
        self.verdicts: dict[str, bool] = {}
        self.anchored: tuple[tuple[tuple[str, ...], bool, Any], ...] = tuple(
            (tuple(dict.fromkeys(anchor.casefold() for anchor in anchors)), True, pattern)
            if anchors and pattern.flags & re.IGNORECASE else (anchors, False, pattern)
            for anchors, pattern in self.value_rules)
        """The rules as ``(anchors, folded, pattern)``: a case-insensitive rule's anchors are
        looked for in the case-folded text, so ``bEaReR`` is found as ``Bearer`` is."""
        self.anchor_commons: tuple[str, ...] = tuple(
            _common_character(anchors) for anchors, _fold, _pattern in self.anchored)
        """Per rule, a character every one of its anchors holds (``=`` for ``key=``...), or
        "": looked for first. Only punctuation, which case folding leaves alone."""
        self.anchor_gate: re.Pattern[str] | None = (
            re.compile("|".join(re.escape(anchor.casefold()) for anchors, _ in self.value_rules
                                for anchor in anchors))
            if self.value_rules and all(anchors for anchors, _ in self.value_rules) else None)
        """Any anchor of any rule, case-folded, searched in a short case-folded string (None
        when a rule has no anchor: a pattern of the user's own). Longer texts search anchor
        by anchor: ``in`` skips through them faster than an alternation does."""
        self.clean_texts: set[str] = set()
        """Short strings already scanned and found clean (bounded): they repeat."""
        self.plain_keys: set[str] = set()
        """Keys seen to be plain (ASCII, not secret): the encoder's fast path asks once."""
        """Answers given so far, by key: hot paths look here before calling."""
        self.text_gate: Any = gate_for(self)
        """The C anchor search (``textscan.gate_for``), or None: then Python scans alone."""

    def scrub(self, text: str) -> str:
        """``text`` with every secret-shaped part replaced (the same object if none)."""
        if len(text) < MIN_SCANNED or text in self.clean_texts:
            return text
        if not self.holds_secret_text(text):
            if len(text) <= _CLEAN_TEXT:
                # Header values, statuses, names: short strings repeat across requests.
                clean = self.clean_texts
                if len(clean) >= _CACHE_SIZE:
                    clean.clear()
                clean.add(text)
            return text
        for pattern in self.value_patterns:  # rare: something is there, let each rule look
            if pattern.search(text) is not None:
                text = pattern.sub(_replace, text)
        return text

    def holds_secret_text(self, text: str) -> bool:
        """Whether :meth:`scrub` would change ``text`` (the cheap question asked first)."""
        gate = self.anchor_gate
        folded: str | None = None
        if gate is not None and len(text) <= _CLEAN_TEXT:
            folded = text.casefold()
            if gate.search(folded) is None:
                return False  # no rule's anchor at all: one search instead of one per anchor
        for (anchors, fold, pattern), common in zip(self.anchored, self.anchor_commons,
                                                    strict=True):
            if anchors:
                if common and common not in text:
                    continue  # every anchor of the rule holds it: one search, not dozens
                haystack = text
                if fold:
                    if folded is None:
                        folded = text.casefold()
                    haystack = folded
                for anchor in anchors:  # inline: a call per rule costs more than the searches
                    if anchor in haystack:
                        break
                else:
                    continue
            if pattern.search(text) is not None:
                return True
        return False

    def scrub_encoded(self, value: object) -> object:
        """An encoded value with its strings scrubbed; containers are copied only if changed.

        Fields that name structure rather than hold data (``event_type``, ids,
        ``function_name``, a tagged value's ``$type`` and ``class``...) are
        left alone: they are code, and scanning them would only cost time.
        The C walker does it where built; :meth:`scrub_encoded_python` is the reference.
        """
        gate = self.text_gate
        if gate is not None and NATIVE is not None:
            return NATIVE.scrub_encoded(value, STRUCTURAL_FIELDS, gate, MIN_SCANNED, self.scrub)
        return self.scrub_encoded_python(value)

    def scrub_encoded_python(self, value: object) -> object:
        """:meth:`scrub_encoded` in Python alone (the behaviour's definition)."""
        kind = type(value)
        if kind is str:
            return self.scrub(value)  # type: ignore[arg-type]
        if kind is dict:
            changed: dict[object, object] | None = None
            for key, item in value.items():  # type: ignore[attr-defined]
                if key in STRUCTURAL_FIELDS:
                    continue
                new = self._scrubbed_item(item)
                if new is not item:
                    if changed is None:
                        changed = dict(value)  # type: ignore[call-overload]
                    changed[key] = new
            return value if changed is None else changed
        if kind is list:
            copied: list[object] | None = None
            for index, item in enumerate(value):  # type: ignore[arg-type]
                inner: type = type(item)
                if inner is str or inner is dict or inner is list:  # numbers hold no text
                    new = self._scrubbed_item(item)
                    if new is not item:
                        if copied is None:
                            copied = list(value)  # type: ignore[call-overload]
                        copied[index] = new
            return value if copied is None else copied
        return value

    def _scrubbed_item(self, item: object) -> object:
        """One element of a container: clean strings and scalars answer without a walk."""
        kind = type(item)
        if kind is str:
            if len(item) < MIN_SCANNED or item in self.clean_texts:  # type: ignore[arg-type]
                return item
            return self.scrub(item)  # type: ignore[arg-type]
        if kind is dict or kind is list:
            return self.scrub_encoded_python(item)
        return item

    @classmethod
    def off(cls) -> Redaction:
        """No redaction at all (say so explicitly; the default is on)."""
        return cls(defaults=False, enabled=False)

    def is_secret_key(self, key: str) -> bool:
        """Whether values stored under ``key`` must be redacted (answers are cached)."""
        verdict = self.verdicts.get(key)
        if verdict is None:
            verdict = self.enabled and self._judge(key)
            if len(self.verdicts) >= _CACHE_SIZE:
                self.verdicts.clear()  # keys are names in code: a full cache means churn
            self.verdicts[key] = verdict
        return verdict

    def _judge(self, key: str) -> bool:
        """A word anywhere (``db_password``), or a short name as a whole token (``auth_header``,
        ``SHOP_DB_PASS``, ``authHeader``; not ``author``), or a configured pattern.

        Words are also looked for with camelCase and separators spelled ``_``:
        ``accessKey``, ``access-key`` and ``X-Access-Key`` are ``access_key``.
        """
        lowered = key.lower()
        if lowered in self.names or any(word in lowered for word in self.words):
            return True
        tokens = _SEPARATOR.split(_CAMEL.sub("_", key).lower())
        if any(token in self.names for token in tokens):
            return True
        spelled = "_".join(token for token in tokens if token)
        if spelled != lowered and any(word in spelled for word in self.words):
            return True
        return any(pattern.search(key) for pattern in self.patterns)


DEFAULT_REDACTION: Final = Redaction()
