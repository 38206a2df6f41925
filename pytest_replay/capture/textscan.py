"""The optional C twin of capture's value walks (``_textscan.c``), loaded once.

Capture looks at every argument, result and event before it is written:
:func:`pytest_replay.capture.plain.shape` decides whether orjson may take a
value as it is, and :class:`~pytest_replay.capture.redact.Redaction` scans
strings for secret-shaped text. In Python those walks were most of what a
request with a cart of items paid for capture. ``_textscan.c`` does the same
walks with the same answers (tests hold them together); where a string holds
a rule's literal anchor, or is not ASCII, it still asks the Python rules. Without
a compiler at install, or with ``TELEMETRY_REPLAY_PURE_PYTHON=1``, only Python runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from pytest_replay.native_switch import load_extension

if TYPE_CHECKING:
    from pytest_replay.capture.redact import Redaction

__all__ = ["NATIVE", "WHY_PYTHON", "gate_for", "implementation"]

INTERFACE: Final = 1
"""The contract with ``_textscan.c`` this module expects (its ``INTERFACE``)."""


NATIVE, WHY_PYTHON = load_extension("pytest_replay.capture._textscan", INTERFACE,
                                     "the C value walker")
"""The C module, or None; and if None, why."""


def gate_for(redaction: Redaction, fallback: Callable[[str], bool] | None = None) -> Any:
    """An ``AnchorGate`` for ``redaction``'s value rules, or None where C cannot stand in.

    None when the C module is absent, when values are not scanned, or when a rule
    has no literal anchor (a pattern of the user's own): then every string must
    go to the regular expressions. Called, the gate answers ``fallback(text)``
    for a text holding an anchor and False for any other.
    """
    if NATIVE is None or not redaction.enabled or not redaction.anchored:
        return None
    case_anchors: list[str] = []
    folded_anchors: list[str] = []
    for anchors, folded, _pattern in redaction.anchored:
        if not anchors:
            return None
        (folded_anchors if folded else case_anchors).extend(anchors)
    return NATIVE.AnchorGate(tuple(case_anchors), tuple(folded_anchors), fallback)


def implementation() -> str:
    """What walks captured values in this process, for benchmarks and bug reports."""
    return "C" if NATIVE is not None else f"pure Python ({WHY_PYTHON})"
