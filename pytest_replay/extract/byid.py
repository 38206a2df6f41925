"""Select requests by correlation id or trace id, scanning for the ids only.

1. Find: one ``bytes.find`` pass for the ids given (as JSON strings). Lines
   that mention them tell which frames they name (and, for a trace, which
   frames carry it); the lines of those frames are kept, so the next pass
   need not look for them again.
2. Climb: from each frame to its root through ``parent_correlation_id``.
   An entry not seen yet is looked for in one more pass; a parent that no
   log holds makes its child the root (another service called it).
3. Collect: one pass for every id of the chosen trees, learning children as
   their ``function_entry`` lines go by. A child learnt at some point may
   have lines *before* that point (logs merged out of order, a child
   written before its parent): those parts of the logs are scanned again
   for the ids learnt late, until nothing new turns up. Children are learnt
   by :class:`TreeRule` in whichever process scans (a large pass is cut in
   two, see :mod:`pytest_replay.extract.parallel`); a child learnt in one
   half was looked for in the rest of that half only, so the other half
   counts as unread for it.

Memory holds the ids of the chosen trees only; lines go to the spool (on
disk).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pytest_replay.extract.criteria import Criteria
from pytest_replay.extract.idmatch import KeyedMatcher, Matcher, SubstringMatcher
from pytest_replay.extract.scan import Hit, Scanner
from pytest_replay.extract.spool import Spool
from pytest_replay.extract.store import Budget
from pytest_replay.format.events import FUNCTION_ENTRY, Event

SUBSTRING_NEEDLES = 4
"""Up to this many ids, the first pass is plain ``bytes.find``."""


@dataclass
class Entry:
    """A ``function_entry`` seen: who called it, and where it is."""

    parent: str | None
    position: int


class ById:
    """One id-driven selection over a set of sources."""

    def __init__(self, scanner: Scanner, spool: Spool, criteria: Criteria,
                 budget: Budget | None = None) -> None:
        self.scanner = scanner
        self.spool = spool
        self.criteria = criteria
        self.entries: dict[str, Entry] = {}
        self.searched: set[str] = set()
        self.member: dict[str, str] = {}
        self.found_ids: set[str] = set()
        """Ids of the command line that some line mentions (to say which did not match)."""
        self._late: dict[str, int] = {}
        self._wanted: set[str] = set()
        self._kept: list[tuple[int, bytes, str]] | None = []
        self._kept_bytes = 0
        self._kept_limit = (budget or Budget()).kept_bytes
        """Past this many bytes, the lines of the given ids are looked for again instead."""

    def run(self) -> list[str]:
        """Root ids of the requests found, in log order; their lines are in the spool."""
        starts = self._find()
        if not starts:
            return []
        roots = self._climb(starts)
        self._collect(roots)
        return sorted((root for root in roots if self.spool.holds(root)), key=self._order)

    def _order(self, root: str) -> int:
        entry = self.entries.get(root)
        return entry.position if entry is not None else self.spool.first_position(root)

    def _note(self, event: Event, where: int) -> None:
        if event.get("event_type") != FUNCTION_ENTRY:
            return
        cid = event.get("correlation_id")
        if isinstance(cid, str) and cid not in self.entries:
            parent = event.get("parent_correlation_id")
            self.entries[cid] = Entry(parent if isinstance(parent, str) else None, where)

    def _find(self) -> set[str]:
        by_cid = bool(self.criteria.correlation_ids)
        wanted = self._wanted = set(self.criteria.correlation_ids or self.criteria.trace_ids)
        # Trace ids sit under their own key, which the keyed matcher does not read.
        matcher: Matcher = (SubstringMatcher(wanted)
                            if len(wanted) <= SUBSTRING_NEEDLES or not by_cid
                            else KeyedMatcher(wanted))
        starts: set[str] = set()

        def on_hit(hit: Hit) -> None:
            event = hit.event
            self._note(event, hit.position)
            cid = event.get("correlation_id")
            if not isinstance(cid, str):
                return
            if cid in wanted:
                starts.add(cid)
                self.found_ids.add(cid)
                self._keep(hit, cid)
            elif not by_cid and event.get("trace_id") in wanted:
                starts.add(cid)
                self.found_ids.add(str(event["trace_id"]))

        self.scanner.run(matcher, on_hit)
        if by_cid:
            self.searched.update(wanted)  # every line naming them has been read
        return starts

    def _keep(self, hit: Hit, cid: str) -> None:
        kept = self._kept
        if kept is not None:
            kept.append((hit.position, hit.raw, cid))
            self._kept_bytes += len(hit.raw) + 100
            if self._kept_bytes > self._kept_limit:
                self._kept = None

    def _climb(self, starts: Iterable[str]) -> set[str]:
        while True:
            missing: set[str] = set()
            roots = {self._root_of(start, missing) for start in starts}
            if not missing:
                return {root for root in roots if root is not None}
            matcher = KeyedMatcher(missing)

            def on_hit(hit: Hit) -> None:
                self._note(hit.event, hit.position)

            self.scanner.run(matcher, on_hit)
            self.searched.update(missing)

    def _root_of(self, frame: str, missing: set[str]) -> str | None:
        if frame not in self.entries:
            if frame in self.searched:
                return frame  # events without a function_entry: a request of their own
            missing.add(frame)
            return None
        chain = {frame}
        while True:
            parent = self.entries[frame].parent
            if parent is None or parent in chain:
                return frame
            if parent in self.entries:
                frame = parent
                chain.add(frame)
                continue
            if parent in self.searched:
                return frame  # the caller is in no log given: this frame is the root
            missing.add(parent)
            return None

    def _collect(self, roots: set[str]) -> None:
        member = self.member
        member.update((root, root) for root in roots)
        for cid in list(self.entries):
            self._place(cid)
        # Every line naming a given id was read by the first pass: those are kept.
        covered = self._wanted if self._kept is not None else set()
        for where, raw, cid in self._kept or ():
            root = member.get(cid)
            if root is not None:
                self.spool.add(root, where, raw)
        matcher = KeyedMatcher(cid for cid in member if cid not in covered)
        self._late = {}
        if len(matcher):
            self.scanner.run(matcher, self._on_tree_line, learn=TreeRule(set(member), matcher))
        needed = self._unread()
        while needed:
            spans = [span for spans in needed.values() for span in spans]
            lo = min(span[0] for span in spans)
            ends = [span[1] for span in spans]
            hi = None if None in ends else max(end for end in ends if end is not None)
            matcher = KeyedMatcher(needed)
            self._late = {}
            self.scanner.run(matcher, self._on_tree_line, lo, hi,
                             learn=TreeRule(set(member), matcher))
            needed = self._unread()

    def _unread(self) -> dict[str, list[tuple[int, int | None]]]:
        """Where the ids learnt in the last pass may still have lines nobody read.

        An id learnt at position p was scanned for from p to the end of the
        region (of the pass, or of its half) that p lies in: what lies before
        p, and after that end, is unread.
        """
        needed: dict[str, list[tuple[int, int | None]]] = {}
        regions = self.scanner.last_regions
        for cid, where in self._late.items():
            end = next((hi for lo, hi in regions if lo <= where and (hi is None or where < hi)),
                       regions[-1][1])
            spans: list[tuple[int, int | None]] = []
            if where > 0:
                spans.append((0, where))
            if end is not None:
                spans.append((end, None))
            if spans:
                needed[cid] = spans
        return needed

    def _place(self, cid: str) -> str | None:
        """The selected root above ``cid`` among the entries seen, memoised in ``member``."""
        chain: list[str] = []
        frame: str | None = cid
        root: str | None = None
        while frame is not None:
            known = self.member.get(frame)
            if known is not None:
                root = known
                break
            if frame in chain:
                break
            chain.append(frame)
            entry = self.entries.get(frame)
            frame = entry.parent if entry is not None else None
        if root is not None:
            for item in chain:
                self.member[item] = root
        return root

    def _on_tree_line(self, hit: Hit) -> None:
        event = hit.event
        cid = event.get("correlation_id")
        if not isinstance(cid, str):
            return
        root = self.member.get(cid)
        if root is None and event.get("event_type") == FUNCTION_ENTRY:
            parent = event.get("parent_correlation_id")
            parent_root = self.member.get(parent) if isinstance(parent, str) else None
            if parent_root is not None and parent != cid:
                self.entries.setdefault(cid, Entry(str(parent), hit.position))
                self.member[cid] = root = parent_root
                self._late[cid] = hit.position
        if root is not None:
            self.spool.add(root, hit.position, hit.raw)


class TreeRule:
    """Learns the calls of the chosen trees as their entries go by, in the scanning process.

    The same rule as :meth:`ById._on_tree_line`, on a copy of what is known
    (a forked scanner cannot share this process's state): an entry whose
    parent is known makes its call known, and the matcher looks for it.
    """

    __slots__ = ("known", "matcher")

    def __init__(self, known: set[str], matcher: KeyedMatcher) -> None:
        self.known = known
        self.matcher = matcher

    def __call__(self, hit: Hit) -> bool:
        event = hit.event
        if event.get("event_type") != FUNCTION_ENTRY:
            return False
        cid, parent = event.get("correlation_id"), event.get("parent_correlation_id")
        if (not isinstance(cid, str) or not isinstance(parent, str) or parent == cid
                or cid in self.known or parent not in self.known):
            return False
        self.known.add(cid)
        return self.matcher.add([cid])
