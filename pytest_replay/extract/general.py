"""Select requests by filters that are not ids, reading only the lines each filter needs.

1. Graph: every frame's root (see :mod:`pytest_replay.extract.graph`).
2. Judge: each filter finds its candidate lines with one regular expression
   per block (error events, the user's pattern, ``"service":"shop"``...);
   those lines, and only those, are parsed and credited to their request. A
   request is then in, out, or undecided (its status, or a duration its
   root exit does not give): undecided ones are judged on all their lines.
3. Collect: one pass for the lines of the requests kept, into the spool.
   With ``--limit N`` collection stops at the request that makes N sure ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

import orjson

from pytest_replay.extract.criteria import Criteria
from pytest_replay.extract.facts import (
    function_names_of,
    in_window,
    is_error,
    user_ids_of,
    variants_of,
)
from pytest_replay.extract.graph import Graph, build
from pytest_replay.extract.idmatch import (
    REGEX_LIMIT,
    CidSetMatcher,
    KeyedMatcher,
    Matcher,
    id_bytes,
    id_forms,
)
from pytest_replay.extract.problems import Problems
from pytest_replay.extract.scan import Hit, Scanner
from pytest_replay.extract.segments import Segment, iter_segments
from pytest_replay.extract.spool import Spool
from pytest_replay.format.events import FUNCTION_EXIT, Event

ERROR_EVENT: Final = re.compile(rb'"event_type"[ \t]*:[ \t]*"error"')
RAISED: Final = re.compile(rb'"error"[ \t]*:[ \t]*[^fn0 \t]')
EXIT_EVENT: Final = re.compile(rb'"event_type"[ \t]*:[ \t]*"function_exit"')


@dataclass(slots=True)
class Partial:
    """What the candidate lines of one request showed so far."""

    pattern: bool = False
    error: bool = False
    errorish: bool = False
    user: bool = False
    variant: bool = False
    service: bool = False
    function: bool = False
    exit_seen: bool = False
    exit_duration: int | None = None


class General:
    """One filter-driven selection over a set of sources."""

    def __init__(self, scanner: Scanner, spool: Spool, criteria: Criteria,
                 problems: Problems) -> None:
        self.scanner = scanner
        self.spool = spool
        self.criteria = criteria
        self.problems = problems
        self.graph = Graph()
        self.partials: dict[str, Partial] = {}
        self.regexes = _candidate_regexes(criteria)
        self.undecided: set[str] = set()

    def run(self) -> list[str]:
        """Root ids of the requests to judge or keep, in log order, their lines in the spool."""
        self.graph = build(self.scanner, self.problems)
        if self.regexes:
            self._judge_lines()
        kept: list[str] = []
        sure = 0
        limit = self.criteria.limit
        for info in self.graph.roots():
            if limit is not None and sure >= limit:
                break
            root = info.key
            decision = self._decide(root, info.stamp)
            if decision is False:
                continue
            kept.append(root)
            if decision:
                sure += 1
            else:
                self.undecided.add(root)
        if kept:
            self._collect(kept)
        return kept

    # -- judging from candidate lines -------------------------------------------------

    def _judge_lines(self) -> None:
        self.scanner.passes += 1
        for index, source in enumerate(self.scanner.sources):
            try:
                for segment in iter_segments(source, index):
                    self.scanner.bytes_read += segment.end - segment.start
                    self._segment(segment)
            except self.scanner.errors:
                continue  # counted by the graph pass, which read the same bytes first

    def _segment(self, segment: Segment) -> None:
        data, start, end = segment.data, segment.start, segment.end
        hits = sorted({match.start() for regex in self.regexes
                       for match in regex.finditer(data, start, end)})
        line_end = -1
        for index in hits:
            if index < line_end:
                continue
            first, line_end = segment.line_bounds(index)
            raw = segment.line(first, line_end)
            event = self._parse(raw, segment.position(first))
            cid = event.get("correlation_id") if event is not None else None
            if event is None or type(cid) is not str:
                continue
            root = self.graph.root_of(cid)
            if root is None:
                continue  # events of no recorded call: only an id selects those
            partial = self.partials.get(root)
            if partial is None:
                partial = self.partials[root] = Partial()
            elif self._settled(partial):
                continue
            self._credit(partial, raw, event, root)

    def _parse(self, raw: bytes, where: int) -> Event | None:
        """orjson first (fast); the reader's checks only to say why a line is unusable."""
        self.scanner.lines_parsed += 1
        try:
            event = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return self.problems.parse(raw, where)
        return event if type(event) is dict and "event_type" in event else (
            self.problems.parse(raw, where))

    def _settled(self, partial: Partial) -> bool:
        """Whether more lines cannot change what this request's candidates say."""
        c = self.criteria
        return ((c.pattern is None or partial.pattern)
                and (not c.error or partial.error)
                and (not c.user_ids or partial.user)
                and (not c.variants or partial.variant)
                and (not c.services or partial.service)
                and (not c.functions or partial.function)
                and (c.status is None or partial.errorish)
                and (c.min_duration_ns is None or partial.exit_seen))

    def _credit(self, partial: Partial, raw: bytes, event: Event, root: str) -> None:
        c = self.criteria
        kind = event.get("event_type")
        if c.pattern is not None and not partial.pattern:
            partial.pattern = c.pattern.search(raw) is not None
        if is_error(event):
            partial.error = partial.errorish = True
        if kind == FUNCTION_EXIT:
            if event.get("error"):
                partial.errorish = True
            if event.get("correlation_id") == root and not partial.exit_seen:
                partial.exit_seen = True
                recorded = event.get("duration_ns")
                partial.exit_duration = recorded if isinstance(recorded, int) else None
        if c.user_ids and not partial.user:
            partial.user = any(u in c.user_ids for u in user_ids_of(event, root))
        if c.variants and not partial.variant:
            partial.variant = any(v in c.variants for v in variants_of(event))
        if c.services and not partial.service:
            partial.service = event.get("service") in c.services
        if c.functions and not partial.function:
            partial.function = any(f in c.functions for f in function_names_of(event))

    def _decide(self, root: str, stamp: int | None) -> bool | None:
        """In (True), out (False), or to be judged on all its lines (None)."""
        c = self.criteria
        partial = self.partials.get(root) or Partial()
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

    def _collect(self, roots: list[str]) -> None:
        wanted_roots = set(roots)
        frames = self.graph.frames_of(wanted_roots)
        matcher: Matcher = (KeyedMatcher(frames) if len(frames) <= REGEX_LIMIT // 2
                            else CidSetMatcher({id_bytes(frame) for frame in frames}))
        graph, spool = self.graph, self.spool

        def on_hit(hit: Hit) -> bool:
            cid = hit.event.get("correlation_id")
            if isinstance(cid, str):
                root = graph.root_of(cid)
                if root is not None and root in wanted_roots:
                    spool.add(root, hit.position, hit.raw)
            return False

        self.scanner.run(matcher, on_hit)


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
