"""Find the lines that mention given ids, at close to memory speed.

Parsing every line of a log with orjson runs at about 100 MB/s, so the scan
never parses to search: it runs ``bytes.find`` or one compiled regular
expression over megabyte blocks and returns positions; only the lines found
are parsed (and checked exactly) by the caller.

The matchers:

- :class:`SubstringMatcher`: a few needles anywhere in a line (``bytes.find``,
  the fastest scan there is; see :class:`Needles`).
- :class:`KeyedMatcher`: ids of calls, growing as calls are learnt. While
  ``bytes.find`` needs at most :data:`GROUPS_LIMIT` scans a block it uses
  :class:`Needles` (any JSON string); then one regular expression whose
  alternatives form a trie, anchored on the literal ``correlation_id"`` (the
  value of ``correlation_id`` or ``parent_correlation_id``); past a few
  hundred ids it collects every id value of the block and intersects sets.
- :class:`CidSetMatcher`: ``correlation_id`` values in a large set.

Every matcher over-approximates: the caller parses the lines found and
checks them exactly.

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

FIND_LIMIT: Final = 64
"""Up to this many id forms, ``bytes.find`` may beat one regular expression (see GROUPS_LIMIT)."""
GROUPS_LIMIT: Final = 3
"""Up to this many ``bytes.find`` scans a block (groups of ids) beat one regular expression."""
SHARED_MIN: Final = 8
"""Ids sharing this many leading bytes (opening quote included) are found with one scan."""
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


def id_text(raw: bytes) -> str | None:
    """The id a JSON string body spells (escapes resolved), or None when it is no valid text."""
    try:
        if b"\\" not in raw:
            return raw.decode("utf-8")
        value = orjson.loads(b'"' + raw + b'"')
    except (UnicodeDecodeError, orjson.JSONDecodeError):
        return None
    return value if isinstance(value, str) else None


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
    """Every spelling of every value as a JSON string, opening quote only (see :func:`find_all`)."""
    return sorted({b'"' + form for value in values for form in id_forms(value)})


def find_all(data: bytes, start: int, end: int, needles: Iterable[bytes]) -> list[int]:
    """Every occurrence of every needle followed by a closing quote (no partial ids).

    ``bytes.find`` is the fastest scan Python has; it skips ahead on the
    needle's last byte, so the closing quote (the commonest byte of JSON) is
    checked after a match rather than searched for.
    """
    found: list[int] = []
    for needle in needles:
        size = len(needle)
        index = data.find(needle, start, end)
        while index >= 0:
            if data[index + size : index + size + 1] == b'"':
                found.append(index)
            index = data.find(needle, index + size, end)
    return found


class Needles:
    """Quoted ids found with ``bytes.find``: one scan a block per group of ids.

    The calls of one request often share a long prefix (one process's
    prefix and a counter: ``f5d661ad7_655068``, ``f5d661ad7_655069``), so
    ids sharing :data:`SHARED_MIN` leading bytes are found with one scan for
    what they share, each hit then checked against the group's ids. A group
    whose shared prefix turns out common in these logs (far more hits than
    matches) is split into one scan per id for the blocks that follow.
    """

    __slots__ = ("groups",)

    def __init__(self, needles: Iterable[bytes]) -> None:
        self.groups = _grouped(sorted(set(needles)))

    def positions(self, data: bytes, start: int, end: int) -> list[int]:
        """Every occurrence of every needle followed by a closing quote."""
        found: list[int] = []
        common: list[int] = []
        for number, (prefix, members) in enumerate(self.groups):
            if len(members) == 1:
                found.extend(find_all(data, start, end, members))
                continue
            hits = matched = 0
            step = len(prefix)
            index = data.find(prefix, start, end)
            while index >= 0:
                hits += 1
                for member in members:
                    after = index + len(member)
                    if data.startswith(member, index) and data[after : after + 1] == b'"':
                        found.append(index)
                        matched += 1
                        break
                index = data.find(prefix, index + step, end)
            if hits > 4 * matched + 64:
                common.append(number)
        for number in reversed(common):
            _prefix, members = self.groups.pop(number)
            self.groups.extend((member, [member]) for member in members)
        return found


def _grouped(needles: list[bytes]) -> list[tuple[bytes, list[bytes]]]:
    """Sorted needles in runs sharing at least :data:`SHARED_MIN` leading bytes."""
    groups: list[tuple[bytes, list[bytes]]] = []
    for needle in needles:
        if groups:
            prefix, members = groups[-1]
            shared = _common_prefix(prefix, needle)
            if len(shared) >= SHARED_MIN:
                groups[-1] = (shared, [*members, needle])
                continue
        groups.append((needle, [needle]))
    return groups


class SubstringMatcher:
    """A handful of ids as JSON strings anywhere in a line (any key: trace ids too)."""

    __slots__ = ("needles",)

    def __init__(self, values: Iterable[str]) -> None:
        self.needles = Needles(quoted(values))

    def positions(self, data: bytes, start: int, end: int) -> list[int]:
        """Every occurrence of every needle."""
        return self.needles.positions(data, start, end)


class KeyedMatcher:
    """Ids as a (parent) correlation id; grows as new ids are learnt."""

    __slots__ = ("_forms", "_needles", "_regex", "_values")

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: set[str] = set()
        self._forms: set[bytes] = set()
        self._regex: re.Pattern[bytes] | None = None
        self._needles: Needles | None = None
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
        self._needles = None
        if len(self._forms) <= FIND_LIMIT:
            needles = Needles(b'"' + form for form in self._forms)
            if len(needles.groups) <= GROUPS_LIMIT:
                self._needles = needles
        return True

    def positions(self, data: bytes, start: int, end: int) -> list[int]:
        """Where a wanted id is a (parent) correlation id (or, found by ``bytes.find``, any string).

        A few scans with ``bytes.find`` beat one regular expression; past
        :data:`GROUPS_LIMIT` of them, one expression does better.
        """
        if not self._forms:
            return []
        needles = self._needles
        if needles is not None:
            found = needles.positions(data, start, end)
            if len(needles.groups) > GROUPS_LIMIT:
                self._needles = None  # its groups split: one expression from now on
            return found
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
