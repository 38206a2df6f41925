"""The one switch that turns off every C extension of the package, for comparing or ruling C out.

The capture accelerator (``capture/_speedups_loader.py``) and the reader's C
path (``format/native.py``) both ask here, so one variable governs both.
"""

from __future__ import annotations

import os
from typing import Final

PURE_PYTHON_ENV: Final = "TELEMETRY_REPLAY_PURE_PYTHON"
"""Set (to anything but ``0``) to run pure Python only."""


def pure_python_requested() -> bool:
    """Whether ``TELEMETRY_REPLAY_PURE_PYTHON`` asks for pure Python (read at each import)."""
    return os.environ.get(PURE_PYTHON_ENV, "") not in ("", "0")
