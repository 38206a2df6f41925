"""Helpers shared by the render tests: hand-made events at the seed's moment."""

from __future__ import annotations

import re
from typing import Any

from pytest_replay.format.events import Event

T0 = 1_761_920_625_123_000_000
"""2025-10-31 14:23:45.123 UTC, the seed's moment."""
MS = 1_000_000
_CLOCK = re.compile(r"\[\d\d:\d\d:\d\d\.\d\d\d\]")


def ev(kind: str, at_ms: float | None = 0, **fields: Any) -> Event:
    """One event of type ``kind`` at ``T0 + at_ms`` milliseconds (None: no timestamp)."""
    event: Event = {"event_type": kind}
    if at_ms is not None:
        event["timestamp_ns"] = T0 + int(at_ms * MS)
    event.update(fields)
    return event


def untimed(text: str) -> str:
    """``text`` with every ``[hh:mm:ss.mmm]`` replaced by ``[T]`` (recorded runs vary)."""
    return _CLOCK.sub("[T]", text)
