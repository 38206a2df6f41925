"""The call graph of whole logs, read from the ``function_entry`` lines only.

Filters that are not ids (``--error``, ``--since``, ``--user-id``...) must
know, for any line, which request it belongs to. That needs every frame's
parent: one pass finds the entry lines with a regular expression over large
blocks, parses those lines only (orjson parses a line faster than three
regular expressions pick fields out of it, and exactly), and keeps
``correlation_id -> parent_correlation_id``; then every frame is pointed
straight at its root. Memory grows with the number of calls in the logs,
not with their size in bytes.

The same pass checks every line's shape cheaply (one ``"event_type"`` per
line) and counts the lines that are not events.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import accumulate
from typing import Final, final

import orjson

from pytest_replay.extract.problems import Problems
from pytest_replay.extract.scan import Scanner
from pytest_replay.extract.segments import BOM, Segment, iter_segments, position
from pytest_replay.format.events import FUNCTION_ENTRY

_ENTRY_TEXT: Final = b'"function_entry"'
_EVENT_KEY: Final = b'"event_type"'


@final
class RootInfo:
    """A request's root: its id, where its entry is, and when it started."""

    __slots__ = ("key", "position", "stamp")

    def __init__(self, key: str, position: int, stamp: int | None) -> None:
        self.key = key
        self.position = position
        self.stamp = stamp


class Graph:
    """Frames of the logs and the root of each.

    Logs are mostly in time order, so a call's parent is usually known when
    the call is met: the call then points at its root's :class:`RootInfo`
    at once (one object shared by the whole request, no string kept per
    parent). Calls met before their parent keep the parent's id until
    :meth:`resolve`.
    """

    def __init__(self) -> None:
        self.top: dict[str, RootInfo] = {}
        """Entries without a parent."""
        self.up: dict[str, RootInfo | str] = {}
        """Entries with a parent: their root, or (until resolved) their parent's id."""
        self.early: dict[str, RootInfo] = {}
        """Entries met before any entry of their parent (they may turn out to be roots)."""
        self.detached: dict[str, RootInfo] = {}
        """Roots whose caller is in no log given (another service called them)."""

    def __len__(self) -> int:
        return len(self.top) + len(self.up)

    def root_of(self, cid: str) -> str | None:
        """The root of a frame, or None for an id that is no frame (orphan events)."""
        if cid in self.top:
            return cid
        found = self.up.get(cid)
        return found.key if type(found) is RootInfo else None

    def info(self, root: str) -> RootInfo | None:
        """Where and when a root starts."""
        return self.top.get(root) or self.detached.get(root)

    def roots(self) -> list[RootInfo]:
        """Every root, in log order."""
        every = list(self.top.values()) + list(self.detached.values())
        every.sort(key=lambda root: root.position)
        return every

    def frames_of(self, roots: set[str]) -> set[str]:
        """Every frame id of the given requests."""
        frames = set(roots)
        frames.update(cid for cid, found in self.up.items()
                      if type(found) is RootInfo and found.key in roots)
        return frames

    def add(self, cid: str, parent: str | None, where: int, stamp: int | None) -> None:
        """Record one entry (the first entry of an id wins, as in the model)."""
        up, top = self.up, self.top
        if cid in top or cid in up:
            return
        if parent is None or parent == cid:
            top[cid] = RootInfo(cid, where, stamp)
            return
        found = top.get(parent) or up.get(parent)
        if type(found) is RootInfo:
            up[cid] = found
            return
        up[cid] = parent
        if found is None:
            self.early[cid] = RootInfo(cid, where, stamp)

    def resolve(self) -> None:
        """Point the calls met before their parent at their root; find detached roots.

        A parent cycle roots at the frame that closes it.
        """
        up, top = self.up, self.top
        for cid in [cid for cid, found in up.items() if type(found) is str]:
            if type(up[cid]) is RootInfo:
                continue
            chain = [cid]
            seen = {cid}
            target = up[cid]
            while True:
                assert type(target) is str
                if target in top:
                    info = top[target]
                    break
                following = up.get(target)
                if following is None:  # the parent is no frame here: the chain's end is a root
                    info = self.early.get(chain[-1]) or RootInfo(chain[-1], 0, None)
                    self.detached[info.key] = info
                    break
                if type(following) is RootInfo:
                    info = following
                    break
                if following == target or target in seen:
                    info = self.early.get(target) or RootInfo(target, 0, None)
                    break
                chain.append(target)
                seen.add(target)
                target = following
            for item in chain:
                up[item] = info
            if info.key in up:
                up[info.key] = info
        self.early = {}


def build(scanner: Scanner, problems: Problems) -> Graph:
    """Read every entry line of every source into a resolved :class:`Graph`."""
    graph = Graph()
    scanner.passes += 1
    for index, source in enumerate(scanner.sources):
        reached = 0
        try:
            for segment in iter_segments(source, index, on_long_line=_long(problems)):
                scanner.bytes_read += segment.end - segment.start
                reached = segment.base + segment.end
                _segment(segment, graph, problems)
        except scanner.errors as exc:
            problems.add("corrupt", position(index, reached),
                         f"cannot read past this point: {type(exc).__name__}: {exc}")
    scanner.log_bytes = max(scanner.log_bytes, scanner.bytes_read)
    graph.resolve()
    return graph


def _long(problems: Problems) -> Callable[[int], None]:
    def report(where: int) -> None:
        problems.add("too_long", where)

    return report


def _segment(segment: Segment, graph: Graph, problems: Problems) -> None:
    """Check every line's shape, then parse the entry lines in one orjson call."""
    data, start, end = segment.data, segment.start, segment.end
    lines = data[start:end].split(b"\n")
    if lines and not lines[-1]:
        lines.pop()  # the block ends with a newline
    offsets: list[int] | None = None
    closed = data.count(b"}\n", start, end) + (data[end - 1] == 0x7D)
    if closed != len(lines) or data.count(_EVENT_KEY, start, end) != len(lines):
        # Something is off: one line in this block is no event (or two are on one line).
        offsets = _offsets(lines, segment.position(start))
        for index, line in enumerate(lines):
            raw = line.rstrip(b"\r").removeprefix(BOM)
            if raw.strip() and (raw.count(_EVENT_KEY) != 1 or not raw.startswith(b"{")
                                or not raw.endswith(b"}")):
                problems.parse(raw, offsets[index] + index)
    picked = [index for index, line in enumerate(lines) if _ENTRY_TEXT in line]
    if not picked:
        return
    if offsets is None:
        offsets = _offsets(lines, segment.position(start))
    try:
        events = orjson.loads(b"[" + b",".join([lines[index] for index in picked]) + b"]")
    except orjson.JSONDecodeError:
        events = None
    if type(events) is not list or len(events) != len(picked):
        # Some line is broken (or holds two values): parse them one by one.
        events = [_one(lines[index], offsets[index] + index, problems) for index in picked]
    add = graph.add
    for index, event in zip(picked, events):  # noqa: B905 - same length by construction
        if type(event) is not dict or event.get("event_type") != FUNCTION_ENTRY:
            continue
        cid = event.get("correlation_id")
        if type(cid) is not str:
            continue
        parent, stamp = event.get("parent_correlation_id"), event.get("timestamp_ns")
        add(cid, parent if type(parent) is str else None, offsets[index] + index,
            stamp if type(stamp) is int else None)


def _offsets(lines: list[bytes], first: int) -> list[int]:
    """Positions of the lines minus their index (add the index: one newline after each)."""
    return list(accumulate(map(len, lines), initial=first))


def _one(raw: bytes, where: int, problems: Problems) -> object:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return problems.parse(raw.rstrip(b"\r").removeprefix(BOM), where)
