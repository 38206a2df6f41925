"""Call trees from any list of events, for drawing: forgiving where the model is strict.

``pytest_replay.model`` decides what a root is and reports problems; the
renderers need something else: a tree of *items* in display order (an
``ENTER`` line with the call's own items beneath it, then its ``EXIT``),
built from whatever they are handed, including events with no ids, exits
without entries, duplicate ids and parent cycles. Nothing is dropped: an event
that fits nowhere is shown at the top level.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pytest_replay.format.events import FUNCTION_ENTRY, FUNCTION_EXIT, Event
from pytest_replay.format.reader import LineEvent
from pytest_replay.model import Root, Trace
from pytest_replay.render.units import as_ns

ItemKind = Literal["enter", "exit", "event", "noexit", "loop", "group"]
Source = Root | Trace | Iterable[Event] | Iterable[LineEvent] | Iterable[Any]


@dataclass(eq=False)
class Call:
    """One call as drawn: its entry, its exit (if recorded) and what happened inside."""

    key: str | None
    entry: Event
    index: int
    parent: Call | None = None
    exit: Event | None = None
    exit_index: int | None = None
    items: list[Item] = field(default_factory=list)
    duplicate: bool = False

    @property
    def name(self) -> str:
        """The recorded function name (``?`` when the entry names none)."""
        for source in (self.entry, self.exit or {}):
            value = source.get("function_name") or source.get("qualname")
            if isinstance(value, str) and value:
                return value
        return "?"

    @property
    def service(self) -> str | None:
        """The service the entry was recorded in, if it says."""
        value = self.entry.get("service")
        return value if isinstance(value, str) and value else None

    @property
    def raised(self) -> bool:
        """Whether the recorded exit says the call raised."""
        return bool(self.exit is not None and self.exit.get("error"))

    @property
    def start_ns(self) -> int | None:
        """The entry's timestamp."""
        return as_ns(self.entry.get("timestamp_ns"))

    @property
    def duration_ns(self) -> int | None:
        """``duration_ns`` of the exit, else exit minus entry time, else None."""
        if self.exit is None:
            return None
        recorded = as_ns(self.exit.get("duration_ns"))
        if recorded is not None and recorded >= 0:
            return recorded
        start, end = self.start_ns, as_ns(self.exit.get("timestamp_ns"))
        if start is not None and end is not None and end >= start:
            return end - start
        return None

    def children(self) -> list[Call]:
        """Calls made directly inside this one, in order."""
        return [item.call for item in self.items if item.kind == "enter" and item.call is not None]

    def path(self) -> list[str]:
        """Function names from the outermost call down to this one."""
        names: list[str] = []
        call: Call | None = self
        while call is not None:
            names.append(call.name)
            call = call.parent
        return names[::-1]


@dataclass(eq=False)
class Item:
    """One line (with what nests beneath it) of a drawn timeline."""

    kind: ItemKind
    index: int
    event: Event | None = None
    call: Call | None = None
    children: list[Item] | None = None
    label: str = ""
    count: int = 0
    total: int | None = None


@dataclass
class Forest:
    """Every call found, and the top-level items in display order."""

    events: list[Event]
    top: list[Item]
    calls: dict[str, Call]
    roots: list[Call]

    def all_calls(self) -> list[Call]:
        """Every call, depth first in display order."""
        out: list[Call] = []
        stack = list(reversed(self.roots))
        while stack:
            call = stack.pop()
            out.append(call)
            stack.extend(reversed(call.children()))
        return out


IdsOf = Callable[[int, Event], tuple[str | None, str | None]]


def event_ids(_index: int, event: Event) -> tuple[str | None, str | None]:
    """``(correlation_id, parent_correlation_id)`` as recorded (non-strings ignored)."""
    cid = event.get("correlation_id")
    parent = event.get("parent_correlation_id")
    return (cid if isinstance(cid, str) and cid else None,
            parent if isinstance(parent, str) and parent else None)


def as_events(source: Source) -> list[Event]:
    """A plain event list from a Root, a Trace, LineEvents or dicts.

    Anything that is not a mapping becomes an event of the unknown type
    ``<not an object>`` so it is shown, not lost.
    """
    if isinstance(source, Root):
        return [item.event for item in source.events]
    if isinstance(source, Trace):
        out: list[Event] = []
        for root in source.roots:
            out.extend(item.event for item in root.events)
        out.extend(item.event for item in source.orphans)
        return out
    events: list[Event] = []
    for raw in source:
        item = raw.event if isinstance(raw, LineEvent) else raw
        if isinstance(item, dict):
            events.append(item)
        else:
            kept = item if item is None or isinstance(item, (str, int, float, list)) \
                else _repr(item)
            events.append({"event_type": "<not an object>", "value": kept})
    return events


def _repr(value: object) -> str:
    try:
        text = repr(value)
    except Exception as exc:  # a hostile __repr__ must not stop a report
        return f"<{type(value).__name__}: repr failed: {type(exc).__name__}>"
    return text[:200]


@contextlib.contextmanager
def gc_paused(size: int | None) -> Iterator[None]:
    """Pause the cyclic garbage collector while building ``size`` objects, if many.

    Building 100,000 small objects next to a trace of 100,000 dicts otherwise
    spends most of its time in collections that find nothing to free.
    ``None``: the size is not known yet; pause anyway.
    """
    if (size is not None and size < 10_000) or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def build_forest(events: Sequence[Event], ids: IdsOf = event_ids) -> Forest:
    """Group ``events`` (in display order) into calls and top-level items."""
    with gc_paused(len(events)):
        return _build_forest(events, ids)


def _build_forest(events: Sequence[Event], ids: IdsOf) -> Forest:
    keys = [ids(index, event) for index, event in enumerate(events)]
    calls: dict[str, Call] = {}
    anonymous: dict[int, Call] = {}
    for index, event in enumerate(events):
        if event.get("event_type") != FUNCTION_ENTRY:
            continue
        cid = keys[index][0]
        if cid is not None and cid not in calls:
            calls[cid] = Call(cid, event, index)
        else:  # no id, or a duplicate id: still a call, drawn where it stands
            anonymous[index] = Call(None, event, index, duplicate=cid is not None)
    _link_parents(calls, anonymous, keys)
    top: list[Item] = []
    for index, event in enumerate(events):
        kind = event.get("event_type")
        cid = keys[index][0]
        call = calls.get(cid) if cid is not None else None
        if kind == FUNCTION_ENTRY:
            entered = anonymous.get(index) or call
            if entered is None:
                continue
            _siblings(entered, top).append(Item("enter", index, event, entered))
            continue
        if kind == FUNCTION_EXIT and call is not None and call.exit is None:
            call.exit, call.exit_index = event, index
            _siblings(call, top).append(Item("exit", index, event, call))
            continue
        target = call.items if call is not None else top
        target.append(Item("event", index, event, call))
    every = list(calls.values()) + list(anonymous.values())
    _mark_missing_exits(every, top)
    roots = sorted((call for call in every if call.parent is None), key=lambda c: c.index)
    return Forest(list(events), top, calls, roots)


def _siblings(call: Call, top: list[Item]) -> list[Item]:
    return call.parent.items if call.parent is not None else top


def _mark_missing_exits(calls: list[Call], top: list[Item]) -> None:
    """Put a ``noexit`` item right after the ENTER of every call whose exit is missing."""
    lists: dict[int, list[Item]] = {}
    for call in calls:
        if call.exit is None:
            siblings = _siblings(call, top)
            lists[id(siblings)] = siblings
    for siblings in lists.values():
        rebuilt: list[Item] = []
        for item in siblings:
            rebuilt.append(item)
            if item.kind == "enter" and item.call is not None and item.call.exit is None:
                rebuilt.append(Item("noexit", item.index, None, item.call))
        siblings[:] = rebuilt


def _link_parents(
    calls: dict[str, Call], anonymous: dict[int, Call],
    keys: list[tuple[str | None, str | None]],
) -> None:
    for call in list(calls.values()) + list(anonymous.values()):
        parent_id = keys[call.index][1]
        parent = calls.get(parent_id) if parent_id is not None else None
        if parent is not None and parent is not call:
            call.parent = parent
    _break_cycles(list(calls.values()))


def _break_cycles(calls: list[Call]) -> None:
    """Make the first call of any parent cycle a root (each call has one parent: O(n))."""
    state: dict[int, int] = {}  # id(call) -> 1 visiting, 2 done
    for start in calls:
        path: list[Call] = []
        call: Call | None = start
        while call is not None and state.get(id(call)) is None:
            state[id(call)] = 1
            path.append(call)
            call = call.parent
        if call is not None and state.get(id(call)) == 1:
            call.parent = None  # back at a call on this very walk: a cycle
        for member in path:
            state[id(member)] = 2


def error_events(events: Iterable[Event]) -> list[Event]:
    """The ``error`` events, in order."""
    return [event for event in events if event.get("event_type") == "error"]
