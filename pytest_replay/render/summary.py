"""The summary of a huge trace, computed in one pass with bounded memory.

For traces too long to draw (100,000 events and more), the timeline shows:
counts per event type and per function, the call path to the first and last
error, and the first and last events, with the rest elided. ``summarize``
reads its events lazily (a generator straight from the file works) and keeps
only a fixed number of events, one entry per function name (capped) and the
calls still open.
"""

from __future__ import annotations

import datetime as _dt
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from pytest_replay.format.events import Event
from pytest_replay.format.reader import LineEvent
from pytest_replay.render.eventtext import describe, text_field
from pytest_replay.render.style import Style
from pytest_replay.render.units import UTC, as_ns, clock, duration
from pytest_replay.render.values import format_args

MAX_FUNCTIONS: Final = 10_000
MAX_OPEN: Final = 100_000
OTHER: Final = "(other functions)"


@dataclass
class FunctionCount:
    """Calls of one function name across the trace."""

    calls: int = 0
    errors: int = 0
    total_ns: int = 0
    timed: int = 0


@dataclass
class ErrorPath:
    """An error event and the calls open when it happened, outermost first."""

    event: Event
    path: list[Event]

    @property
    def names(self) -> list[str]:
        """The function names of the path."""
        return [text_field(entry, "function_name", "qualname") or "?" for entry in self.path]


@dataclass
class _Open:
    name: str
    parent: str | None
    depth: int
    start: int | None
    entry: Event


@dataclass
class TimelineSummary:
    """What one pass over a trace learned; holds a bounded number of events."""

    count: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    functions: dict[str, FunctionCount] = field(default_factory=dict)
    first: list[tuple[Event, int]] = field(default_factory=list)
    last: deque[tuple[Event, int]] = field(default_factory=deque)
    errors: int = 0
    first_error: ErrorPath | None = None
    last_error: ErrorPath | None = None
    roots: int = 0
    start_ns: int | None = None
    end_ns: int | None = None
    open_at_end: int = 0
    forgotten_calls: int = 0
    not_objects: int = 0


def summarize(
    events: Iterable[Event | LineEvent | Any],
    *,
    keep: int = 10,
    max_functions: int = MAX_FUNCTIONS,
    max_open: int = MAX_OPEN,
) -> TimelineSummary:
    """One pass over ``events``: counts, error paths, the first and last ``keep`` events."""
    summary = TimelineSummary(last=deque(maxlen=keep))
    open_calls: dict[str, _Open] = {}
    for raw in events:
        event = raw.event if isinstance(raw, LineEvent) else raw
        if not isinstance(event, dict):
            summary.not_objects += 1
            event = {"event_type": "<not an object>"}
        depth = _account(summary, open_calls, event, max_functions)
        if len(open_calls) > max_open:
            del open_calls[next(iter(open_calls))]
            summary.forgotten_calls += 1
        if len(summary.first) < keep:
            summary.first.append((event, depth))
        else:
            summary.last.append((event, depth))
    summary.open_at_end = len(open_calls)
    return summary


def _account(summary: TimelineSummary, open_calls: dict[str, _Open], event: Event,
             max_functions: int) -> int:
    summary.count += 1
    kind = event.get("event_type")
    kind_name = kind if isinstance(kind, str) else "?"
    summary.by_type[kind_name] = summary.by_type.get(kind_name, 0) + 1
    stamp = as_ns(event.get("timestamp_ns"))
    if stamp is not None:
        summary.start_ns = stamp if summary.start_ns is None else min(summary.start_ns, stamp)
        summary.end_ns = stamp if summary.end_ns is None else max(summary.end_ns, stamp)
    cid = event.get("correlation_id")
    cid = cid if isinstance(cid, str) else None
    if kind == "function_entry":
        return _enter(summary, open_calls, event, cid, stamp, max_functions)
    frame = open_calls.get(cid) if cid is not None else None
    if kind == "function_exit":
        if frame is not None and cid is not None:
            del open_calls[cid]
            _exit(summary, frame, event, stamp, max_functions)
            return frame.depth
        return 0
    if kind == "error":
        summary.errors += 1
        path = ErrorPath(event, _path(open_calls, cid))
        if summary.first_error is None:
            summary.first_error = path
        summary.last_error = path
        name = text_field(event, "function_name") or (frame.name if frame else None)
        if name is not None:
            _function(summary, name, max_functions).errors += 1
    return frame.depth + 1 if frame is not None else 0


def _enter(summary: TimelineSummary, open_calls: dict[str, _Open], event: Event,
           cid: str | None, stamp: int | None, max_functions: int) -> int:
    parent_id = event.get("parent_correlation_id")
    parent = open_calls.get(parent_id) if isinstance(parent_id, str) else None
    depth = parent.depth + 1 if parent is not None else 0
    name = text_field(event, "function_name", "qualname") or "?"
    _function(summary, name, max_functions).calls += 1
    if parent is None:
        summary.roots += 1
    if cid is not None:
        open_calls[cid] = _Open(name, parent_id if isinstance(parent_id, str) else None,
                                depth, stamp, event)
    return depth


def _exit(summary: TimelineSummary, frame: _Open, event: Event, stamp: int | None,
          max_functions: int) -> None:
    spent = as_ns(event.get("duration_ns"))
    if spent is None and stamp is not None and frame.start is not None:
        spent = stamp - frame.start
    if spent is not None and spent >= 0:
        count = _function(summary, frame.name, max_functions)
        count.total_ns += spent
        count.timed += 1


def _function(summary: TimelineSummary, name: str, max_functions: int) -> FunctionCount:
    count = summary.functions.get(name)
    if count is None:
        if len(summary.functions) >= max_functions:
            name = OTHER
            count = summary.functions.get(name)
        if count is None:
            count = summary.functions[name] = FunctionCount()
    return count


def _path(open_calls: dict[str, _Open], cid: str | None) -> list[Event]:
    path: list[Event] = []
    seen: set[str] = set()
    while cid is not None and cid in open_calls and cid not in seen:
        seen.add(cid)
        frame = open_calls[cid]
        path.append(frame.entry)
        cid = frame.parent
    return path[::-1]


def render_summary_lines(
    summary: TimelineSummary,
    style: Style,
    *,
    tz: _dt.tzinfo | None = UTC,
    width: int = 80,
    top: int = 20,
) -> list[str]:
    """The summary as lines (see the module docstring for what it holds)."""
    lines = [""]
    span = ""
    if summary.start_ns is not None and summary.end_ns is not None:
        arrow = style.glyph("arrow")
        span = (f", {clock(summary.start_ns, tz)} {arrow} {clock(summary.end_ns, tz)}, "
                f"{duration(summary.end_ns - summary.start_ns, unicode=style.unicode)}")
    requests = f"{summary.roots} request{'s' if summary.roots != 1 else ''}"
    lines.append(style.paint(f"Summary of {summary.count:,} events ({requests}{span}):",
                             "header"))
    kinds = sorted(summary.by_type.items(), key=lambda pair: -pair[1])
    lines.append("   " + ", ".join(f"{name} {count:,}" for name, count in kinds))
    lines.extend(_function_lines(summary, style, top))
    lines.extend(_error_lines(summary, style, tz, width))
    lines.extend(_event_lines("First events:", summary.first, style, tz, width))
    elided = summary.count - len(summary.first) - len(summary.last)
    if elided > 0:
        dots = style.glyph("elided")
        lines.append(style.paint(f"{dots} {elided:,} events elided {dots}", "dim"))
    if summary.last:
        lines.extend(_event_lines("Last events:", list(summary.last), style, tz, width))
    if summary.open_at_end:
        lines.append(f"{summary.open_at_end:,} calls have no EXIT recorded")
    if summary.forgotten_calls:
        lines.append(f"{summary.forgotten_calls:,} open calls were forgotten to bound memory "
                     "(their error paths may be incomplete)")
    return lines


def _function_lines(summary: TimelineSummary, style: Style, top: int) -> list[str]:
    if not summary.functions:
        return []
    ranked = sorted(summary.functions.items(), key=lambda pair: (-pair[1].total_ns,
                                                                 -pair[1].calls, pair[0]))
    width = min(40, max(len(name) for name, _count in ranked[:top]))
    lines = ["Calls per function (most time first):"]
    for name, count in ranked[:top]:
        calls = f"{count.calls:,} call{'s' if count.calls != 1 else ''}"
        spent = duration(count.total_ns, unicode=style.unicode) if count.timed else "?"
        errors = f", {count.errors:,} error{'s' if count.errors != 1 else ''}" if (
            count.errors) else ""
        lines.append(f"   {name[:40]:<{width}}  {calls:>14}  {spent:>10}{errors}")
    if len(ranked) > top:
        lines.append(f"   {style.glyph('ellipsis')} {len(ranked) - top:,} more functions")
    return lines


def _error_lines(summary: TimelineSummary, style: Style, tz: _dt.tzinfo | None,
                 width: int) -> list[str]:
    if summary.first_error is None:
        return ["No error recorded."]
    noun = "error" if summary.errors == 1 else "errors"
    lines = [style.paint(f"{summary.errors:,} {noun} recorded.", "error")]
    shown = [("First error", summary.first_error)]
    if summary.last_error is not None and summary.last_error is not summary.first_error:
        shown.append(("Last error", summary.last_error))
    for title, error in shown:
        path = style.glyph("path").join(error.names) or "(outside any recorded call)"
        lines.append(f"{title} path: {path}")
        described = describe(error.event, style, width=width, tz=tz)
        stamp = style.paint(f"[{clock(error.event.get('timestamp_ns'), tz)}]", "time")
        lines.append(f"   {style.glyph('error')}{stamp} {described.text}")
        lines.extend(f"      {detail}" for detail in described.details)
        if error.path:
            entry = error.path[-1]
            args = format_args(entry.get("args"), width, unicode=style.unicode)
            lines.append(f"      called as {error.names[-1]}({args})")
    return lines


def _event_lines(title: str, events: list[tuple[Event, int]], style: Style,
                 tz: _dt.tzinfo | None, width: int) -> list[str]:
    lines = [title]
    for event, depth in events:
        described = describe(event, style, width=width, tz=tz)
        stamp = style.paint(f"[{clock(event.get('timestamp_ns'), tz)}]", "time")
        indent = "   " * min(depth, 20)
        lines.append(f"   {stamp} {indent}{style.icon(described.kind)}{described.text}")
    return lines
