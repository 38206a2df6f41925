"""Calls as time spans that nest properly, for the exporters and the HTML view.

Visual tools need what a trace does not promise: every call with a start
and an end, children inside their parent, siblings one after another. Times
come from the events (a missing timestamp is filled from its neighbours; a
trace with none gets one tick per event), a missing exit ends at the call's
last event, and children are clamped into their parent so the nesting is
always valid. Recorded durations stay in the span's ``args``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from pytest_replay.format.events import Event
from pytest_replay.render.eventtext import describe, failure_text, http_failed
from pytest_replay.render.style import Style
from pytest_replay.render.tree import (
    Call,
    Forest,
    Item,
    Source,
    as_events,
    build_forest,
    gc_paused,
)
from pytest_replay.render.units import as_ns
from pytest_replay.render.values import format_args, short

SpanKind = Literal["call", "http", "db"]
_TICK: Final = 1_000
_PLAIN: Final = Style(unicode=True, color=False)


@dataclass(eq=False)
class Span:
    """One call (or external call) with a start and an end in nanoseconds."""

    name: str
    start: int
    end: int
    kind: SpanKind
    error: bool = False
    args: dict[str, Any] = field(default_factory=dict)
    children: list[Span] = field(default_factory=list)
    depth: int = 0
    call: Call | None = None

    @property
    def duration(self) -> int:
        """``end - start`` (never negative)."""
        return max(0, self.end - self.start)


@dataclass
class Instant:
    """A point event worth a marker (an error)."""

    name: str
    at: int
    depth: int
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class Lane:
    """One request (a root call), or the events outside any call: one row group."""

    name: str
    service: str | None
    spans: list[Span] = field(default_factory=list)
    instants: list[Instant] = field(default_factory=list)

    @property
    def start(self) -> int | None:
        """The earliest time in the lane."""
        times = [span.start for span in self.spans] + [i.at for i in self.instants]
        return min(times) if times else None

    @property
    def end(self) -> int | None:
        """The latest time in the lane."""
        times = [span.end for span in self.spans] + [i.at for i in self.instants]
        return max(times) if times else None


@dataclass
class Timeline:
    """Lanes and the time origin every exporter measures from."""

    lanes: list[Lane]
    origin: int
    end: int
    synthetic_time: bool = False


def build_lanes(source: Source | Forest) -> Timeline:
    """Spans for every root call (one lane each) and the errors as instants."""
    forest = source if isinstance(source, Forest) else build_forest(as_events(source))
    with gc_paused(len(forest.events)):
        return _build_lanes(forest)


def _build_lanes(forest: Forest) -> Timeline:
    times, synthetic = fill_times(forest.events)
    builder = _Builder(forest, times)
    lanes = [builder.lane(root) for root in forest.roots]
    loose = [item for item in forest.top if item.kind == "event"]
    if loose:
        lane = Lane("events outside any call", None)
        for item in loose:
            builder.instant(lane, item, 0)
        if lane.instants:
            lanes.append(lane)
    starts = [lane.start for lane in lanes if lane.start is not None]
    ends = [lane.end for lane in lanes if lane.end is not None]
    origin = min(starts) if starts else 0
    return Timeline(lanes, origin, max(ends) if ends else origin, synthetic)


def fill_times(events: Sequence[Event]) -> tuple[list[int], bool]:
    """A time for every event: its own, else one tick after the previous one."""
    raw = [as_ns(event.get("timestamp_ns")) for event in events]
    known = [value for value in raw if value is not None]
    if not known:
        return [index * _TICK for index in range(len(events))], True
    out: list[int] = []
    last: int | None = None
    for value in raw:
        if value is not None:
            last = value
        elif last is not None:
            last += 1
        out.append(last if last is not None else 0)
    first = next(index for index, value in enumerate(raw) if value is not None)
    for index in range(first):
        out[index] = known[0] - (first - index)
    return out, False


class _Builder:
    def __init__(self, forest: Forest, times: list[int]) -> None:
        self.forest = forest
        self.times = times

    def lane(self, root: Call) -> Lane:
        lane = Lane(f"{root.name}[{root.key or '?'}]", root.service)
        top = self.span(root, None, 0, lane)
        lane.spans.append(top)
        return lane

    def span(self, call: Call, parent: Span | None, depth: int, lane: Lane) -> Span:
        # iterative over the subtree: deep traces must not hit the recursion limit
        first = self._call_span(call, depth)
        if parent is not None:
            _clamp(first, parent)
        stack: list[tuple[Span, Call]] = [(first, call)]
        while stack:
            span, current = stack.pop()
            cursor = span.start
            pending: list[tuple[Span, Call]] = []
            for item in current.items:
                child = self._item_span(item, span.depth + 1, lane)
                if child is None:
                    continue
                child.start = max(child.start, cursor)
                _clamp(child, span)
                cursor = child.end
                span.children.append(child)
                if child.call is not None and child.kind == "call":
                    pending.append((child, child.call))
            stack.extend(reversed(pending))
        return first

    def _item_span(self, item: Item, depth: int, lane: Lane) -> Span | None:
        if item.kind == "enter" and item.call is not None:
            return self._call_span(item.call, depth)
        if item.kind != "event" or item.event is None:
            return None
        kind = item.event.get("event_type")
        if kind in ("http_call", "db_call"):
            return self._external_span(item, depth)
        if kind == "error":
            self.instant(lane, item, depth)
        return None

    def _call_span(self, call: Call, depth: int) -> Span:
        start = self.times[call.index]
        end = self._end_of(call, start)
        args: dict[str, Any] = {}
        arguments = format_args(call.entry.get("args"), 200)
        if arguments:
            args["args"] = arguments
        if call.exit is not None:
            if call.exit.get("error"):
                args["error"] = True
            elif "return_value" in call.exit:
                args["result"] = short(call.exit.get("return_value"), 200)
        else:
            args["incomplete"] = "no exit recorded"
        recorded = call.duration_ns
        if recorded is not None:
            args["duration_ns"] = recorded
        for key in ("correlation_id", "module", "service"):
            value = call.entry.get(key)
            if isinstance(value, str):
                args[key] = value
        return Span(call.name, start, end, "call", call.raised, args, depth=depth, call=call)

    def _end_of(self, call: Call, start: int) -> int:
        if call.exit is not None and call.exit_index is not None:
            recorded = call.duration_ns
            stamp = as_ns(call.exit.get("timestamp_ns"))
            if stamp is not None:
                return max(start, stamp)
            if recorded is not None:
                return start + recorded
            return max(start, self.times[call.exit_index])
        latest = start
        stack = [call]
        while stack:  # the call's last recorded moment
            current = stack.pop()
            for item in current.items:
                latest = max(latest, self.times[item.index])
                if item.kind == "exit" and item.call is not None:
                    latest = max(latest, self.times[item.call.exit_index or item.index])
                if item.kind == "enter" and item.call is not None:
                    stack.append(item.call)
        return latest

    def _external_span(self, item: Item, depth: int) -> Span:
        event = item.event or {}
        at = self.times[item.index]
        spent = as_ns(event.get("duration_ns")) or 0
        described = describe(event, _PLAIN, width=200)
        kind: SpanKind = "http" if event.get("event_type") == "http_call" else "db"
        failed = http_failed(event) if kind == "http" else failure_text(event) is not None
        args: dict[str, Any] = {"duration_ns": spent} if spent else {}
        return Span(described.text, at, at + max(0, spent), kind, failed, args, depth=depth)

    def instant(self, lane: Lane, item: Item, depth: int) -> None:
        event = item.event or {}
        if event.get("event_type") != "error":
            return
        described = describe(event, _PLAIN, width=200)
        args = {"details": " | ".join(described.details)} if described.details else {}
        lane.instants.append(Instant(described.text, self.times[item.index], depth, args))


def _clamp(child: Span, parent: Span) -> None:
    """Keep ``child`` inside ``parent``: tools reject or misdraw overlapping slices."""
    child.start = min(max(child.start, parent.start), parent.end)
    child.end = min(max(child.end, child.start), parent.end)


def walk(spans: list[Span]) -> list[Span]:
    """Every span, depth first, parents before children."""
    out: list[Span] = []
    stack = list(reversed(spans))
    while stack:
        span = stack.pop()
        out.append(span)
        stack.extend(reversed(span.children))
    return out
