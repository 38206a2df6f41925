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

When the optional C extension ``_bulk`` is built, blocks read for the model
(events kept as bytes) go through it instead: it checks each line against the
JSON grammar and the field types without building the event at all, and
makes the same LineEvents. It declines (None) everything this module would
decline, and some rare lines it would take; those then take this path's
line-by-line fallback, so the result never depends on which ran.
``TELEMETRY_REPLAY_PURE_PYTHON=1`` turns it off.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, Final, final

import orjson

from pytest_replay.format.events import FIELD_TYPES, FORMAT_VERSION, KNOWN_EVENT_TYPES, Event
from pytest_replay.format.line_event import LineEvent
from pytest_replay.format.lines import KnownShapes

__all__ = ["Seen", "block_events"]

_CANONICAL: Final = {kind: kind for kind in KNOWN_EVENT_TYPES}
"""One string per known type, so 200,000 events do not each keep their own copy."""

_get = dict.get
_loads = orjson.loads
_new = tuple.__new__

PURE_PYTHON_ENV: Final = "TELEMETRY_REPLAY_PURE_PYTHON"
"""Set (not ``0``) to run the pure-Python reader and capture, to compare or rule C out."""
_INTERFACE: Final = 2
"""The contract with ``_bulk.c`` this module expects (its ``INTERFACE``)."""
_TYPE_BITS: Final = {str: 1, int: 2, float: 4, bool: 8, type(None): 16, dict: 32, list: 64}
"""A JSON-decoded type as the C module's mask bit."""

NativeRegion = Callable[
    [bytes, int, int, int, set[str], set["int | None"], dict[Any, Any], dict[int, Event]],
    "list[LineEvent] | None",
]
NativeTree = Callable[[list[Any], str, str, str], "tuple[Any, Any, Any, bool | None] | None"]


def _load_native() -> tuple[Any, str]:
    """The C bulk reader, configured, or None and why (no compiler at install, or turned off)."""
    if os.environ.get(PURE_PYTHON_ENV, "") not in ("", "0"):
        return None, f"{PURE_PYTHON_ENV} is set"
    try:
        from pytest_replay.format import _bulk
    except ImportError as exc:
        return None, f"the C bulk reader is not built ({exc})"
    except Exception as exc:  # a broken build costs speed, never the import
        return None, f"the C bulk reader failed to load: {type(exc).__name__}: {exc}"
    if getattr(_bulk, "INTERFACE", None) != _INTERFACE:
        return None, "the C bulk reader was built from another version: reinstall to rebuild it"
    masks = {name: sum(_TYPE_BITS[kind] for kind in spec[0])
             for name, spec in FIELD_TYPES.items()}
    try:
        _bulk.configure(masks, tuple(sorted(_CANONICAL)), LineEvent)
    except (TypeError, ValueError) as exc:  # a field table it cannot hold: Python reads
        return None, f"the C bulk reader refused the field table: {exc}"
    return _bulk, ""


_NATIVE, WHY_PYTHON = _load_native()
NATIVE_REGION: NativeRegion | None = None if _NATIVE is None else _NATIVE.region
"""The C reader of a region of a chunk, or None (see WHY_PYTHON)."""


def native_tree(frame_type: type[Any], root_type: type[Any]) -> NativeTree | None:
    """The model's builder in C making these frames and roots, or None when not built.

    model.py asks once, at import; the C side finds their slots by name.
    """
    if _NATIVE is None:
        return None
    _NATIVE.configure_model(frame_type, root_type)
    tree: NativeTree = _NATIVE.tree
    return tree


def implementation() -> str:
    """What reads blocks of trace lines in this process, for benchmarks and bug reports."""
    return "C bulk reader" if NATIVE_REGION is not None else f"Python ({WHY_PYTHON})"


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
        map(_CANONICAL.get, types, types),
        map(same, ids, ids),
        map(same, parents, parents),
        map(_get, events, repeat("timestamp_ns")),
        map(_get, events, repeat("error")),
        events if decoded is None else lines,
        repeat(decoded),
        repeat(None),
    )
    return list(map(_new, repeat(LineEvent), columns))
