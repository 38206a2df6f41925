"""One request across services: the seed's ``Timeline (across 5 services)``.

Several traces (one per service, or one merged file whose events carry
``service``) are drawn as one tree ordered by time. A service's part is
nested under the call that crossed into it: a ``function_entry`` whose
``parent_correlation_id`` names a frame of another service, or a root entry
that falls inside the time window of another service's ``http_call``.
Repeated calls to the same URL are marked as attempts; failed calls and
errors are marked. The root-cause line names a slow service only when
durations show it (the callee took at least as long as the caller waited),
and says so plainly when the evidence is missing.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from pytest_replay.format.events import Event
from pytest_replay.model import Root, Trace
from pytest_replay.render.eventtext import failure_text, http_failed, int_field, text_field
from pytest_replay.render.spans import fill_times
from pytest_replay.render.style import Style
from pytest_replay.render.timeline import DEFAULT_MAX_LINES, TimelineOptions, draw, limit_lines
from pytest_replay.render.tree import (
    Call,
    Forest,
    Item,
    Source,
    as_events,
    build_forest,
    gc_paused,
)
from pytest_replay.render.units import UTC, as_ns, duration
from pytest_replay.render.values import short

_TIMEOUT: Final = re.compile(r"time[d ]?\s*out|timeout", re.IGNORECASE)
_TIMEOUT_STATUS: Final = frozenset({408, 504})


@dataclass
class Crossing:
    """One call from one service into another."""

    caller: str
    callee: str
    root: Call
    via: Event | None = None
    via_index: int | None = None


@dataclass
class DistributedView:
    """The merged tree, the services in order, the crossings and what they show."""

    forest: Forest
    services: list[str]
    top: list[Item]
    crossings: list[Crossing] = field(default_factory=list)
    root_cause: str | None = None
    evidence: list[str] = field(default_factory=list)
    outcome: str = ""
    failed: bool = False
    trace_ids: list[str] = field(default_factory=list)


def _source_name(source: Source, position: int) -> str:
    if isinstance(source, Trace):
        return Path(source.path).stem
    if isinstance(source, Root):
        return Path(source.path).stem
    return f"service {position + 1}"


def build_distributed(sources: Sequence[Source], *,
                      names: Sequence[str] | None = None) -> DistributedView:
    """Merge traces of several services into one view (see the module docstring)."""
    merged: list[tuple[int, int, int, Event]] = []  # (time, source, position, event)
    defaults: list[str] = []
    for number, source in enumerate(sources):
        events = as_events(source)
        given = names[number] if names is not None and number < len(names) else None
        # An event without "service" belongs to the service its file names most.
        named = Counter(str(e["service"]) for e in events if isinstance(e.get("service"), str))
        defaults.append(named.most_common(1)[0][0] if named else (
            given or _source_name(source, number)))
        times, _synthetic = fill_times(events)
        merged.extend((times[i], number, i, event) for i, event in enumerate(events))
    merged.sort(key=lambda row: (row[0], row[1], row[2]))
    events = [row[3] for row in merged]
    origins = [row[1] for row in merged]
    times = [row[0] for row in merged]
    forest = build_forest(events, _Ids(events, origins))
    with gc_paused(len(events)):
        return _Weaver(forest, origins, times, defaults).weave()


class _Ids:
    """Ids made unique per source, with parents resolved across sources when unambiguous."""

    def __init__(self, events: list[Event], origins: list[int]) -> None:
        self.origins = origins
        self.owners: dict[str, set[int]] = {}
        for event, origin in zip(events, origins, strict=True):
            cid = event.get("correlation_id")
            if event.get("event_type") == "function_entry" and isinstance(cid, str) and cid:
                self.owners.setdefault(cid, set()).add(origin)

    def __call__(self, index: int, event: Event) -> tuple[str | None, str | None]:
        origin = self.origins[index]
        cid = event.get("correlation_id")
        parent = event.get("parent_correlation_id")
        key = f"{origin}\x00{cid}" if isinstance(cid, str) and cid else None
        parent_key = None
        if isinstance(parent, str) and parent:
            owners = self.owners.get(parent, set())
            if origin in owners:
                parent_key = f"{origin}\x00{parent}"
            elif len(owners) == 1:
                parent_key = f"{next(iter(owners))}\x00{parent}"
        return key, parent_key


class _Weaver:
    def __init__(self, forest: Forest, origins: list[int], times: list[int],
                 defaults: list[str]) -> None:
        self.forest = forest
        self.origins = origins
        self.times = times
        self.defaults = defaults
        self.services: list[str] = []
        self.crossings: list[Crossing] = []
        self.grafted: dict[int, Call] = {}  # id(root) -> the call it was grafted under

    def service(self, index: int) -> str:
        event = self.forest.events[index]
        value = event.get("service")
        if isinstance(value, str) and value:
            return value
        return self.defaults[self.origins[index]]

    def weave(self) -> DistributedView:
        for index in range(len(self.forest.events)):
            name = self.service(index)
            if name not in self.services:
                self.services.append(name)
        self._cross_parents()
        self._graft_roots()
        for items in self._all_item_lists():
            _mark_attempts(items)
        top = self._service_groups()
        view = DistributedView(self.forest, self.services, top, self.crossings,
                               trace_ids=self._trace_ids())
        _explain(view, self)
        return view

    def letter(self, service: str) -> str:
        position = self.services.index(service) if service in self.services else 0
        return chr(ord("A") + position) if position < 26 else f"#{position + 1}"

    def label(self, service: str) -> str:
        return f"Calls Service {self.letter(service)}: {service}"

    # -- crossings -------------------------------------------------------------------

    def _cross_parents(self) -> None:
        for call in list(self.forest.calls.values()):
            parent = call.parent
            if parent is None:
                continue
            mine, theirs = self.service(call.index), self.service(parent.index)
            if mine == theirs:
                continue
            moved = _take(parent.items, call)
            host = self._window_host(parent.items, self.times[call.index], theirs)
            group = Item("group", call.index, None, call, children=moved, label=self.label(mine))
            via = host.event if host is not None else None
            self.crossings.append(Crossing(theirs, mine, call, via,
                                           host.index if host is not None else None))
            if host is not None:
                host.children = (host.children or []) + [group]
            else:
                parent.items.insert(_insert_at(parent.items, call.index), group)

    def _graft_roots(self) -> None:
        hosts = [(item, owner) for owner in self.forest.calls.values() for item in owner.items
                 if item.kind == "event" and item.event is not None
                 and item.event.get("event_type") == "http_call"]
        for root in sorted(self.forest.roots, key=lambda call: -self.times[call.index]):
            best = self._best_host(root, hosts)
            if best is None:
                continue
            mine = self.service(root.index)
            _spent, host, owner = best
            moved = _take(self.forest.top, root)
            group = Item("group", root.index, None, root, children=moved, label=self.label(mine))
            host.children = (host.children or []) + [group]
            self.grafted[id(root)] = owner
            self.crossings.append(Crossing(self.service(host.index), mine, root, host.event,
                                           host.index))

    def _best_host(self, root: Call,
                   hosts: list[tuple[Item, Call]]) -> tuple[int, Item, Call] | None:
        """The tightest ``http_call`` of another service whose window holds ``root``'s start.

        Windows read the call's timestamp as its start; only when no call matches
        that way is it read as its end. The calling frame must have started before
        ``root`` (a callee cannot start before its caller).
        """
        mine = self.service(root.index)
        start = self.times[root.index]
        for at_start in (True, False):
            best: tuple[int, Item, Call] | None = None
            for item, owner in hosts:
                if (self.service(item.index) == mine or self.times[owner.index] > start
                        or self._above(owner, root)):
                    continue
                window = _window(item, self.times[item.index], start, at_start)
                if window is not None and (best is None or window < best[0]):
                    best = (window, item, owner)
            if best is not None:
                return best
        return None

    def _above(self, call: Call, root: Call) -> bool:
        """Whether ``root`` is ``call`` or one of its ancestors (grafting would loop)."""
        seen: set[int] = set()
        current: Call | None = call
        while current is not None and id(current) not in seen:
            if current is root:
                return True
            seen.add(id(current))
            current = current.parent if current.parent is not None else self.grafted.get(
                id(current))
        return False

    def _window_host(self, items: list[Item], start: int, callee_service: str) -> Item | None:
        for at_start in (True, False):
            best: tuple[int, Item] | None = None
            for item in items:
                if (item.kind == "event" and item.event is not None
                        and item.event.get("event_type") == "http_call"):
                    window = _window(item, self.times[item.index], start, at_start)
                    if window is not None and (best is None or window < best[0]):
                        best = (window, item)
            if best is not None:
                return best[1]
        return None

    def _all_item_lists(self) -> list[list[Item]]:
        lists = [self.forest.top] + [call.items for call in self.forest.calls.values()]
        return lists

    def _service_groups(self) -> list[Item]:
        by_service: dict[str, list[Item]] = {}
        for item in self.forest.top:
            by_service.setdefault(self.service(item.index), []).append(item)
        groups = []
        for service in self.services:
            items = by_service.get(service)
            if items:
                label = f"Service {self.letter(service)}: {service}"
                groups.append(Item("group", items[0].index, None, None, children=items,
                                   label=label))
        return groups

    def _trace_ids(self) -> list[str]:
        found: list[str] = []
        for root in self.forest.roots:
            if id(root) in self.grafted:
                continue
            trace = text_field(root.entry, "trace_id") or text_field(root.entry, "correlation_id")
            if trace and trace not in found:
                found.append(trace)
        return found


def _take(items: list[Item], call: Call) -> list[Item]:
    """Remove and return ``call``'s own ENTER / no-exit / EXIT items from ``items``."""
    moved = [item for item in items if item.call is call and item.kind in ("enter", "exit",
                                                                            "noexit")]
    items[:] = [item for item in items if not (item.call is call and item.kind in (
        "enter", "exit", "noexit"))]
    return moved


def _insert_at(items: list[Item], index: int) -> int:
    for position, item in enumerate(items):
        if item.index > index:
            return position
    return len(items)


def _window(item: Item, at: int, start: int, at_start: bool) -> int | None:
    """The call's duration if ``start`` falls in its window.

    ``at_start``: the call's timestamp is when it was sent; else when it returned.
    """
    event = item.event or {}
    spent = as_ns(event.get("duration_ns"))
    if spent is None or spent < 0:
        return None
    inside = at <= start <= at + spent if at_start else at - spent <= start <= at
    return spent if inside else None


def _mark_attempts(items: list[Item]) -> None:
    """``(attempt 2 of 3)`` on repeated calls to the same URL inside one call."""
    runs: dict[tuple[str, str], list[Item]] = {}
    for item in items:
        event = item.event
        if item.kind != "event" or event is None or event.get("event_type") != "http_call":
            continue
        key = ((text_field(event, "method") or "?").upper(), text_field(event, "url") or "?")
        runs.setdefault(key, []).append(item)
    for run in runs.values():
        if len(run) < 2:
            continue
        failures = [http_failed(item.event or {}) for item in run]
        for number, item in enumerate(run, start=1):
            item.label = f"(attempt {number} of {len(run)})"
        if all(failures):
            run[-1].label += f": all {len(run)} attempts failed"


# -- what the view shows ---------------------------------------------------------------


def _is_timeout(event: Event) -> bool:
    failure = failure_text(event) or ""
    status = int_field(event, "status_code", "status")
    return bool(_TIMEOUT.search(failure)) or status in _TIMEOUT_STATUS


def _explain(view: DistributedView, weaver: _Weaver) -> None:
    first = min(weaver.forest.roots, key=lambda call: call.index, default=None)
    top = next((call for call in weaver.forest.roots if id(call) not in weaver.grafted), first)
    view.failed = any(call.raised for call in weaver.forest.roots if id(call) not in
                      weaver.grafted)
    if top is not None:
        view.outcome = _outcome(top, weaver.service(top.index))
    timeouts = _timeouts(weaver)
    if timeouts:
        _explain_timeouts(view, weaver, timeouts)
        return
    errors = [(index, event) for index, event in enumerate(weaver.forest.events)
              if event.get("event_type") == "error"]
    if errors:
        index, event = errors[0]
        service = weaver.service(index)
        kind = text_field(event, "error_type") or "Error"
        message = text_field(event, "message")
        where = text_field(event, "function_name")
        text = f"{service} raised {kind}" + (f": {message}" if message else "")
        text += f" in {where}" if where else ""
        later = _failed_after(weaver, service)
        if later:
            chain = " → ".join([service, *later])
            view.root_cause = f"{text} (the first error of the request), failing {chain}"
        else:
            view.root_cause = f"{text} (the first error of the request)"
        view.evidence.append(f"first error event: {kind} in {service}")
        return
    failed_calls = [(i, e) for i, e in enumerate(weaver.forest.events)
                    if e.get("event_type") == "http_call" and http_failed(e)]
    if failed_calls:
        index, event = failed_calls[0]
        view.root_cause = (f"Root cause not determined from the trace: {weaver.service(index)}'s "
                           f"call to {text_field(event, 'url') or '?'} failed "
                           f"({failure_text(event) or int_field(event, 'status_code', 'status')})"
                           ", and no service recorded an error")


def _outcome(call: Call, service: str) -> str:
    if call.exit is None:
        return f"Request outcome not recorded (no EXIT for {call.name} in {service})"
    if call.raised:
        kind = text_field(call.exit, "error_type")
        if kind is None:
            errors = [item.event for item in call.items if item.event is not None
                      and item.event.get("event_type") == "error"]
            kind = text_field(errors[-1], "error_type") if errors else None
        return f"Request failed: {call.name} ({service}) raised" + (f" {kind}" if kind else "")
    result = short(call.exit.get("return_value"), 60) if "return_value" in call.exit else ""
    return f"Request completed: {call.name} ({service}) returned {result}".rstrip()


@dataclass
class _Timeout:
    index: int
    event: Event
    caller: str
    callee: Call | None
    callee_service: str | None


def _timeouts(weaver: _Weaver) -> list[_Timeout]:
    by_host = {crossing.via_index: crossing for crossing in weaver.crossings
               if crossing.via_index is not None}
    found = []
    for index, event in enumerate(weaver.forest.events):
        if event.get("event_type") != "http_call" or not _is_timeout(event):
            continue
        crossing = by_host.get(index)
        callee_service = crossing.callee if crossing else _service_in_url(event, weaver)
        found.append(_Timeout(index, event, weaver.service(index),
                              crossing.root if crossing else None, callee_service))
    return found


def _service_in_url(event: Event, weaver: _Weaver) -> str | None:
    url = (text_field(event, "url") or "").lower()
    named = [service for service in weaver.services if service.lower() in url]
    return named[0] if len(named) == 1 else None


def _explain_timeouts(view: DistributedView, weaver: _Weaver, timeouts: list[_Timeout]) -> None:
    # the bottom of the cascade: a timed-out callee that itself timed out on nobody
    callers = {timeout.caller for timeout in timeouts}
    bottom = [t for t in timeouts if t.callee_service not in callers] or timeouts
    culprit = bottom[0].callee_service
    group = [t for t in bottom if t.callee_service == culprit]
    caller = group[0].caller
    waited = max((as_ns(t.event.get("duration_ns")) or 0) for t in group)
    attempts = len(group)
    waited_text = duration(waited) if waited else "an unrecorded time"
    tries = f", {attempts} attempts" if attempts > 1 else ""
    callee_times = [t.callee.duration_ns for t in group if t.callee is not None]
    unfinished = [t for t in group if t.callee is not None and t.callee.exit is None]
    chain = [culprit or "?", *_cascade(weaver, caller)]
    cascade = " → ".join(chain)
    limit = _timeout_limit(group[0].event)
    slow_limit = limit if limit is not None else waited
    slow = [spent for spent in callee_times if spent is not None and spent >= slow_limit > 0]
    if culprit is not None and (slow or unfinished):
        longest = max(slow) if slow else None
        took = (f"{group[0].callee.name if group[0].callee else culprit} took "
                f"{duration(longest)}" if longest is not None else
                "its handler never finished in the recording")
        view.root_cause = (f"{culprit} was slow ({took}; {caller} timed out after "
                           f"{waited_text}{tries}), causing a timeout cascade: {cascade}")
        view.evidence.append(f"callee duration {took} >= caller wait {waited_text}")
        return
    target = culprit or (text_field(group[0].event, "url") or "?")
    if culprit is not None and not callee_times:
        view.root_cause = (f"Calls from {caller} to {target} timed out after {waited_text}"
                           f"{tries}; {target}'s own trace is not in this set, so whether it "
                           f"was slow or unreachable is not recorded (cascade: {cascade})")
    elif culprit is None:
        view.root_cause = (f"Calls from {caller} to {target} timed out after {waited_text}"
                           f"{tries}; the called service's trace is not in this set, so "
                           "whether it was slow or unreachable is not recorded")
    else:
        view.root_cause = (f"Calls from {caller} to {culprit} timed out after {waited_text}"
                           f"{tries}, but {culprit}'s recorded handling was faster than that "
                           "(the time went elsewhere: network or queueing; not recorded)")
    view.evidence.append(f"{len(group)} timed-out call(s) from {caller}")


def _timeout_limit(event: Event) -> int | None:
    for key, scale in (("timeout_ns", 1), ("timeout_ms", 1_000_000), ("timeout_s", 10**9),
                       ("timeout", 10**9)):
        value = event.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return int(value * scale)
    return None


def _cascade(weaver: _Weaver, service: str) -> list[str]:
    """``service`` and the services above it that failed, innermost first."""
    chain = [service]
    current = service
    for _ in range(len(weaver.services)):
        above = [c for c in weaver.crossings if c.callee == current and c.caller not in chain]
        if not above:
            break
        crossing = above[0]
        failed = (crossing.via is not None and http_failed(crossing.via)) or any(
            call.raised for call in weaver.forest.all_calls()
            if weaver.service(call.index) == crossing.caller)
        if not failed:
            break
        chain.append(crossing.caller)
        current = crossing.caller
    return chain


def _failed_after(weaver: _Weaver, service: str) -> list[str]:
    return _cascade(weaver, service)[1:]


def render_distributed(
    view: DistributedView,
    style: Style | None = None,
    *,
    verbose: bool = False,
    tz: _dt.tzinfo | None = UTC,
    width: int = 80,
    max_lines: int | None = DEFAULT_MAX_LINES,
) -> str:
    """The view as text: the tree across services, the outcome, the root-cause line."""
    return "\n".join(distributed_lines(view, style, verbose=verbose, tz=tz, width=width,
                                       max_lines=max_lines))


def distributed_lines(
    view: DistributedView,
    style: Style | None = None,
    *,
    verbose: bool = False,
    tz: _dt.tzinfo | None = UTC,
    width: int = 80,
    max_lines: int | None = DEFAULT_MAX_LINES,
) -> list[str]:
    """:func:`render_distributed` as a list of lines."""
    chosen = style or Style.plain()
    count = len(view.services)
    noun = "service" if count == 1 else "services"
    traces = f", trace {', '.join(view.trace_ids)}" if 0 < len(view.trace_ids) <= 3 else ""
    lines = [chosen.paint(f"Timeline (across {count} {noun}{traces}):", "header")]
    top: list[Item] = list(view.top)
    if view.outcome:
        mark = chosen.glyph("fail") if view.failed else chosen.glyph("ok")
        top.append(Item("group", len(view.forest.events), None, None, label=mark + view.outcome))
    options = TimelineOptions(chosen, verbose, tz, width)
    lines.extend(limit_lines(draw(top, options), max_lines, options))
    lines.append("")
    cause = view.root_cause
    if cause is not None and not chosen.unicode:
        cause = cause.replace("→", "->")
    if cause is None:
        lines.append(f"No failure recorded across {count} {noun}.")
    elif cause.startswith("Root cause not determined"):
        lines.append(chosen.paint(cause, "warn"))
    else:
        lines.append(chosen.paint(f"Root Cause: {cause}", "error"))
    return lines


def services_summary(view: DistributedView) -> list[tuple[str, int, int | None, bool]]:
    """``(service, calls, longest root duration, any call raised)`` per service."""
    out: list[tuple[str, int, int | None, bool]] = []
    calls = view.forest.all_calls()
    for service in view.services:
        mine = [call for call in calls if (call.service or "") == service]
        longest = max((call.duration_ns or 0 for call in mine), default=None)
        out.append((service, len(mine), longest, any(call.raised for call in mine)))
    return out

