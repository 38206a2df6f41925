"""Times and durations as people read them, from integer nanoseconds.

Every function accepts anything (a trace may hold a string where a number
belongs) and answers with a placeholder rather than raising.
"""

from __future__ import annotations

import datetime as _dt
import functools
import math
from typing import Final

UTC: Final = _dt.timezone.utc
NO_CLOCK: Final = "--:--:--.---"
_NS: Final = 1_000_000_000


def as_ns(value: object) -> int | None:
    """``value`` if it is an integer (not a bool), else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _datetime(ns: int, tz: _dt.tzinfo | None) -> _dt.datetime | None:
    try:
        return _dt.datetime.fromtimestamp(ns // _NS, tz)
    except (OverflowError, OSError, ValueError):
        return None


def clock(ns: object, tz: _dt.tzinfo | None = UTC) -> str:
    """``14:23:45.123`` (milliseconds) for a ``timestamp_ns``; ``tz=None`` is local time."""
    value = as_ns(ns)
    if value is None:
        return NO_CLOCK
    second = _second(value // _NS, tz)
    if second is None:
        return "??:??:??.???"
    return f"{second}.{(value % _NS) // 1_000_000:03d}"


@functools.lru_cache(maxsize=256)
def _second(seconds: int, tz: _dt.tzinfo | None) -> str | None:
    # a trace's events share few distinct seconds: format each once
    try:
        return f"{_dt.datetime.fromtimestamp(seconds, tz):%H:%M:%S}"
    except (OverflowError, OSError, ValueError):
        return None


def full_timestamp(ns: object, tz: _dt.tzinfo | None = UTC) -> str:
    """``2025-10-31 14:23:45.123456789 UTC``: the date, the time to the nanosecond, the zone."""
    value = as_ns(ns)
    if value is None:
        return "an unknown time"
    moment = _datetime(value, tz)
    if moment is None:
        return f"timestamp_ns={value} (out of range)"
    zone = moment.tzname() if tz is not None else None
    text = f"{moment:%Y-%m-%d %H:%M:%S}.{value % _NS:09d}"
    return f"{text} {zone}" if zone else text


def duration(ns: object, *, unicode: bool = True) -> str:
    """``850 ns``, ``119.6 µs``, ``12 ms``, ``3.2 s``, ``2 min 5 s``."""
    value = as_ns(ns)
    if value is None:
        if isinstance(ns, float) and math.isfinite(ns) and abs(ns) < 1e30:
            value = int(ns)
        else:
            return "?"
    sign = "-" if value < 0 else ""
    value = abs(value)
    if value < 1_000:
        return f"{sign}{value} ns"
    if value < 1_000_000:
        micro = "µs" if unicode else "us"
        return f"{sign}{value / 1_000:.1f} {micro}"
    if value < _NS:
        millis = value / 1_000_000
        return f"{sign}{millis:.1f} ms" if millis < 10 else f"{sign}{millis:.0f} ms"
    if value < 60 * _NS:
        return f"{sign}{value / _NS:.1f} s"
    minutes, rest = divmod(value, 60 * _NS)
    return f"{sign}{minutes} min {rest / _NS:.0f} s"


def percent(part: int, whole: int) -> str:
    """``64%`` (``<1%`` for a tiny non-zero share, ``?`` without a whole)."""
    if whole <= 0:
        return "?"
    share = 100.0 * part / whole
    if 0 < share < 1:
        return "<1%"
    return f"{share:.0f}%"
