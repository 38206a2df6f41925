"""Select requests by filters that are not ids, in memory that does not grow with the logs.

1. Graph and facts, in one pass: every call's request (see
   :mod:`pytest_replay.extract.graph`); each filter finds its candidate
   lines with one regular expression per block (error events, the user's
   pattern, ``"service":"shop"``...) and those lines, and only those, are
   parsed into a few flags (``facts`` table). Both tables live in the run's
   :class:`~pytest_replay.extract.store.Store`.
2. Decide: the requests in log order, each with its facts (one SQL join,
   sorted by SQLite, on disk when large): in, out, or undecided (its
   status, or a duration its root exit does not give). Undecided ones are
   judged later on all their lines. ``--limit N`` stops at the request that
   makes N sure ones. The requests kept go to the ``kept`` table.
3. Collect: one pass for the lines of the requests kept, into the spool.
   When their calls are few they are looked for by id at memory speed; when
   they are many, each block's ids are looked up in the store.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

import orjson

from pytest_replay.extract.criteria import Criteria
from pytest_replay.extract.facts import (
    argument_user_ids,
    context_user_ids,
    function_names_of,
    in_window,
    is_error,
    variants_of,
)
from pytest_replay.extract.graph import Frames, build
from pytest_replay.extract.idmatch import (
    CORRELATION,
    REGEX_LIMIT,
    CidSetMatcher,
    KeyedMatcher,
    Matcher,
    id_bytes,
    id_forms,
    id_text,
)
from pytest_replay.extract.problems import Problems
from pytest_replay.extract.scan import Hit, Scanner
from pytest_replay.extract.segments import Segment
from pytest_replay.extract.spool import Spool
from pytest_replay.extract.store import Store
from pytest_replay.format.events import FUNCTION_EXIT, Event

ERROR_EVENT: Final = re.compile(rb'"event_type"[ \t]*:[ \t]*"error"')
RAISED: Final = re.compile(rb'"error"[ \t]*:[ \t]*[^fn0 \t]')
EXIT_EVENT: Final = re.compile(rb'"event_type"[ \t]*:[ \t]*"function_exit"')

# Facts of one candidate line, as bits.
PATTERN: Final = 1
ERROR: Final = 2
ERRORISH: Final = 4
USER: Final = 8
ROOT_USER: Final = 16
"""The line is an entry whose ``user_id`` argument matches: counts when it is the root's."""
VARIANT: Final = 32
SERVICE: Final = 64
FUNCTION: Final = 128
EXIT: Final = 256
"""The line is a ``function_exit``: the request's duration when it is the root's."""

_LOOKUP_CHUNK: Final = 500
_OWNERS_OF: Final = ("SELECT f.cid, k.cid FROM frames AS f JOIN kept AS k ON k.id = f.root "
                     "WHERE f.cid IN (%s)")
_INT64: Final = (-(1 << 63), (1 << 63) - 1)


@dataclass(slots=True)
class Partial:
    """What the candidate lines of one request showed."""

    pattern: bool = False
    error: bool = False
    errorish: bool = False
    user: bool = False
    variant: bool = False
    service: bool = False
    function: bool = False
    exit_seen: bool = False
    exit_duration: int | None = None

    def credit(self, flags: int, duration: int | None, own: bool) -> None:
        """Add one line's facts (``own``: the line is the root call's own)."""
        self.pattern |= bool(flags & PATTERN)
        self.error |= bool(flags & ERROR)
        self.errorish |= bool(flags & ERRORISH)
        self.user |= bool(flags & USER) or bool(own and flags & ROOT_USER)
        self.variant |= bool(flags & VARIANT)
        self.service |= bool(flags & SERVICE)
        self.function |= bool(flags & FUNCTION)
        if own and flags & EXIT and not self.exit_seen:
            self.exit_seen = True  # the first exit of the root call tells its duration
            self.exit_duration = duration


class Kept:
    """The requests kept, in log order, as ``(root id, still to judge)``; read from the store."""

    def __init__(self, store: Store) -> None:
        self._db = store.db

    def __iter__(self) -> Iterator[tuple[str, bool]]:
        for root, undecided in self._db.execute("SELECT cid, undecided FROM kept ORDER BY id"):
            yield root, bool(undecided)

    def __len__(self) -> int:
        count: int = self._db.execute("SELECT COUNT(*) FROM kept").fetchone()[0]
        return count


class General:
    """One filter-driven selection over a set of sources."""

    def __init__(self, scanner: Scanner, spool: Spool, store: Store, criteria: Criteria,
                 problems: Problems) -> None:
        self.scanner = scanner
        self.spool = spool
        self.store = store
        self.db = store.db
        self.criteria = criteria
        self.problems = problems
        self.regexes = _candidate_regexes(criteria)
        self.db.execute("CREATE TABLE facts (cid TEXT NOT NULL, pos INTEGER NOT NULL, "
                        "flags INTEGER NOT NULL, duration INTEGER)")
        self.db.execute("CREATE TABLE kept (id INTEGER PRIMARY KEY, cid TEXT NOT NULL, "
                        "undecided INTEGER NOT NULL)")

    def run(self) -> Kept:
        """The requests to keep or judge, in log order; their lines are in the spool."""
        frames = Frames(self.store)
        build(self.scanner, self.problems, frames, self._facts if self.regexes else None)
        if self._decide(frames):
            self._collect()
        return Kept(self.store)

    # -- facts from candidate lines ---------------------------------------------------

    def _facts(self, segment: Segment) -> None:
        data, start, end = segment.data, segment.start, segment.end
        hits = sorted({match.start() for regex in self.regexes
                       for match in regex.finditer(data, start, end)})
        rows: list[tuple[str, int, int, int | None]] = []
        line_end = -1
        for index in hits:
            if index < line_end:
                continue
            first, line_end = segment.line_bounds(index)
            raw = segment.line(first, line_end)
            where = segment.position(first)
            event = self._parse(raw, where)
            cid = event.get("correlation_id") if event is not None else None
            if event is None or type(cid) is not str:
                continue
            flags, duration = self._flags(raw, event)
            if flags:
                rows.append((cid, where, flags, duration))
        if rows:
            self.db.executemany("INSERT INTO facts VALUES (?, ?, ?, ?)", rows)

    def _parse(self, raw: bytes, where: int) -> Event | None:
        """orjson first (fast); the reader's checks only to say why a line is unusable."""
        self.scanner.lines_parsed += 1
        try:
            event = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return self.problems.parse(raw, where)
        return event if type(event) is dict and "event_type" in event else (
            self.problems.parse(raw, where))

    def _flags(self, raw: bytes, event: Event) -> tuple[int, int | None]:
        c = self.criteria
        flags = 0
        duration: int | None = None
        if c.pattern is not None and c.pattern.search(raw) is not None:
            flags |= PATTERN
        if is_error(event):
            flags |= ERROR | ERRORISH
        if event.get("event_type") == FUNCTION_EXIT:
            flags |= EXIT
            if event.get("error"):
                flags |= ERRORISH
            recorded = event.get("duration_ns")
            if type(recorded) is int and _INT64[0] <= recorded <= _INT64[1]:
                duration = recorded
        if c.user_ids:
            if any(u in c.user_ids for u in context_user_ids(event)):
                flags |= USER
            if any(u in c.user_ids for u in argument_user_ids(event)):
                flags |= ROOT_USER
        if c.variants and any(v in c.variants for v in variants_of(event)):
            flags |= VARIANT
        if c.services and event.get("service") in c.services:
            flags |= SERVICE
        if c.functions and any(f in c.functions for f in function_names_of(event)):
            flags |= FUNCTION
        return flags, duration

    # -- deciding, request by request -------------------------------------------------

    def _decide(self, frames: Frames) -> int:
        """Fill ``kept``; returns how many requests it holds."""
        limit = self.criteria.limit
        facts = self._facts_by_root()
        pending = next(facts, None)
        batch: list[tuple[int, str, int]] = []
        sure = kept = 0
        for number, root, stamp in frames.roots():
            if limit is not None and sure >= limit:
                break
            partial = Partial()
            while pending is not None and pending[0] < number:
                pending = next(facts, None)  # facts of a call in no selectable request
            while pending is not None and pending[0] == number:
                partial.credit(pending[1], pending[2], bool(pending[3]))
                pending = next(facts, None)
            decision = self._decision(partial, stamp)
            if decision is False:
                continue
            batch.append((number, root, 0 if decision else 1))
            kept += 1
            if decision:
                sure += 1
            if len(batch) >= 1000:
                self.db.executemany("INSERT INTO kept VALUES (?, ?, ?)", batch)
                batch = []
        self.db.executemany("INSERT INTO kept VALUES (?, ?, ?)", batch)
        return kept

    def _facts_by_root(self) -> Iterator[tuple[int, int, int | None, int]]:
        """``(root id, flags, duration, own)`` of every candidate line, by root then position."""
        if not self.regexes:
            return iter(())
        return iter(self.db.execute(
            "SELECT f.root, c.flags, c.duration, f.id = f.root FROM facts AS c "
            "JOIN frames AS f ON f.cid = c.cid WHERE f.root IS NOT NULL ORDER BY f.root, c.pos"))

    def _decision(self, partial: Partial, stamp: int | None) -> bool | None:
        """In (True), out (False), or to be judged on all its lines (None)."""
        c = self.criteria
        if ((c.pattern is not None and not partial.pattern)
                or (c.error and not partial.error)
                or (c.user_ids and not partial.user)
                or (c.variants and not partial.variant)
                or (c.services and not partial.service)
                or (c.functions and not partial.function)):
            return False
        undecided = False
        if c.timed:
            if stamp is None:
                undecided = True
            elif not in_window(c, stamp):
                return False
        if c.min_duration_ns is not None:
            if partial.exit_seen and partial.exit_duration is not None:
                if partial.exit_duration < c.min_duration_ns:
                    return False
            else:
                undecided = True
        if c.status is not None:
            if not partial.errorish:
                if c.status == "error":
                    return False
            else:
                undecided = True
        return None if undecided else True

    # -- collecting the lines of the requests kept ------------------------------------

    def _collect(self) -> None:
        owners = "SELECT f.cid, k.cid FROM frames AS f JOIN kept AS k ON k.id = f.root"
        count: int = self.db.execute(
            f"SELECT COUNT(*) FROM ({owners})").fetchone()[0]  # noqa: S608 - constant text
        spool = self.spool
        matcher: Matcher
        find: Callable[[str], str | None]
        if count <= self.store.budget.matched_frames:
            owner: dict[str, str] = dict(self.db.execute(owners))
            matcher = (KeyedMatcher(owner) if len(owner) <= REGEX_LIMIT // 2
                       else CidSetMatcher({id_bytes(frame) for frame in owner}))
            find = owner.get
        else:
            looked_up = StoreMatcher(self.store)
            matcher, find = looked_up, looked_up.owner_of

        def on_hit(hit: Hit) -> None:
            cid = hit.event.get("correlation_id")
            if isinstance(cid, str):
                root = find(cid)
                if root is not None:
                    spool.add(root, hit.position, hit.raw)

        self.scanner.run(matcher, on_hit)


class StoreMatcher:
    """Lines whose ``correlation_id`` is a call of a kept request, looked up in the store.

    For selections too large to hold their call ids in memory: each block's
    ids are looked up in one query per few hundred, and the answer is kept
    until the next block (the scan hands the block's hits over before moving on).
    """

    parallel = False
    """It reads the store, which a forked scanner must not touch."""

    def __init__(self, store: Store) -> None:
        self._db = store.db
        self._owners: dict[str, str] = {}

    def positions(self, data: bytes, start: int, end: int) -> list[int]:
        """Where a kept call's ``correlation_id`` sits."""
        found = [(match.start(), id_text(match.group(1)))
                 for match in CORRELATION.finditer(data, start, end)]
        wanted = sorted({text for _index, text in found if text is not None})
        owners: dict[str, str] = {}
        for first in range(0, len(wanted), _LOOKUP_CHUNK):
            chunk = wanted[first : first + _LOOKUP_CHUNK]
            query = _OWNERS_OF % ",".join("?" * len(chunk))
            owners.update(self._db.execute(query, chunk))
        self._owners = owners
        return [index for index, text in found if text is not None and text in owners]

    def owner_of(self, cid: str) -> str | None:
        """The root of a call met in the current block."""
        return self._owners.get(cid)


def _candidate_regexes(criteria: Criteria) -> list[re.Pattern[bytes]]:
    """One regular expression per filter, finding every line that filter may need."""
    c = criteria
    found: list[re.Pattern[bytes]] = []
    if c.pattern is not None:
        found.append(c.pattern)
    if c.error or c.status is not None:
        found.append(ERROR_EVENT)
    if c.status is not None:
        found.append(RAISED)
    if c.min_duration_ns is not None:
        found.append(EXIT_EVENT)
    for values, template in (
        (c.user_ids, rb'user_id"[ \t]*:[ \t]*"?%s'),
        (c.variants, rb'variant"[ \t]*:[ \t]*"%s"'),
        (c.services, rb'"service"[ \t]*:[ \t]*"%s"'),
    ):
        forms = sorted({form for value in values for form in id_forms(value)})
        if forms:
            found.append(re.compile(template % _alternation(forms)))
    if c.functions:
        suffixes = sorted({form for name in c.functions for part in _suffixes(name)
                           for form in id_forms(part)})
        found.append(re.compile(
            rb'"(?:function_name|qualname)"[ \t]*:[ \t]*"%s"' % _alternation(suffixes)))
    return found


def _alternation(forms: list[bytes]) -> bytes:
    return b"(?:" + b"|".join(re.escape(form) for form in forms) + b")"


def _suffixes(name: str) -> list[str]:
    """``a.b:C.d`` may be recorded as qualname ``C.d`` or ``d``: every tail after a dot or colon."""
    tails = [name]
    for index, char in enumerate(name):
        if char in ".:":
            tails.append(name[index + 1 :])
    return [tail for tail in tails if tail]
