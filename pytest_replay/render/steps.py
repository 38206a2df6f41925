"""Step mode: one event at a time, with the call stack at that moment.

``replay-telemetry --step-mode`` shows each step's line and waits; at an
error (or on request) it prints the call stack like the seed::

    Call Stack:
      └─ process_order(order_id=12345, user_id=67890)
        └─ calculate_tax(amount=100.0, rate=0.08)

The prompting belongs to the CLI; this module only prepares the text.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field

from pytest_replay.format.events import Event
from pytest_replay.render.eventtext import describe
from pytest_replay.render.style import Style
from pytest_replay.render.tree import Call, Source, as_events, build_forest
from pytest_replay.render.units import UTC, clock
from pytest_replay.render.values import format_args


@dataclass
class Step:
    """One event as a step: its line, detail lines, and the calls open around it."""

    index: int
    event: Event
    line: str
    details: list[str] = field(default_factory=list)
    stack: list[Event] = field(default_factory=list)
    error: bool = False


def steps(
    source: Source,
    style: Style | None = None,
    *,
    verbose: bool = False,
    tz: _dt.tzinfo | None = UTC,
    width: int = 80,
) -> list[Step]:
    """Every event of ``source`` as a :class:`Step`, in order."""
    chosen = style or Style.plain()
    events = as_events(source)
    forest = build_forest(events)
    out: list[Step] = []
    for index, event in enumerate(events):
        cid = event.get("correlation_id")
        call = forest.calls.get(cid) if isinstance(cid, str) else None
        described = describe(event, chosen, verbose=verbose, width=width,
                             name=call.name if call else None, tz=tz)
        stamp = chosen.paint(f"[{clock(event.get('timestamp_ns'), tz)}]", "time")
        line = f"{stamp} {chosen.icon(described.kind)}{described.text}"
        out.append(Step(index, event, line, described.details, _stack(call),
                        described.error))
    return out


def _stack(call: Call | None) -> list[Event]:
    entries: list[Event] = []
    seen: set[int] = set()
    while call is not None and id(call) not in seen:
        seen.add(id(call))
        entries.append(call.entry)
        call = call.parent
    return entries[::-1]


def call_stack_lines(step: Step, style: Style | None = None, *, width: int = 80) -> list[str]:
    """``Call Stack:`` and one indented line per open call, outermost first."""
    chosen = style or Style.plain()
    if not step.stack:
        return ["Call Stack: (outside any recorded call)"]
    lines = ["Call Stack:"]
    for depth, entry in enumerate(step.stack):
        name = entry.get("function_name") or entry.get("qualname") or "?"
        args = format_args(entry.get("args"), width, unicode=chosen.unicode)
        lines.append(f"{'  ' * (depth + 1)}{chosen.glyph('last')}{name}({args})")
    return lines


def render_step(step: Step, style: Style | None = None, *, stack: bool = False) -> str:
    """The step's line and details, and its call stack when asked (or at an error)."""
    chosen = style or Style.plain()
    lines = [step.line, *(f"   {detail}" for detail in step.details)]
    if stack or step.error:
        lines.extend(["", *call_stack_lines(step, chosen)])
    return "\n".join(lines)
