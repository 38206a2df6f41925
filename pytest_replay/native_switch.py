"""How the package's optional C extensions load, and the one switch that turns them all off.

The capture accelerator (``capture/_speedups_loader.py``), capture's value
walker (``capture/textscan.py``) and the reader's C path (``format/native.py``)
all load through :func:`load_extension`, so one variable governs them and a
missing, broken or stale build falls back to Python the same way for each.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Final

PURE_PYTHON_ENV: Final = "TELEMETRY_REPLAY_PURE_PYTHON"
"""Set (to anything but ``0``) to run pure Python only."""


def pure_python_requested() -> bool:
    """Whether ``TELEMETRY_REPLAY_PURE_PYTHON`` asks for pure Python (read at each import)."""
    return os.environ.get(PURE_PYTHON_ENV, "") not in ("", "0")


def load_extension(name: str, interface: int, what: str) -> tuple[ModuleType | None, str]:
    """The extension module ``name`` if it may run here, else None and why, in words.

    Not built (no compiler at install, another Python), failing to start, or
    built from another version of its source (``INTERFACE`` differs): the
    package runs its Python code instead, which behaves the same, only slower.
    """
    if pure_python_requested():
        return None, f"{PURE_PYTHON_ENV} is set"
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        return None, f"{what} is not built ({exc})"
    except Exception as exc:  # a build that fails to start must cost speed, never the import
        return None, f"{what} failed to load: {type(exc).__name__}: {exc}"
    if getattr(module, "INTERFACE", None) != interface:
        return None, f"{what} was built from another version: reinstall to rebuild it"
    return module, ""
