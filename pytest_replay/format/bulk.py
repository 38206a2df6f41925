"""A block of trace lines at once: parsed, checked and kept with a few calls into C.

The reader hands over blocks of complete lines. When every line of a block
is a JSON object of a well-typed shape, of an event type and version that
need no warning, the block becomes :class:`LineEvent` objects with a single
Python step per line (its shape: field names, then value types). ``map``
runs orjson over the lines, the block's few distinct shapes are checked
against the ones already seen, and the fields the model reads are copied
out column by column. Anything else (a blank line, a syntax error, a wrong
type, a new event type...) returns None, and the reader goes through that
block line by line, which finds and names the problem; the lines around it
lose nothing.

When the optional C extension is built (see :mod:`pytest_replay.format.native`),
the reader hands it whole chunks first; only what it declines comes here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, Final, final

import orjson

from pytest_replay.format.events import FORMAT_VERSION, KNOWN_EVENT_TYPES, Event
from pytest_replay.format.line_event import LineEvent
from pytest_replay.format.lines import KnownShapes

__all__ = ["Seen", "block_events"]

CANONICAL_KINDS: Final = {kind: kind for kind in KNOWN_EVENT_TYPES}
"""One string per known type, so 200,000 events do not each keep their own copy."""

_get = dict.get
_loads = orjson.loads
_new = tuple.__new__

@final
@dataclass(eq=False, slots=True)
class Seen:
    """What one pass over a trace has checked and said so far, for the lines after."""

    shapes: KnownShapes = field(default_factory=KnownShapes)
    kinds: set[str] = field(default_factory=lambda: set(KNOWN_EVENT_TYPES))
    """Event types that pass without a word: the known ones and those warned about."""
    versions: set[int | None] = field(default_factory=lambda: {None, FORMAT_VERSION})
    """Likewise for ``v``: absent, this reader's, and newer ones once warned about."""
    ids: dict[Any, Any] = field(default_factory=dict)
    """One string object per correlation id: the model then finds frames by identity,
    without comparing (and so fetching from memory) two copies of each id."""


def block_events(
    lines: list[bytes], first: int, seen: Seen, decoded: dict[int, Event] | None
) -> list[LineEvent] | None:
    """The events of ``lines`` (numbered from ``first``), or None if any line needs a look.

    With ``decoded`` the events keep their bytes and decode into it on first
    use; without, they keep the decoded dicts (for consumers that read every
    event right away).
    """
    try:
        events: list[dict[str, Any]] = list(map(_loads, lines))
        types: list[Any] = list(map(_get, events, repeat("event_type")))  # TypeError: no object
    except (orjson.JSONDecodeError, TypeError):
        return None
    shapes = seen.shapes
    found = {(*event, *map(type, event.values())) for event in events}
    if not found <= shapes.shapes and not all(map(shapes.admit, found - shapes.shapes)):
        return None
    if not all(map(seen.kinds.__contains__, set(types))):
        return None
    if not all(map(seen.versions.__contains__, set(map(_get, events, repeat("v"))))):
        return None
    same = seen.ids.setdefault
    ids = list(map(_get, events, repeat("correlation_id")))
    parents = list(map(_get, events, repeat("parent_correlation_id")))
    columns = zip(
        range(first, first + len(lines)),
        map(CANONICAL_KINDS.get, types, types),
        map(same, ids, ids),
        map(same, parents, parents),
        map(_get, events, repeat("timestamp_ns")),
        map(_get, events, repeat("error")),
        events if decoded is None else lines,
        repeat(decoded),
        repeat(None),
    )
    return list(map(_new, repeat(LineEvent), columns))
