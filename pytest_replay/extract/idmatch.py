"""Find the lines that mention given ids, at close to memory speed.

Parsing every line of a log with orjson runs at about 100 MB/s, so the scan
never parses to search: it runs ``bytes.find`` or one compiled regular
expression over megabyte blocks and returns positions; only the lines found
are parsed (and checked exactly) by the caller.

Two matchers:

- :class:`SubstringMatcher`: a few needles anywhere in a line (``bytes.find``,
  the fastest scan there is).
- :class:`KeyedMatcher`: ids as the value of ``correlation_id`` or
  ``parent_correlation_id`` (a line of the frame, or a call it made). Up to
  a few hundred ids it is one regular expression whose alternatives form a
  trie, anchored on the literal ``correlation_id"``; past that it collects
  every id value of the block and intersects sets.
- :class:`CidSetMatcher`: ``correlation_id`` values in a large set.

JSON allows spaces and tabs around the colon (``json.dumps`` writes one);
the expressions accept them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable
from itertools import groupby
from typing import Final, Protocol

import orjson

FIND_LIMIT: Final = 2
"""Up to this many id forms, ``bytes.find`` for each beats one regular expression."""
REGEX_LIMIT: Final = 256
"""Above this many id forms, set intersection beats one alternation."""

_ANY_ID_VALUE: Final = re.compile(rb'correlation_id"[ \t]*:[ \t]*"((?:[^"\\\n]|\\.)*)"')
CORRELATION: Final = re.compile(rb'"correlation_id"[ \t]*:[ \t]*"((?:[^"\\\n]|\\.)*)"')


_ESCAPED_ID: Final = re.compile(rb'"correlation_id"[ \t]*:[ \t]*"[^"\\\n]*\\')


def canonical(raw: bytes) -> bytes:
    """One spelling per id as found between quotes: escapes resolved the way orjson writes."""
    if b"\\" not in raw:
        return raw
    try:
        return orjson.dumps(orjson.loads(b'"' + raw + b'"'))[1:-1]
    except orjson.JSONDecodeError:
        return raw


def id_bytes(value: str) -> bytes:
    """The canonical spelling of an id."""
    return orjson.dumps(value)[1:-1]


def id_forms(value: str) -> list[bytes]:
    """The ways a JSON writer may spell ``value`` inside quotes (raw UTF-8, or ``\\u`` escapes)."""
    compact = orjson.dumps(value)[1:-1]
    escaped = json.dumps(value)[1:-1].encode("ascii")
    return [compact] if compact == escaped else [compact, escaped]


class Matcher(Protocol):
    """Positions in a block where a wanted id may be mentioned."""

    def positions(self, data: bytes, start: int, end: int) -> list[int]:
        """Indexes into ``data[start:end]``, one or more per matching line."""


def quoted(values: Iterable[str]) -> list[bytes]:
    """Every spelling of every value as a JSON string, quotes included (no partial ids)."""
    return sorted({b'"' + form + b'"' for value in values for form in id_forms(value)})


def find_all(data: bytes, start: int, end: int, needles: Iterable[bytes]) -> list[int]:
    """Every occurrence of every needle (``bytes.find``: the fastest scan Python has)."""
    found: list[int] = []
    for needle in needles:
        index = data.find(needle, start, end)
        while index >= 0:
            found.append(index)
            index = data.find(needle, index + len(needle), end)
    return found


class SubstringMatcher:
    """A handful of ids as JSON strings anywhere in a line (any key: trace ids too)."""

    __slots__ = ("needles",)

    def __init__(self, values: Iterable[str]) -> None:
        self.needles = quoted(values)

    def positions(self, data: bytes, start: int, end: int) -> list[int]:
        """Every occurrence of every needle."""
        return find_all(data, start, end, self.needles)


class KeyedMatcher:
    """Ids as a (parent) correlation id; grows as new ids are learnt."""

    __slots__ = ("_forms", "_regex", "_values")

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: set[str] = set()
        self._forms: set[bytes] = set()
        self._regex: re.Pattern[bytes] | None = None
        self.add(values)

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, value: object) -> bool:
        return value in self._values

    def add(self, values: Iterable[str]) -> bool:
        """Learn more ids; True when any of them was new."""
        new = [value for value in values if value not in self._values]
        if not new:
            return False
        self._values.update(new)
        for value in new:
            self._forms.update(id_forms(value))
        self._regex = None
        return True

    def positions(self, data: bytes, start: int, end: int) -> list[int]:
        """Where a wanted id is a (parent) correlation id (or, for one or two, any string)."""
        if not self._forms:
            return []
        if len(self._forms) <= FIND_LIMIT:
            return find_all(data, start, end, (b'"' + form + b'"' for form in self._forms))
        if len(self._forms) <= REGEX_LIMIT:
            regex = self._regex
            if regex is None:
                regex = self._regex = _keyed_regex(self._forms)
            return [match.start() for match in regex.finditer(data, start, end)]
        if self._forms.isdisjoint(_ANY_ID_VALUE.findall(data, start, end)):
            return []
        forms = self._forms
        return [match.start() for match in _ANY_ID_VALUE.finditer(data, start, end)
                if match.group(1) in forms]


def _keyed_regex(forms: Collection[bytes]) -> re.Pattern[bytes]:
    return re.compile(rb'correlation_id"[ \t]*:[ \t]*"' + trie_pattern(sorted(forms)) + rb'"')


def trie_pattern(words: list[bytes]) -> bytes:
    """An alternation of ``words`` as a trie, so a failed match costs one byte, not one per word.

    ``words`` must be sorted and distinct.
    """
    if len(words) == 1:
        return re.escape(words[0])
    prefix = _common_prefix(words[0], words[-1])
    rest = [word[len(prefix) :] for word in words]
    optional = rest[0] == b""
    if optional:
        rest = rest[1:]
    branches = [trie_pattern(list(group)) for _head, group in groupby(rest, key=lambda w: w[:1])]
    inner = b"|".join(branches)
    if optional:
        body = b"(?:" + inner + b")?"
    elif len(branches) == 1:
        body = inner
    else:
        body = b"(?:" + inner + b")"
    return re.escape(prefix) + body


def _common_prefix(first: bytes, last: bytes) -> bytes:
    """The common prefix of a sorted list is that of its first and last words."""
    size = 0
    for a, b in zip(first, last):  # noqa: B905 - stops at the shorter, on purpose
        if a != b:
            break
        size += 1
    return first[:size]


class CidSetMatcher:
    """Lines whose ``correlation_id`` is in a (possibly large) set of canonical ids."""

    __slots__ = ("wanted",)

    def __init__(self, wanted: set[bytes]) -> None:
        self.wanted = wanted

    def positions(self, data: bytes, start: int, end: int) -> list[int]:
        """Where a wanted ``correlation_id`` value sits."""
        wanted = self.wanted
        values = CORRELATION.findall(data, start, end)
        if wanted.isdisjoint(values) and _ESCAPED_ID.search(data, start, end) is None:
            return []
        return [match.start() for match in CORRELATION.finditer(data, start, end)
                if canonical(match.group(1)) in wanted]
