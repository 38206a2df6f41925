"""From a flat event stream to call trees: frames, roots and incidents.

A frame is one call, named by the ``correlation_id`` of its
``function_entry``. A root is a frame whose ``parent_correlation_id`` is
absent, names itself, or names no frame in the file; each root becomes one
replay. Orphans, duplicate entries and parent cycles are reported as
warnings, never fatal. The rules are written down in docs/trace-format.md.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import compress, islice, repeat
from operator import attrgetter, eq, le
from pathlib import Path
from typing import Any, Final

from pytest_replay.format.events import ERROR, FUNCTION_ENTRY, FUNCTION_EXIT, Event
from pytest_replay.format.native import native_tree
from pytest_replay.format.reader import (
    LineEvent,
    ReadResult,
    TraceProblem,
    paused_gc,
    read_trace,
)

_link = weakref.ref


class Frame:
    """One recorded call and everything that happened directly inside it.

    A frame holds its children; its ``parent`` is a weak reference, so a
    trace holds no reference cycle and is freed the moment it is dropped
    (not at the next full garbage collection, which would walk it all). The
    parent lives as long as its tree's root, or the trace, is kept.
    """

    __slots__ = (
        "__weakref__",
        "_parent",
        "children",
        "correlation_id",
        "entry",
        "events",
        "exit",
    )

    def __init__(self, correlation_id: str, entry: LineEvent, parent: Frame | None = None,
                 exit: LineEvent | None = None, children: list[Frame] | None = None,
                 events: list[LineEvent] | None = None) -> None:
        self.correlation_id = correlation_id
        self.entry = entry
        self._parent: weakref.ref[Frame] | None = None if parent is None else _link(parent)
        self.exit = exit
        self.children: list[Frame] = [] if children is None else children
        self.events: list[LineEvent] = [] if events is None else events
        """Events of this frame itself (not its children), entry and exit excluded."""

    def __repr__(self) -> str:
        return (f"Frame({self.correlation_id!r}, {self.function_name!r}, "
                f"children={len(self.children)}, events={len(self.events)})")

    @property
    def parent(self) -> Frame | None:
        """The calling frame (None for a root, or once the trace that held it is gone)."""
        link = self._parent
        return None if link is None else link()

    @parent.setter
    def parent(self, frame: Frame | None) -> None:
        self._parent = None if frame is None else _link(frame)

    @property
    def function_name(self) -> str:
        """The recorded function name (``qualname`` when ``function_name`` is absent)."""
        event = self.entry.event
        return str(event.get("function_name") or event.get("qualname") or "?")

    @property
    def path(self) -> list[str]:
        """Function names from the root down to this frame."""
        names: list[str] = []
        frame: Frame | None = self
        while frame is not None:
            names.append(frame.function_name)
            frame = frame.parent
        return names[::-1]

    @property
    def raised(self) -> bool:
        """Whether the recorded call ended by raising."""
        return bool(self.exit is not None and self.exit.error)

    def walk(self) -> Iterator[Frame]:
        """This frame and its descendants, depth first, in call order."""
        stack = [self]
        while stack:
            frame = stack.pop()
            yield frame
            stack.extend(reversed(frame.children))


@dataclass(eq=False, slots=True)
class Root:
    """A request: the root frame plus the ordered events of its whole tree."""

    frame: Frame
    events: list[LineEvent]
    """Every event of the tree: by ``timestamp_ns`` when all have one, else by line."""
    path: str

    @property
    def correlation_id(self) -> str:
        """The root frame's id (the request id under ``request_scope``)."""
        return self.frame.correlation_id

    @property
    def name(self) -> str:
        """The test item name: ``function[correlation_id]``."""
        return f"{self.frame.function_name}[{self.correlation_id}]"

    @property
    def line(self) -> int:
        """The trace line of the root's ``function_entry``."""
        return self.frame.entry.line

    @property
    def complete(self) -> bool:
        """Whether the root's exit was recorded."""
        return self.frame.exit is not None

    @property
    def has_error(self) -> bool:
        """Whether any error event was recorded anywhere in the request."""
        return any(item.kind == ERROR for item in self.events)

    @property
    def incident_error(self) -> LineEvent | None:
        """The error that ended the request, if it ended in one.

        Either the root exited by raising (its last error event, or the exit
        itself when no error event was recorded), or the root has no exit and
        the recording stops at an error: after the last error event there is
        nothing but exits that raised too (the seed's incident). Any other
        event after it means the request went on, so the error was caught.
        """
        events = self.events
        last = -1
        for index in range(len(events) - 1, -1, -1):
            if events[index].kind == ERROR:
                last = index
                break
        root_exit = self.frame.exit
        if root_exit is not None:
            if not self.frame.raised:
                return None
            return events[last] if last >= 0 else root_exit
        if last < 0:
            return None
        for item in events[last + 1 :]:
            if item.kind != FUNCTION_EXIT or not item.error:
                return None
        return events[last]

    @property
    def is_incident(self) -> bool:
        """Whether this request ended in an error (replay expects it to be fixed)."""
        return self.incident_error is not None

    @property
    def timestamp_ns(self) -> int | None:
        """When the request started, for freezing time at replay."""
        value = self.frame.entry.timestamp_ns
        return value if isinstance(value, int) else None


@dataclass
class Trace:
    """A whole trace file as call trees, with what could not be placed."""

    path: str
    roots: list[Root]
    frames: dict[str, Frame]
    orphans: list[LineEvent]
    problems: list[TraceProblem]

    @property
    def incidents(self) -> list[Root]:
        """Roots whose request ended in an error."""
        return [root for root in self.roots if root.is_incident]


def load_trace(path: str | Path) -> Trace:
    """Read and model one trace file."""
    with paused_gc():
        return build_trace(read_trace(path))


def build_trace(result: ReadResult) -> Trace:
    """Turn read events into frames and roots, reporting what does not fit."""
    with paused_gc():
        return _Builder(result.path, list(result.problems)).build(result.events)


_KIND: Final = attrgetter("kind")
_ID: Final = attrgetter("correlation_id")
_PARENT: Final = attrgetter("parent_id")
_ENTRY: Final = attrgetter("entry")
_STAMP: Final = attrgetter("timestamp_ns")


class _Builder:
    """One pass to find frames, one to link them, one to place every event.

    The model reads only the fields the reader copied out of each event
    (type, ids, timestamp, error flag), so building it decodes nothing.
    """

    def __init__(self, path: str, problems: list[TraceProblem]) -> None:
        self.path = path
        self.problems = problems
        self.frames: dict[str, Frame] = {}

    def warn(self, line: int, message: str, field_name: str | None = None) -> None:
        self.problems.append(
            TraceProblem(self.path, line, message, field=field_name, severity="warning")
        )

    def build(self, events: list[LineEvent]) -> Trace:
        made = None if _NATIVE_TREE is None else _NATIVE_TREE(
            events, FUNCTION_ENTRY, FUNCTION_EXIT, self.path)
        if made is not None:  # the C builder: the same result for a trace with no surprise
            self.frames, roots, orphans, ordered = made
            self.report_orphans(orphans)
            if not (_in_time_order(events) if ordered is None else ordered):
                for root in roots:
                    root.events = _time_ordered(root.events)
            return Trace(self.path, roots, self.frames, orphans, self.problems)
        self.collect_frames(events)
        root_frames = self.link_parents()
        placement, per_root = self.find_roots(root_frames)
        orphans = self.place_events(events, placement)
        ordered = _in_time_order(events)
        roots = [
            Root(frame, tree_events if ordered else _time_ordered(tree_events), self.path)
            for frame, tree_events in zip(root_frames, per_root)  # noqa: B905 - same length
        ]
        return Trace(self.path, roots, self.frames, orphans, self.problems)

    def collect_frames(self, events: list[LineEvent]) -> None:
        entries = list(compress(events, map(eq, map(_KIND, events), repeat(FUNCTION_ENTRY))))
        ids: list[Any] = list(map(_ID, entries))
        if all(ids) and len(set(ids)) == len(ids):  # the usual case: nothing to report
            self.frames = dict(zip(ids, map(Frame, ids, entries)))  # noqa: B905 - same length
            return
        frames = self.frames
        for cid, item in zip(ids, entries):  # noqa: B905 - same length
            if not cid:
                self.warn(item.line, "function_entry without an id (ignored)", "correlation_id")
                continue
            first = frames.get(cid)
            if first is not None:
                self.warn(item.line, f"duplicate entry for {cid!r} (first at line "
                          f"{first.entry.line}; this one is ignored)", "correlation_id")
                continue
            frames[cid] = Frame(cid, item)

    def link_parents(self) -> list[Frame]:
        """Attach each frame to its parent; return the roots in line order."""
        frames = self.frames
        roots: list[Frame] = []
        found = map(frames.get, map(_PARENT, map(_ENTRY, frames.values())))
        for frame, parent in zip(frames.values(), found):  # noqa: B905 - same length
            if parent is None:
                roots.append(frame)
            elif parent is frame:
                self.warn(frame.entry.line, f"frame {frame.correlation_id!r} names itself as "
                          "parent (treated as a root)", "parent_correlation_id")
                roots.append(frame)
            else:
                frame._parent = _link(parent)
                parent.children.append(frame)  # frames are in line order, so children are too
        return roots

    def find_roots(
        self, roots: list[Frame]
    ) -> tuple[dict[str, tuple[Frame, list[LineEvent] | None]], list[list[LineEvent]]]:
        """Map every frame id to its frame and its root's event list (one list per root).

        Frames no root reaches sit in or under a parent cycle: reported, and
        their events go nowhere (None).
        """
        placement: dict[str, tuple[Frame, list[LineEvent] | None]] = {}
        per_root: list[list[LineEvent]] = []
        for root in roots:
            tree_events: list[LineEvent] = []
            per_root.append(tree_events)
            placement[root.correlation_id] = (root, tree_events)
            if root.children:
                stack = root.children[:]
                while stack:
                    frame = stack.pop()
                    placement[frame.correlation_id] = (frame, tree_events)
                    stack += frame.children
        if len(placement) != len(self.frames):
            for cid, frame in self.frames.items():
                if cid not in placement:
                    placement[cid] = (frame, None)
                    self.warn(frame.entry.line, f"frame {cid!r} is in or under a parent cycle "
                              "(not replayed)", "parent_correlation_id")
        return placement, per_root

    def place_events(
        self, events: list[LineEvent], placement: dict[str, tuple[Frame, list[LineEvent] | None]]
    ) -> list[LineEvent]:
        """Give each event to its frame and its root's list; return the orphans."""
        orphans: list[LineEvent] = []
        ids: list[Any] = list(map(_ID, events))
        if not {*map(type, ids)} <= {str, type(None)}:  # events made by hand
            ids = [cid if type(cid) is str else None for cid in ids]
        for item, placed in zip(events, map(placement.get, ids)):  # noqa: B905 - same length
            if placed is None:
                orphans.append(item)
                continue
            frame, tree_events = placed
            kind = item.kind
            if kind == FUNCTION_ENTRY:
                if frame.entry is not item:
                    continue  # a duplicate entry, already reported
            elif kind == FUNCTION_EXIT:
                if frame.exit is not None:
                    self.warn(item.line, f"second exit for {item.correlation_id!r} (ignored)",
                              "correlation_id")
                    continue
                frame.exit = item
            else:
                frame.events.append(item)
            if tree_events is not None:
                tree_events.append(item)
        self.report_orphans(orphans)
        return orphans

    def report_orphans(self, orphans: list[LineEvent]) -> None:
        for item in orphans:
            cid = item.correlation_id
            why = "it has no correlation_id" if cid is None else f"no function_entry for {cid!r}"
            self.warn(item.line, f"event belongs to no recorded call ({why})", "correlation_id")


_NATIVE_TREE: Final = native_tree(Frame, Root)
"""``_Builder.build`` in C for traces with nothing to report but orphans, or None."""


def _in_time_order(events: list[LineEvent]) -> bool:
    """Whether the whole file is in time order, so every root is too (the usual case)."""
    stamps: list[Any] = list(map(_STAMP, events))
    try:
        return None not in stamps and all(map(le, stamps, islice(stamps, 1, None)))
    except TypeError:  # a timestamp that is no number, in events made by hand
        return False


def _time_ordered(events: list[LineEvent]) -> list[LineEvent]:
    """Order by timestamp when every event has one (merged logs), else keep line order."""
    stamps: list[Any] = list(map(_STAMP, events))
    if None in stamps or stamps == sorted(stamps):  # the reader let only int or null through
        return events
    return sorted(events, key=lambda item: (item.timestamp_ns, item.line))


def events_of(roots: Iterable[Root]) -> Iterator[Event]:
    """All events of the given roots, in order (for writers and exporters)."""
    for root in roots:
        for item in root.events:
            yield item.event
