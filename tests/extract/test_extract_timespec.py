"""Durations and times as people type them."""

from __future__ import annotations

import datetime as dt

import pytest

from pytest_replay.extract.timespec import (
    TimeSpecError,
    format_ns,
    parse_duration,
    parse_instant,
    parse_range,
    to_ns,
)

UTC = dt.timezone.utc


def _ns(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0,
        micro: int = 0) -> int:
    return to_ns(dt.datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC))


@pytest.mark.parametrize(("text", "expected"), [
    ("5s", 5_000_000_000), ("1.5s", 1_500_000_000), ("250ms", 250_000_000), ("2m", 120 * 10**9),
    ("1h", 3600 * 10**9), ("500us", 500_000), ("7", 7 * 10**9), (" 3 min ", 180 * 10**9),
])
def test_durations(text: str, expected: int) -> None:
    assert parse_duration(text) == expected


def test_ranges() -> None:
    assert parse_range("2025-10-31 02:00-03:00") == (_ns(2025, 10, 31, 2), _ns(2025, 10, 31, 3))
    assert parse_range("2025-10-31 23:30-00:30") == (_ns(2025, 10, 31, 23, 30),
                                                     _ns(2025, 11, 1, 0, 30))
    assert parse_range("2025-10-31 03:00-03:00") == (_ns(2025, 10, 31, 3), _ns(2025, 11, 1, 3))
    assert parse_range("2025-10-31T02:00/2025-11-02T02:00Z") == (_ns(2025, 10, 31, 2),
                                                                _ns(2025, 11, 2, 2))
    assert parse_range("2025-10-31 03:00 - 04:00 +01:00") == (_ns(2025, 10, 31, 2),
                                                             _ns(2025, 10, 31, 3))
    # Paris is UTC+1 on 2025-10-31 (summer time ended on the 26th).
    assert parse_range("2025-10-31 9:00-10:00 Europe/Paris")[0] == _ns(2025, 10, 31, 8)


def test_instants() -> None:
    now = _ns(2025, 10, 31, 3)
    assert parse_instant("2025-10-31", now) == _ns(2025, 10, 31)
    assert parse_instant("2025-10-31T02:30:15.5", now) == _ns(2025, 10, 31, 2, 30, 15, 500000)
    assert parse_instant("2h", now) == _ns(2025, 10, 31, 1)
    assert parse_instant("90m ago", now) == _ns(2025, 10, 31, 1, 30)
    assert parse_instant("2025-10-31 04:00 -0500", now) == _ns(2025, 10, 31, 9)
    assert format_ns(_ns(2025, 10, 31, 2, 0, 1)) == "2025-10-31T02:00:01.000Z"


@pytest.mark.parametrize("text", ["2025-10-31", "02:00-03:00",
                                  "2025-13-31 02:00-03:00", "2025-10-31T02:00/2025-10-30T02:00"])
def test_bad_ranges_say_what_would_do(text: str) -> None:
    with pytest.raises(TimeSpecError):
        parse_range(text)


@pytest.mark.parametrize("text", ["soon", "5 parsecs", "-5s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(TimeSpecError, match="try 5s"):
        parse_duration(text)
