"""Which implementation runs ``@traced``'s hot path: the C accelerator when built, else Python.

The accelerator (``_speedups.c``) is an optional extension: an install without a
compiler gets the pure-Python wrapper, which behaves the same, only slower.
``TELEMETRY_REPLAY_PURE_PYTHON=1`` forces pure Python, to compare the two or to
rule the accelerator out. The choice is made once, at import.
"""

from __future__ import annotations

from types import ModuleType
from typing import Final

from pytest_replay.native_switch import load_extension

INTERFACE: Final = 3
"""The contract with ``_speedups.c`` this Python expects (its ``INTERFACE``)."""


def _load() -> tuple[ModuleType | None, str]:
    return load_extension("pytest_replay.capture._speedups", INTERFACE, "the C accelerator")


SPEEDUPS, WHY_PURE = _load()
"""The accelerator module, or None; and if None, why."""


def refuse(reason: str) -> None:
    """Run pure Python from now on (the accelerator could not start): wrappers made
    before keep working, later ones are Python."""
    global SPEEDUPS, WHY_PURE
    SPEEDUPS, WHY_PURE = None, reason


def implementation() -> str:
    """What runs ``@traced`` calls in this process, for benchmarks and bug reports."""
    return "C accelerator" if SPEEDUPS is not None else f"pure Python ({WHY_PURE})"
