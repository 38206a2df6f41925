"""Durations and moments as people type them: ``5s``, ``250ms``, ``2h``, ``2025-10-31 02:00-03:00``.

Times without a zone are UTC. A zone is ``Z``, ``UTC``, an offset
(``+02:00``, ``-0500``) or an IANA name (``Europe/Paris``).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pytest_replay.format.isotime import parse_datetime

_UNITS: Final = {
    "ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
    "m": 60_000_000_000, "min": 60_000_000_000, "h": 3_600_000_000_000,
    "d": 86_400_000_000_000,
}
_DURATION: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s|min|m|h|d)?\s*$")
_ZONE: Final = r"(?P<zone>Z|UTC|[+-]\d{2}:?\d{2}|[A-Za-z_]+(?:/[A-Za-z0-9_+-]+)+)"
_CLOCK: Final = r"\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?"
_DATE: Final = r"\d{4}-\d{2}-\d{2}"
_RANGE: Final = re.compile(
    rf"^\s*(?P<date>{_DATE})[ T](?P<start>{_CLOCK})\s*(?:-|\u2013|\.\.|/|to)\s*"
    rf"(?:(?P<date2>{_DATE})[ T])?(?P<end>{_CLOCK})\s*{_ZONE}?\s*$"
)
_INSTANT: Final = re.compile(rf"^\s*(?P<stamp>{_DATE}(?:[ T]{_CLOCK})?)\s*{_ZONE}?\s*$")
_RELATIVE: Final = re.compile(r"^\s*(\d+(?:\.\d+)?\s*(?:ns|us|µs|ms|s|min|m|h|d))(?:\s+ago)?\s*$")
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


class TimeSpecError(ValueError):
    """A duration or time the user typed that cannot be read; says what would be valid."""


def parse_duration(text: str) -> int:
    """Nanoseconds in ``5s``, ``1.5s``, ``250ms``, ``2m``, ``1h`` (a bare number is seconds)."""
    match = _DURATION.match(text)
    if match is None:
        raise TimeSpecError(f"not a duration: {text!r} (try 5s, 250ms, 2m, 1h)")
    number, unit = match.groups()
    return int(float(number) * _UNITS[unit or "s"])


def zone_of(text: str | None) -> dt.tzinfo:
    """The time zone named by ``text`` (UTC when None)."""
    if text is None or text in ("Z", "UTC"):
        return dt.timezone.utc
    offset = re.fullmatch(r"([+-])(\d{2}):?(\d{2})", text)
    if offset is not None:
        sign = 1 if offset.group(1) == "+" else -1
        delta = dt.timedelta(hours=int(offset.group(2)), minutes=int(offset.group(3)))
        return dt.timezone(sign * delta)
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise TimeSpecError(f"unknown time zone {text!r} (try UTC, +02:00 or Europe/Paris)"
                            ) from None


def to_ns(moment: dt.datetime) -> int:
    """Nanoseconds since the epoch of an aware datetime, exactly."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def parse_instant(text: str, now_ns: int) -> int:
    """A moment: ISO date or date-time (UTC unless zoned), or a duration ago (``2h``)."""
    relative = _RELATIVE.match(text)
    if relative is not None:
        return now_ns - parse_duration(relative.group(1))
    match = _INSTANT.match(text)
    if match is None:
        raise TimeSpecError(f"not a time: {text!r} (try 2025-10-31T02:00, "
                            "'2025-10-31 02:00 +02:00' or 2h for two hours ago)")
    stamp = match.group("stamp").replace(" ", "T")
    try:
        moment = parse_datetime(stamp)
    except ValueError as exc:
        raise TimeSpecError(f"not a time: {text!r} ({exc})") from None
    return to_ns(moment.replace(tzinfo=zone_of(match.group("zone"))))


def parse_range(text: str) -> tuple[int, int]:
    """``[since, until)`` of ``2025-10-31 02:00-03:00``; an end before the start is the next day."""
    match = _RANGE.match(text)
    if match is None:
        raise TimeSpecError(f"not a time range: {text!r} (try '2025-10-31 02:00-03:00', "
                            "'2025-10-31 22:00-02:00 Europe/Paris' or "
                            "'2025-10-31T02:00/2025-11-01T02:00')")
    zone = zone_of(match.group("zone"))
    try:
        start = parse_datetime(f"{match.group('date')}T{_padded(match.group('start'))}")
        end_date = match.group("date2") or match.group("date")
        end = parse_datetime(f"{end_date}T{_padded(match.group('end'))}")
    except ValueError as exc:
        raise TimeSpecError(f"not a time range: {text!r} ({exc})") from None
    if end <= start and match.group("date2") is None:
        end += dt.timedelta(days=1)
    if end <= start:
        raise TimeSpecError(f"time range ends before it starts: {text!r}")
    return to_ns(start.replace(tzinfo=zone)), to_ns(end.replace(tzinfo=zone))


def _padded(clock: str) -> str:
    return clock if len(clock.split(":", maxsplit=1)[0]) == 2 else "0" + clock


def format_ns(value: int) -> str:
    """A timestamp for messages: ISO 8601 in UTC."""
    moment = _EPOCH + dt.timedelta(microseconds=value // 1_000)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
