"""The execution timeline: the seed's tree of ENTER / SET / ERROR / EXIT lines.

::

    ├─ [14:23:45.123] 📥 ENTER process_order(order_id=12345, user_id=67890)
    │  ├─ [14:23:45.124] 📝 SET tax_rate = 0.08
    │  ├─ [14:23:45.125] 📥 ENTER calculate_tax(amount=100.0, rate=0.08)
    │  │  ❌ [14:23:45.126] ERROR ZeroDivisionError: division by zero
    │  │     at calculate_tax:16 → discount_amount = sum(discounts) / discount_count
    │  │     discount_count = 0
    │  └─ [14:23:45.127] 📤 EXIT calculate_tax (error=True)
    └─ [14:23:45.128] 📤 EXIT process_order (error=True)

Drawing is iterative (no recursion limit on deep traces), loops are
summarised unless ``verbose``, and ``max_lines`` keeps the output bounded
while always keeping the lines around errors.
"""

from __future__ import annotations

import datetime as _dt
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from pytest_replay.format.events import Event
from pytest_replay.model import Root, Trace
from pytest_replay.render.eventtext import (
    describe,
    failure_text,
    http_failed,
    int_field,
    text_field,
)
from pytest_replay.render.style import Style
from pytest_replay.render.tree import Forest, Item, Source, as_events, build_forest, gc_paused
from pytest_replay.render.units import UTC, clock, full_timestamp

DEFAULT_MAX_LINES: Final = 400
SUMMARY_THRESHOLD: Final = 20_000
MAX_INDENT: Final = 40
_CONTEXT: Final = 2

Line = tuple[str, bool]
"""A drawn line and whether it must survive elision (errors and their details)."""


@dataclass
class Drawn:
    """Where one item goes in the tree; turned into text only if it is kept."""

    item: Item
    prefix: str
    last: bool
    depth: int


@dataclass
class TimelineOptions:
    """How to draw: detail, time zone, width of values, replay verdict marks."""

    style: Style
    verbose: bool = False
    tz: _dt.tzinfo | None = UTC
    width: int = 80
    marks: Mapping[int, str] | None = None


def render_timeline(
    source: Source,
    style: Style | None = None,
    *,
    verbose: bool = False,
    tz: _dt.tzinfo | None = UTC,
    header: bool = True,
    action: str = "Replaying",
    max_lines: int | None = DEFAULT_MAX_LINES,
    width: int = 80,
    marks: Mapping[int, str] | None = None,
    summary: bool | None = None,
) -> str:
    """The timeline of ``source`` (a Root, a Trace, or a list of events) as text.

    ``verbose`` (the CLI's ``--debug``) shows every event's fields and every
    loop iteration. ``tz=None`` prints local time. ``max_lines`` bounds the
    output (``None``: no bound) and keeps error lines. ``marks`` maps event
    positions (in ``source``'s event order) to replay verdicts (``ok``,
    ``diverged``, ``missing``, ``extra``, ``not_compared``). Traces longer
    than 20,000 events get the summary (``summary=True``/``False`` forces).
    """
    return "\n".join(timeline_lines(
        source, style, verbose=verbose, tz=tz, header=header, action=action,
        max_lines=max_lines, width=width, marks=marks, summary=summary,
    ))


def timeline_lines(
    source: Source,
    style: Style | None = None,
    *,
    verbose: bool = False,
    tz: _dt.tzinfo | None = UTC,
    header: bool = True,
    action: str = "Replaying",
    max_lines: int | None = DEFAULT_MAX_LINES,
    width: int = 80,
    marks: Mapping[int, str] | None = None,
    summary: bool | None = None,
) -> list[str]:
    """:func:`render_timeline` as a list of lines."""
    chosen = style or Style.plain()
    events = as_events(source)
    problems = [str(p) for p in source.problems] if isinstance(source, Trace) else []
    if summary or (summary is None and len(events) > SUMMARY_THRESHOLD):
        from pytest_replay.render.summary import render_summary_lines, summarize

        lines = header_lines(events, chosen, tz=tz, action=action, problems=problems,
                             incident=_incident(source, None)) if header else []
        return lines + render_summary_lines(summarize(events), chosen, tz=tz, width=width)
    forest = build_forest(events)
    out = header_lines(events, chosen, tz=tz, action=action, problems=problems,
                       incident=_incident(source, forest)) if header else []
    if header:
        out.extend(["", chosen.paint("Execution Timeline:", "header")])
    options = TimelineOptions(chosen, verbose, tz, width, marks)
    with gc_paused(len(events)):
        out.extend(limit_lines(draw(forest.top, options), max_lines, options))
    return out


def header_lines(
    events: Sequence[Event],
    style: Style,
    *,
    tz: _dt.tzinfo | None = UTC,
    action: str = "Replaying",
    incident: bool = False,
    problems: Sequence[str] = (),
) -> list[str]:
    """The seed's header: ``🎬 Replaying incident from ...``, ``📋 Loading 47 events...``."""
    stamps = [e.get("timestamp_ns") for e in events]
    start = min((s for s in stamps if isinstance(s, int) and not isinstance(s, bool)),
                default=None)
    what = "incident" if incident else "request"
    lines = [
        f"{style.glyph('movie')}{action} {what} from {full_timestamp(start, tz)}",
        f"{style.glyph('clipboard')}Loading {len(events)} telemetry events...",
    ]
    if problems:
        noun = "problem" if len(problems) == 1 else "problems"
        lines.append(style.paint(f"{style.glyph('warning')}{len(problems)} {noun} in the "
                                 "trace file:", "warn"))
        lines.extend(f"   {problem}" for problem in problems[:3])
        if len(problems) > 3:
            lines.append(f"   {style.glyph('ellipsis')} {len(problems) - 3} more")
    lines.append(f"{style.glyph('search')}Analyzing execution flow...")
    return lines


def _incident(source: Source, forest: Forest | None) -> bool:
    if isinstance(source, Root):
        return source.is_incident
    if isinstance(source, Trace):
        return bool(source.incidents)
    if forest is None:
        return False
    if any(call.raised for call in forest.roots):
        return True
    has_error = any(e.get("event_type") == "error" for e in forest.events)
    return has_error and any(call.exit is None for call in forest.roots)


@dataclass
class _Level:
    items: list[Item]
    position: int
    prefix: str
    depth: int


def draw(top: list[Item], options: TimelineOptions) -> Iterator[Drawn]:
    """Every item of the tree under ``top`` in drawing order, lazily, without recursion."""
    style = options.style
    stack = [_Level(condense(top, options.verbose), 0, "", 0)]
    while stack:
        level = stack[-1]
        if level.position >= len(level.items):
            stack.pop()
            continue
        item = level.items[level.position]
        level.position += 1
        last = level.position == len(level.items)
        yield Drawn(item, level.prefix, last, level.depth)
        children = children_of(item)
        if children:
            grow = level.depth < MAX_INDENT
            prefix = level.prefix + (style.glyph("space") if last else style.glyph("pipe"))
            stack.append(_Level(condense(children, options.verbose),
                                0, prefix if grow else level.prefix, level.depth + 1))


def children_of(item: Item) -> list[Item]:
    """What is drawn nested under ``item``."""
    if item.children:
        return item.children
    if item.kind == "enter" and item.call is not None and item.call.items:
        return item.call.items
    return []


def condense(items: list[Item], verbose: bool) -> list[Item]:
    """Fold each loop's iteration events into one ``loop`` line (unless verbose)."""
    if verbose or not any(_is_loop(item) for item in items):
        return items
    out: list[Item] = []
    loops: dict[str, Item] = {}
    for item in items:
        if not _is_loop(item) or item.event is None:
            out.append(item)
            continue
        name = text_field(item.event, "loop_name") or "loop"
        summary = loops.get(name)
        if summary is None:
            summary = Item("loop", item.index, item.event, item.call, label=name)
            loops[name] = summary
            out.append(summary)
        total = int_field(item.event, "iterations")
        if total is not None:
            summary.total = total
        else:
            summary.count += 1
    return out


def _is_loop(item: Item) -> bool:
    return item.kind == "event" and item.event is not None and (
        item.event.get("event_type") == "loop_iteration")


def item_lines(item: Item, prefix: str, last: bool, depth: int,
               options: TimelineOptions) -> list[Line]:
    """The line(s) of one item: its head line, then its detail lines."""
    style = options.style
    connector = style.glyph("last") if last else style.glyph("branch")
    deep = f"[depth {depth}] " if depth > MAX_INDENT else ""
    follow = prefix + (style.glyph("space") if last else style.glyph("pipe"))
    if item.kind == "group":
        return [(f"{prefix}{connector}{deep}{item.label}", False)]
    if item.kind == "noexit":
        name = item.call.name if item.call is not None else "?"
        text = f"{style.glyph('elided')} no EXIT recorded for {name} (the call's end is missing)"
        return [(f"{prefix}{connector}{deep}{style.paint(text, 'warn')}", False)]
    event = item.event or {}
    stamp = style.paint(f"[{clock(event.get('timestamp_ns'), options.tz)}]", "time")
    mark = style.mark(options.marks.get(item.index, "")) if options.marks else ""
    if item.kind == "loop":
        icon = style.icon("loop_iteration")
        word = "" if style.icons else "LOOP "
        text = f"{word}{item.label}: {_iterations(item)}"
        return [(f"{prefix}{connector}{deep}{mark}{stamp} {icon}{text}", False)]
    call_name = item.call.name if item.call is not None else None
    described = describe(event, style, verbose=options.verbose, width=options.width,
                         name=call_name, tz=options.tz)
    text = described.text
    if item.kind == "event" and event.get("event_type") == "function_exit":
        text += " (a second exit for this call)"
    if item.label and item.kind == "event":
        text += " " + style.paint(item.label, "warn" if described.error else "dim")
    if described.error and style.icons and item.kind == "event":
        head = f"{prefix}{style.glyph('error')}{deep}{mark}{stamp} {text}"
    else:
        head = f"{prefix}{connector}{deep}{mark}{stamp} {style.icon(described.kind)}{text}"
    important = described.error
    lines = [(head, important)]
    lines.extend((f"{follow}{detail}", important) for detail in described.details)
    return lines


def _iterations(item: Item) -> str:
    recorded = item.count
    if item.total is not None and item.total > recorded:
        return f"{item.total} iterations ({recorded} recorded)"
    count = max(recorded, item.total or 0)
    return f"{count} iteration{'s' if count != 1 else ''}"


def important(item: Item) -> bool:
    """Whether an item must survive elision: an error, or an external call that failed."""
    event = item.event
    if item.kind != "event" or event is None:
        return False
    kind = event.get("event_type")
    if kind == "error":
        return True
    if kind == "http_call":
        return http_failed(event)
    return kind == "db_call" and failure_text(event) is not None


def limit_lines(drawn: Iterable[Drawn], max_lines: int | None,
                options: TimelineOptions) -> list[str]:
    """About ``max_lines`` items' lines: the start, the end, and every error with context.

    Only the items kept are turned into text, and memory stays bounded by
    ``max_lines`` whatever the input length.
    """
    if max_lines is None:
        return [text for entry in drawn for text in _text(entry, options)]
    budget = max(max_lines, 10)
    head_size, tail_size, error_budget = budget * 2 // 5, budget // 3, budget // 4
    kept: list[tuple[int, Drawn]] = []
    everything: list[Drawn] = []  # all items while they still fit the budget
    recent: deque[tuple[int, Drawn]] = deque(maxlen=_CONTEXT)
    tail: deque[tuple[int, Drawn]] = deque(maxlen=tail_size)
    after = 0
    total = 0
    for index, entry in enumerate(drawn):
        total = index + 1
        if index < budget:
            everything.append(entry)
        elif everything:
            everything = []
        if index < head_size:
            kept.append((index, entry))
            continue
        if error_budget > 0 and important(entry.item):
            kept.extend(recent)
            recent.clear()
            kept.append((index, entry))
            error_budget -= 1
            after = _CONTEXT
            continue
        if after > 0:
            kept.append((index, entry))
            after -= 1
            continue
        recent.append((index, entry))
        tail.append((index, entry))
    if total <= budget:
        return [text for entry in everything for text in _text(entry, options)]
    merged = dict(kept)
    merged.update(tail)
    out: list[str] = []
    previous = -1
    for index in sorted(merged):
        if index > previous + 1:
            out.append(_elision(index - previous - 1, options.style))
        out.extend(_text(merged[index], options))
        previous = index
    if previous < total - 1:
        out.append(_elision(total - 1 - previous, options.style))
    return out


def _text(entry: Drawn, options: TimelineOptions) -> list[str]:
    lines = item_lines(entry.item, entry.prefix, entry.last, entry.depth, options)
    return [text for text, _important in lines]


def _elision(count: int, style: Style) -> str:
    dots = style.glyph("elided")
    noun = "line" if count == 1 else "lines"
    return style.paint(f"{dots} {count:,} {noun} elided {dots}", "dim")
