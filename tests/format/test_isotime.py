"""ISO date-times read alike on every supported Python (3.10's fromisoformat reads less)."""

from __future__ import annotations

import datetime as dt

import pytest

from pytest_replay.format.isotime import parse_datetime
from pytest_replay.replay.compare import clock_readings_in

UTC = dt.timezone.utc
PLUS2 = dt.timezone(dt.timedelta(hours=2))
MINUS0530 = dt.timezone(-dt.timedelta(hours=5, minutes=30))


@pytest.mark.parametrize(("text", "expected"), [
    ("2025-10-31T02:30:15", dt.datetime(2025, 10, 31, 2, 30, 15)),
    ("2025-10-31T02:30:15Z", dt.datetime(2025, 10, 31, 2, 30, 15, tzinfo=UTC)),
    ("2025-10-31 02:30Z", dt.datetime(2025, 10, 31, 2, 30, tzinfo=UTC)),
    ("2025-10-31T02:30:15.5", dt.datetime(2025, 10, 31, 2, 30, 15, 500000)),
    ("2025-10-31T02:30:15,5", dt.datetime(2025, 10, 31, 2, 30, 15, 500000)),
    ("2025-10-31T02:30:15.1234", dt.datetime(2025, 10, 31, 2, 30, 15, 123400)),
    ("2025-10-31T02:30:15.123456789", dt.datetime(2025, 10, 31, 2, 30, 15, 123456)),
    ("2025-10-31T02:30:15.123Z", dt.datetime(2025, 10, 31, 2, 30, 15, 123000, tzinfo=UTC)),
    ("2025-10-31T02:30:15+0200", dt.datetime(2025, 10, 31, 2, 30, 15, tzinfo=PLUS2)),
    ("2025-10-31T02:30:15+02", dt.datetime(2025, 10, 31, 2, 30, 15, tzinfo=PLUS2)),
    ("2025-10-31T02:30:15.5-05:30",
     dt.datetime(2025, 10, 31, 2, 30, 15, 500000, tzinfo=MINUS0530)),
])
def test_extended_forms_read_on_every_version(text: str, expected: dt.datetime) -> None:
    moment = parse_datetime(text)
    assert moment == expected
    assert moment.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize("text", ["not a time", "2025-10-31T02:30:15z", "2025-13-31T02:30:15Z",
                                  "2025-10-31T02:30:15+2"])
def test_unreadable_text_raises_value_error(text: str) -> None:
    with pytest.raises(ValueError):  # no match=: the message differs between versions
        parse_datetime(text)


def test_a_z_clock_reading_inside_the_recorded_window_is_tolerated() -> None:
    recorded = dt.datetime(2025, 10, 31, 2, 30, 15, tzinfo=UTC)
    start = int(recorded.timestamp()) * 1_000_000_000
    window = (start, start + 1_000_000)
    assert clock_readings_in(window, "2025-10-31T02:30:15.5Z", "2025-10-31T02:30:15.25Z")
    assert not clock_readings_in(window, "2025-10-31T02:30:15.5Z", "2025-10-31T05:30:15Z")
