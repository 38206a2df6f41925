"""Which implementation runs ``@traced``'s hot path: the C accelerator when built, else Python.

The accelerator (``_speedups.c``) is an optional extension: an install without a
compiler gets the pure-Python wrapper, which behaves the same, only slower.
``TELEMETRY_REPLAY_PURE_PYTHON=1`` forces pure Python, to compare the two or to
rule the accelerator out. The choice is made once, at import.
"""

from __future__ import annotations

from types import ModuleType
from typing import Final

from pytest_replay.native_switch import PURE_PYTHON_ENV, pure_python_requested

INTERFACE: Final = 3
"""The contract with ``_speedups.c`` this Python expects (its ``INTERFACE``)."""


def _load() -> tuple[ModuleType | None, str]:
    if pure_python_requested():
        return None, f"{PURE_PYTHON_ENV} is set"
    try:
        from pytest_replay.capture import _speedups
    except ImportError as exc:  # not built (no compiler at install), or built for another Python
        return None, f"the C accelerator is not built ({exc})"
    except Exception as exc:  # a build that fails to initialise must cost speed, never the import
        return None, f"the C accelerator failed to load: {type(exc).__name__}: {exc}"
    if getattr(_speedups, "INTERFACE", None) != INTERFACE:  # left over from an older source
        return None, "the C accelerator was built from another version: reinstall to rebuild it"
    return _speedups, ""


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
