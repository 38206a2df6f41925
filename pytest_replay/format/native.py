"""The optional C extension of the reader and the model (``_bulk.c``), loaded once.

``_bulk.c`` checks the lines of a chunk against the JSON grammar and the
field types without building the events, and builds the model in one pass.
It declines (None) anything it is not sure of, and the Python paths
(:mod:`pytest_replay.format.bulk`, ``model._Builder``) then do the work, so a
trace reads the same whichever ran. Without a compiler at install, or with
``TELEMETRY_REPLAY_PURE_PYTHON=1``, only Python runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from pytest_replay.format.bulk import CANONICAL_KINDS
from pytest_replay.format.events import FIELD_TYPES, Event
from pytest_replay.format.line_event import LineEvent
from pytest_replay.native_switch import load_extension

__all__ = ["NATIVE_REGION", "WHY_PYTHON", "ids_for_size", "implementation", "native_tree"]

_INTERFACE: Final = 3
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
    _bulk, why = load_extension("pytest_replay.format._bulk", _INTERFACE, "the C bulk reader")
    if _bulk is None:
        return None, why
    masks = {name: sum(_TYPE_BITS[kind] for kind in spec[0])
             for name, spec in FIELD_TYPES.items()}
    try:
        _bulk.configure(masks, tuple(sorted(CANONICAL_KINDS)), LineEvent)
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


_BYTES_PER_ID: Final = 512
"""A guess that errs low: lines of about 250 bytes, about one new id every two lines."""
_MOST_IDS: Final = 1 << 20


def ids_for_size(size: int | None) -> dict[Any, Any]:
    """The dict a read interns its ids in, with room for what ``size`` bytes likely hold.

    A trace of 200,000 events interns about 90,000 ids; grown one doubling at a
    time, the dict moves every id several times through memory no cache holds.
    A guess too small only means some growing; the cap bounds one too large.
    """
    if _NATIVE is None or not size:
        return {}
    presized: dict[Any, Any] = _NATIVE.presized(min(size // _BYTES_PER_ID, _MOST_IDS))
    return presized


def implementation() -> str:
    """What reads blocks of trace lines in this process, for benchmarks and bug reports."""
    return "C bulk reader" if NATIVE_REGION is not None else f"Python ({WHY_PYTHON})"
