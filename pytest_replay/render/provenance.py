"""Where a bad value came from, when the trace recorded it.

Three kinds of evidence, strongest first: a ``variable_change`` of that name
in the failing call; an argument the caller passed; a call made inside the
failing function, before the error, that returned exactly that value. A
zero count next to an empty sequence of the same stem (``discount_count`` and
``discounts``) is reported as what it is, a match, and the sequence is traced
in turn. When several calls returned the value, all are named and none is
blamed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from pytest_replay.format.events import Event
from pytest_replay.render.eventtext import text_field
from pytest_replay.render.source import names_in
from pytest_replay.render.tree import Call
from pytest_replay.render.values import format_args, is_empty_sequence, short

OriginKind = Literal["variable_change", "argument", "return_value", "derived", "ambiguous"]
_IDENTIFIER: Final = re.compile(r"[A-Za-z_]\w*")
_COMMON_VALUES: Final = (None, True, False, 0, "")


@dataclass(frozen=True)
class Origin:
    """One sentence of provenance, and the event it rests on."""

    name: str
    kind: OriginKind
    text: str
    event: Event | None = None


def origins_of(
    name: str,
    value: Any,
    call: Call | None,
    events: Sequence[Event],
    error_index: int,
    values: Mapping[str, Any],
    related: Sequence[str] = (),
    source: str | None = None,
    *,
    derive: bool = True,
) -> list[Origin]:
    """What the trace says about where ``name`` (recorded as ``value``) came from."""
    out: list[Origin] = []
    if _IDENTIFIER.fullmatch(name) and call is not None:
        found = (_variable_change(name, value, call, events, error_index)
                 or _argument(name, value, call)
                 or _returned(name, value, call, events, error_index))
        out.extend(found)
    if out or not derive:
        return out
    for sequence in related:
        if sequence in values:
            out.extend(origins_of(sequence, values[sequence], call, events, error_index,
                                  values, derive=False))
    if out:
        return out
    if _IDENTIFIER.fullmatch(name) and value == 0 and not isinstance(value, bool):
        out.extend(_empty_partner(name, call, events, error_index, values, source))
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    try:
        return bool(a == b)
    except (TypeError, ValueError, RecursionError):
        return False


def _variable_change(name: str, value: Any, call: Call, events: Sequence[Event],
                     error_index: int) -> list[Origin]:
    last: Event | None = None
    for item in call.items:
        event = item.event
        if (item.kind == "event" and event is not None and item.index < error_index
                and event.get("event_type") == "variable_change"
                and text_field(event, "variable_name") == name):
            last = event
    if last is None:
        return []
    recorded = last.get("value")
    shown = short(recorded, 40)
    if _same(recorded, value):
        return [Origin(name, "variable_change",
                       f"{name} was set to {shown} in {call.name} (SET {name} = {shown})", last)]
    return [Origin(name, "variable_change",
                   f"{name} was last recorded as {shown} in {call.name}, and was "
                   f"{short(value, 40)} at the error (changed where the trace does not see)",
                   last)]


def _argument(name: str, value: Any, call: Call) -> list[Origin]:
    args = call.entry.get("args")
    if not isinstance(args, Mapping) or name not in args or not _same(args[name], value):
        return []
    caller = call.parent.name if call.parent is not None else "the caller"
    text = (f"{name} = {short(value, 40)} was passed in: {caller} called "
            f"{call.name}({format_args(args, 60)})")
    return [Origin(name, "argument", text, call.entry)]


def _returned(name: str, value: Any, call: Call, events: Sequence[Event],
              error_index: int) -> list[Origin]:
    candidates = [child for child in call.children()
                  if child.exit is not None and child.exit_index is not None
                  and child.exit_index < error_index and "return_value" in child.exit
                  and _same(child.exit.get("return_value"), value)]
    if not candidates:
        return []
    related = [child for child in candidates if _shares_stem(name, child.name)]
    if len(related) == 1:
        return [_came_from(name, related[0])]
    common = any(_same(value, item) for item in _COMMON_VALUES) or is_empty_sequence(value)
    if len(candidates) == 1 and not common:
        return [_came_from(name, candidates[0], probably=True)]
    if len(candidates) == 1:
        return []  # one call returned a value as common as None or 0: not evidence
    listed = ", ".join(f"{child.name}()" for child in (related or candidates)[:4])
    return [Origin(name, "ambiguous",
                   f"{name} = {short(value, 40)} is what {len(related or candidates)} calls "
                   f"returned ({listed}); the trace does not say which one it came from")]


def _came_from(name: str, child: Call, *, probably: bool = False) -> Origin:
    args = format_args(child.entry.get("args"), 60)
    returned = short(child.exit.get("return_value") if child.exit else None, 40)
    verb = "probably came from" if probably else "came from"
    return Origin(name, "return_value",
                  f"{name} {verb} {child.name}({args}), which returned {returned}", child.exit)


def _empty_partner(name: str, call: Call | None, events: Sequence[Event], error_index: int,
                   values: Mapping[str, Any], source: str | None) -> list[Origin]:
    on_line = set(names_in(source)) if source else set()
    partners = [other for other, item in values.items()
                if other != name and is_empty_sequence(item)
                and (_shares_stem(name, other) or other in on_line)]
    if len(partners) != 1:
        return []
    partner = partners[0]
    out = [Origin(name, "derived",
                  f"{name} = 0 matches len({partner}): {partner} = "
                  f"{short(values[partner], 30)} (empty)")]
    out.extend(origins_of(partner, values[partner], call, events, error_index, values,
                          derive=False))
    return out


def _stems(name: str) -> set[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()
    out = set()
    for word in spaced.split("_"):
        if len(word) < 3 or word in {"get", "the", "and", "for", "count", "len", "num", "total",
                                     "list", "all", "new", "old", "value", "values"}:
            continue
        out.add(word[:-1] if word.endswith("s") and len(word) > 3 else word)
    return out


def _shares_stem(a: str, b: str) -> bool:
    return bool(_stems(a) & _stems(b))
