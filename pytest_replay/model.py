"""From a flat event stream to call trees: frames, roots and incidents.

A frame is one call, named by the ``correlation_id`` of its
``function_entry``. A root is a frame whose ``parent_correlation_id`` is
absent or names no frame in the file; each root becomes one replay. Orphans,
duplicate entries and parent cycles are reported as problems, never fatal.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pytest_replay.format.events import ERROR, FUNCTION_ENTRY, FUNCTION_EXIT, Event
from pytest_replay.format.reader import LineEvent, ReadResult, TraceProblem, read_trace


@dataclass(eq=False)
class Frame:
    """One recorded call and everything that happened directly inside it."""

    correlation_id: str
    entry: LineEvent
    parent: Frame | None = None
    exit: LineEvent | None = None
    children: list[Frame] = field(default_factory=list)
    events: list[LineEvent] = field(default_factory=list)
    """Events of this frame itself (not its children), entry and exit excluded."""

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
        return bool(self.exit is not None and self.exit.event.get("error"))

    def walk(self) -> Iterator[Frame]:
        """This frame and its descendants, depth first, in call order."""
        stack = [self]
        while stack:
            frame = stack.pop()
            yield frame
            stack.extend(reversed(frame.children))


@dataclass(eq=False)
class Root:
    """A request: the root frame plus the ordered events of its whole tree."""

    frame: Frame
    events: list[LineEvent]
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
        return any(item.event.get("event_type") == ERROR for item in self.events)

    @property
    def incident_error(self) -> LineEvent | None:
        """The error that ended the request, if it ended in one.

        Either the root exited by raising, or the recording stops at an error
        that no later exit shows was caught (the seed's incident).
        """
        errors = [item for item in self.events if item.event.get("event_type") == ERROR]
        if not errors:
            return None
        if self.frame.exit is not None:
            return errors[-1] if self.frame.raised else None
        last = errors[-1]
        caught = any(
            item.event.get("event_type") == FUNCTION_EXIT
            and not item.event.get("error")
            and item.line > last.line
            for item in self.events
        )
        return None if caught else last

    @property
    def is_incident(self) -> bool:
        """Whether this request ended in an error (replay expects it to be fixed)."""
        return self.incident_error is not None

    @property
    def timestamp_ns(self) -> int | None:
        """When the request started, for freezing time at replay."""
        value = self.frame.entry.event.get("timestamp_ns")
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
    return build_trace(read_trace(path))


def build_trace(result: ReadResult) -> Trace:
    """Turn read events into frames and roots, reporting what does not fit."""
    builder = _Builder(result.path, list(result.problems))
    return builder.build(result.events)


class _Builder:
    def __init__(self, path: str, problems: list[TraceProblem]) -> None:
        self.path = path
        self.problems = problems
        self.frames: dict[str, Frame] = {}

    def warn(self, line: int, message: str, field_name: str | None = None) -> None:
        self.problems.append(
            TraceProblem(self.path, line, message, field=field_name, severity="warning")
        )

    def build(self, events: list[LineEvent]) -> Trace:
        self.collect_frames(events)
        self.link_parents()
        roots_frames = [frame for frame in self.frames.values() if frame.parent is None]
        self.report_cycles(roots_frames)
        orphans = self.attach_events(events)
        roots = [self.make_root(frame) for frame in roots_frames]
        roots.sort(key=lambda root: root.line)
        return Trace(self.path, roots, self.frames, orphans, self.problems)

    def collect_frames(self, events: list[LineEvent]) -> None:
        for item in events:
            event = item.event
            if event.get("event_type") != FUNCTION_ENTRY:
                continue
            cid = event.get("correlation_id")
            if not cid:
                self.warn(item.line, "function_entry without an id (ignored)", "correlation_id")
                continue
            if cid in self.frames:
                first = self.frames[cid].entry.line
                self.warn(item.line, f"duplicate entry for {cid!r} (first at line {first}; "
                          "this one is ignored)", "correlation_id")
                continue
            self.frames[cid] = Frame(cid, item)

    def link_parents(self) -> None:
        for frame in self.frames.values():
            parent_id = frame.entry.event.get("parent_correlation_id")
            if parent_id and parent_id != frame.correlation_id and parent_id in self.frames:
                frame.parent = self.frames[parent_id]
            elif parent_id == frame.correlation_id:
                self.warn(frame.entry.line, "frame names itself as parent (treated as a root)",
                          "parent_correlation_id")
        for frame in self.frames.values():
            if frame.parent is not None:
                frame.parent.children.append(frame)
        for frame in self.frames.values():
            frame.children.sort(key=lambda child: child.entry.line)

    def report_cycles(self, roots: list[Frame]) -> None:
        reachable: set[str] = set()
        for root in roots:
            reachable.update(frame.correlation_id for frame in root.walk())
        for cid, frame in self.frames.items():
            if cid not in reachable:
                self.warn(frame.entry.line, f"frame {cid!r} is part of a parent cycle "
                          "(not replayed)", "parent_correlation_id")

    def attach_events(self, events: list[LineEvent]) -> list[LineEvent]:
        orphans: list[LineEvent] = []
        for item in events:
            event = item.event
            kind = event.get("event_type")
            cid = event.get("correlation_id")
            frame = self.frames.get(cid) if isinstance(cid, str) else None
            if frame is None:
                orphans.append(item)
                continue
            if kind == FUNCTION_ENTRY:
                continue
            if kind == FUNCTION_EXIT:
                if frame.exit is None:
                    frame.exit = item
                else:
                    self.warn(item.line, f"second exit for {cid!r} (ignored)", "correlation_id")
                continue
            frame.events.append(item)
        for item in orphans:
            self.warn(item.line, f"event belongs to no recorded call "
                      f"({item.event.get('correlation_id')!r})", "correlation_id")
        return orphans

    def make_root(self, frame: Frame) -> Root:
        ordered: list[LineEvent] = []
        for member in frame.walk():
            ordered.append(member.entry)
            ordered.extend(member.events)
            if member.exit is not None:
                ordered.append(member.exit)
        ordered.sort(key=lambda item: item.line)
        return Root(frame, _time_ordered(ordered), self.path)


def _time_ordered(events: list[LineEvent]) -> list[LineEvent]:
    """Order by timestamp when every event has one (merged logs), else by line."""
    stamps = [item.event.get("timestamp_ns") for item in events]
    if all(isinstance(stamp, int) for stamp in stamps):
        return sorted(events, key=lambda item: (item.event["timestamp_ns"], item.line))
    return events


def events_of(roots: Iterable[Root]) -> Iterator[Event]:
    """All events of the given roots, in order (for writers and exporters)."""
    for root in roots:
        for item in root.events:
            yield item.event
