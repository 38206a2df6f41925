"""Each filter, their combinations, and the same answer whether ids or filters drive the scan."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_replay.extract import Criteria
from pytest_replay.extract.criteria import compile_pattern
from pytest_replay.extract.timespec import parse_range
from tests.extract.extractsupport import (
    SECOND,
    START_NS,
    Request,
    request,
    roots_in,
    run_cli,
    run_engine,
    write,
)

MINUTE = 60 * SECOND


def _corpus() -> list[Request]:
    return [
        request("r_ok", START_NS, user=1, variant="A", duration=50_000_000),
        request("r_fail", START_NS + 10 * MINUTE, user=2, variant="B", fail=True,
                duration=6 * SECOND),
        request("r_caught", START_NS + 70 * MINUTE, user=1, variant="B", fail=True,
                caught=True),
        request("r_cut", START_NS + 120 * MINUTE, user=3, fail=True, with_exit=False),
        request("r_slow", START_NS + 30 * MINUTE, service="billing", function="charge",
                duration=7 * SECOND),
        request("r_nodur", START_NS + 40 * MINUTE, duration=None, user="u-77"),
        request("r_args", START_NS + 50 * MINUTE, extra_args={"user_id": 42}),
        request("r_far", START_NS + 65 * MINUTE, parent="func_in_another_service",
                service="inventory", trace="t_far"),
    ]


ALL = ["r_ok", "r_fail", "r_caught", "r_cut", "r_slow", "r_nodur", "r_args", "r_far"]


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("filters") / "production.log"
    events = [event for req in _corpus() for event in req.events]
    return write(path, events)


def _general(log: Path, criteria: Criteria) -> list[str]:
    _report, out = run_engine([log], criteria)
    return roots_in(out)


def _by_id(log: Path, criteria: Criteria) -> list[str]:
    """Each root tried alone through the id path with the same filters."""
    chosen = []
    for root in ALL:
        fields = {**criteria.__dict__, "correlation_ids": (root,), "limit": None}
        _report, out = run_engine([log], Criteria(**fields))
        if roots_in(out):
            chosen.append(root)
    limit = criteria.limit
    return chosen if limit is None else chosen[:limit]


CASES: list[tuple[str, Criteria, list[str]]] = [
    ("everything", Criteria(), ALL),
    ("error: any error event", Criteria(error=True), ["r_fail", "r_caught", "r_cut"]),
    ("status error: ended in an error", Criteria(status="error"), ["r_fail", "r_cut"]),
    ("status ok", Criteria(status="ok"), ["r_ok", "r_caught", "r_slow", "r_nodur", "r_args",
                                          "r_far"]),
    ("pattern", Criteria(pattern=compile_pattern(r'"function_name":"charge"')), ["r_slow"]),
    ("pattern anchored per line", Criteria(pattern=compile_pattern(r"^\{.*ZeroDivision")),
     ["r_fail", "r_caught", "r_cut"]),
    ("user from context", Criteria(user_ids=("1",)), ["r_ok", "r_caught"]),
    ("user as text", Criteria(user_ids=("u-77",)), ["r_nodur"]),
    ("user from root args", Criteria(user_ids=("42",)), ["r_args"]),
    ("any of two users", Criteria(user_ids=("2", "3")), ["r_fail", "r_cut"]),
    ("variant", Criteria(variants=("B",)), ["r_fail", "r_caught"]),
    ("service", Criteria(services=("billing", "inventory")), ["r_slow", "r_far"]),
    ("function by name", Criteria(functions=("charge",)), ["r_slow"]),
    ("function by qualname", Criteria(functions=("Steps.step_1",)), ALL),
    ("function by module.qualname", Criteria(functions=("demo.shop.charge",)), ["r_slow"]),
    ("function by module:qualname", Criteria(functions=("demo.shop:Steps.step_0",)), ALL),
    ("min duration from root exit", Criteria(min_duration_ns=5 * SECOND),
     ["r_fail", "r_slow"]),
    ("min duration tiny: fallbacks count", Criteria(min_duration_ns=1_000),
     ["r_ok", "r_fail", "r_caught", "r_cut", "r_slow", "r_nodur", "r_args", "r_far"]),
    ("since", Criteria(since_ns=START_NS + 60 * MINUTE), ["r_caught", "r_cut", "r_far"]),
    ("until", Criteria(until_ns=START_NS + 30 * MINUTE), ["r_ok", "r_fail"]),
    ("time range", Criteria(since_ns=parse_range("2025-10-31 02:05-02:45")[0],
                            until_ns=parse_range("2025-10-31 02:05-02:45")[1]),
     ["r_fail", "r_slow", "r_nodur"]),
    ("limit", Criteria(limit=3), ["r_ok", "r_fail", "r_caught"]),
    ("error and user", Criteria(error=True, user_ids=("1",)), ["r_caught"]),
    ("status error and variant", Criteria(status="error", variants=("B",)), ["r_fail"]),
    ("status ok, slow, limit", Criteria(status="ok", min_duration_ns=SECOND, limit=1),
     ["r_slow"]),
    ("error, limit 2", Criteria(error=True, limit=2), ["r_fail", "r_caught"]),
    ("status error limit 1 skips undecided", Criteria(status="error", limit=1,
                                                     since_ns=START_NS + 60 * MINUTE),
     ["r_cut"]),
    ("nothing", Criteria(user_ids=("999",)), []),
]


@pytest.mark.parametrize(("criteria", "expected"), [(c, e) for _n, c, e in CASES],
                         ids=[name for name, _c, _e in CASES])
def test_filter(log: Path, criteria: Criteria, expected: list[str]) -> None:
    assert _general(log, criteria) == expected


@pytest.mark.parametrize(("criteria", "expected"), [(c, e) for _n, c, e in CASES[1:20:3]],
                         ids=[name for name, _c, _e in CASES[1:20:3]])
def test_id_path_agrees(log: Path, criteria: Criteria, expected: list[str]) -> None:
    assert _by_id(log, criteria) == expected


def test_trace_and_correlation_filters_combine(log: Path) -> None:
    assert _general(log, Criteria(trace_ids=("t_far",), correlation_ids=("r_far",))) == ["r_far"]
    assert _general(log, Criteria(trace_ids=("t_far",), correlation_ids=("r_ok",))) == []
    assert _general(log, Criteria(trace_ids=("t_far",), error=True)) == []


def test_cli_filters_with_time_zone_and_now(log: Path) -> None:
    # 03:05 to 03:45 in UTC+1 is 02:05 to 02:45 UTC.
    zoned = run_cli(log, "--time-range", "2025-10-31 03:05-03:45 +01:00", "-q")
    assert zoned.returncode == 0, zoned.stderr
    assert roots_in(_events(zoned.stdout)) == ["r_fail", "r_slow", "r_nodur"]
    last_hour = run_cli(log, "--last-hour", "--now", "2025-10-31T03:15", "--error", "-q")
    assert roots_in(_events(last_hour.stdout)) == ["r_caught"]
    since = run_cli(log, "--since", "50m", "--now", "2025-10-31T03:00Z", "--until",
                    "2025-10-31T02:55", "-q")
    assert roots_in(_events(since.stdout)) == ["r_fail", "r_slow", "r_nodur", "r_args"]


def test_cli_status_success_is_ok_and_min_duration_parses(log: Path) -> None:
    result = run_cli(log, "--status", "success", "--min-duration", "6.5s", "-q")
    assert roots_in(_events(result.stdout)) == ["r_slow"]


@pytest.mark.parametrize("arguments", [
    ["--time-range", "2025-10-31 02:00"],
    ["--since", "yesterday-ish"],
    ["--min-duration", "fast"],
    ["--limit", "0"],
    ["--pattern", "(unclosed"],
    ["--last-hour", "--since", "2h"],
    ["--time-range", "2025-10-31 02:00-03:00 Mars/Olympus"],
])
def test_cli_refuses_bad_filters(log: Path, arguments: list[str]) -> None:
    result = run_cli(log, *arguments)
    assert result.returncode == 2
    assert b"error:" in result.stderr
    assert result.stdout == b""


def _events(data: bytes) -> list[dict[str, object]]:
    from tests.extract.extractsupport import events_of

    return events_of(data)
