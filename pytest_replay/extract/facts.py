"""What a request is, judged on its events: the one definition every filter uses.

The general scan judges requests from the few lines each filter needs and
calls :func:`judge` only when that is not enough; the id scan always calls
:func:`judge` on the whole request. Both read events through the helpers
here, so a filter means the same thing on either path.

Definitions (docs/extract-traces.md repeats them):

- start: the root ``function_entry``'s ``timestamp_ns`` (else the earliest
  timestamp of the request);
- duration: the root exit's ``duration_ns``; else root exit minus root
  entry; else the latest timestamp of the request minus the start;
- ``--error``: any ``error`` event anywhere in the request;
- ``--status error``: the request ended in an error, as the model's
  ``Root.incident_error`` says (the root raised, or the recording stops at an
  uncaught error); ``--status ok``: it did not.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final

from pytest_replay.extract.criteria import Criteria
from pytest_replay.format.events import CONTEXT, ERROR, FUNCTION_ENTRY, FUNCTION_EXIT, Event

VARIANT_KEYS: Final = ("variant", "experiment_variant")
_TEXT_TAGS: Final = frozenset({"uuid", "decimal", "int"})

Line = tuple[int, bytes, Event]
"""A line of a request: position, raw bytes, parsed event."""


def text_of(value: Any) -> str | None:
    """A scalar as the text a user types on the command line (``67890``, ``"B"``)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict) and value.get("$type") in _TEXT_TAGS:
        inner = value.get("value")
        return inner if isinstance(inner, str) else None
    return None


def _context_texts(event: Event, keys: Iterable[str]) -> Iterator[str]:
    context = event.get("context")
    if event.get("event_type") != CONTEXT or not isinstance(context, dict):
        return
    for key in keys:
        text = text_of(context.get(key))
        if text is not None:
            yield text


def user_ids_of(event: Event, root_id: str) -> Iterator[str]:
    """User ids an event tells: a context's ``user_id``, or the root entry's ``user_id`` arg."""
    yield from context_user_ids(event)
    if event.get("correlation_id") == root_id:
        yield from argument_user_ids(event)


def context_user_ids(event: Event) -> Iterator[str]:
    """The ``user_id`` of a context event."""
    yield from _context_texts(event, ("user_id",))


def argument_user_ids(event: Event) -> Iterator[str]:
    """The ``user_id`` argument of an entry (it names the user when the entry is a root's)."""
    if event.get("event_type") != FUNCTION_ENTRY:
        return
    args = event.get("args")
    if isinstance(args, dict):
        text = text_of(args.get("user_id"))
        if text is not None:
            yield text


def variants_of(event: Event) -> Iterator[str]:
    """The A/B arm a context event names (``variant`` or ``experiment_variant``)."""
    yield from _context_texts(event, VARIANT_KEYS)


def function_names_of(event: Event) -> Iterator[str]:
    """Names an entry answers to: name, qualname, ``module.qualname``, ``module:qualname``."""
    if event.get("event_type") != FUNCTION_ENTRY:
        return
    name, qualname, module = (event.get(key) for key in ("function_name", "qualname", "module"))
    if isinstance(name, str):
        yield name
    if isinstance(qualname, str):
        yield qualname
        if isinstance(module, str):
            yield f"{module}.{qualname}"
            yield f"{module}:{qualname}"


def mentions_trace(event: Event, trace_ids: Sequence[str]) -> bool:
    """Whether the event belongs to one of the distributed traces."""
    return event.get("trace_id") in trace_ids or event.get("correlation_id") in trace_ids


def is_error(event: Event) -> bool:
    """An ``error`` event."""
    return event.get("event_type") == ERROR


def start_ns(root_id: str, events: Sequence[Event]) -> int | None:
    """When the request started (see the module docstring)."""
    stamps: list[int] = []
    for event in events:
        stamp = event.get("timestamp_ns")
        if not isinstance(stamp, int):
            continue
        if event.get("event_type") == FUNCTION_ENTRY and event.get("correlation_id") == root_id:
            return stamp
        stamps.append(stamp)
    return min(stamps) if stamps else None


def duration_ns(root_id: str, events: Sequence[Event]) -> int | None:
    """How long the request took (see the module docstring)."""
    begin = start_ns(root_id, events)
    for event in events:
        if event.get("event_type") == FUNCTION_EXIT and event.get("correlation_id") == root_id:
            recorded = event.get("duration_ns")
            if isinstance(recorded, int):
                return recorded
            stamp = event.get("timestamp_ns")
            if isinstance(stamp, int) and begin is not None:
                return stamp - begin
    stamps: list[int] = [e["timestamp_ns"] for e in events
                         if isinstance(e.get("timestamp_ns"), int)]
    if begin is None or not stamps:
        return None
    return max(stamps) - begin


def is_incident(root_id: str, events: Sequence[Event]) -> bool:
    """Whether the request ended in an error, by the model's own rule."""
    from pytest_replay.format.reader import LineEvent, ReadResult
    from pytest_replay.model import build_trace  # costs an import only when --status is used

    result = ReadResult("<request>", [LineEvent(index + 1, e) for index, e in enumerate(events)])
    for root in build_trace(result).roots:
        if root.correlation_id == root_id:
            return root.incident_error is not None
    return any(is_error(event) for event in events)


def judge(criteria: Criteria, root_id: str, lines: Sequence[Line]) -> bool:
    """Whether the whole request (its lines in log order) passes every filter."""
    events = [event for _position, _raw, event in lines]
    checks = (
        not criteria.correlation_ids
        or any(e.get("correlation_id") in criteria.correlation_ids for e in events),
        not criteria.trace_ids or any(mentions_trace(e, criteria.trace_ids) for e in events),
        criteria.pattern is None or any(criteria.pattern.search(raw) for _p, raw, _e in lines),
        not criteria.error or any(is_error(e) for e in events),
        not criteria.user_ids
        or any(u in criteria.user_ids for e in events for u in user_ids_of(e, root_id)),
        not criteria.variants
        or any(v in criteria.variants for e in events for v in variants_of(e)),
        not criteria.services or any(e.get("service") in criteria.services for e in events),
        not criteria.functions
        or any(f in criteria.functions for e in events for f in function_names_of(e)),
    )
    if not all(checks):
        return False
    if criteria.timed and not in_window(criteria, start_ns(root_id, events)):
        return False
    if criteria.min_duration_ns is not None:
        took = duration_ns(root_id, events)
        if took is None or took < criteria.min_duration_ns:
            return False
    if criteria.status is not None:
        return is_incident(root_id, events) == (criteria.status == "error")
    return True


def in_window(criteria: Criteria, stamp: int | None) -> bool:
    """Whether a start time lies in ``[since, until)``."""
    if stamp is None:
        return False
    if criteria.since_ns is not None and stamp < criteria.since_ns:
        return False
    return criteria.until_ns is None or stamp < criteria.until_ns
