"""The failure report: first divergent event, its call path, recorded vs now, context, -vv."""

from __future__ import annotations

import orjson
import pytest

from tests.plugin.replay_project import HEALTHY, REGRESSED_SHOP, RUN_ARGS, ReplayProject

DIVERGENCE = [
    "assert replay of process_order[[]req_ok777[]] == the recording",
    "  first divergent event #5 at process_order > calculate_tax > active_discounts: "
    "return_value[[]1[]]: recorded 10.0, now 20.0",
    "  trace: *traces/healthy.jsonl:* (process_order[[]req_ok777[]])",
    "    recorded (trace line *): EXIT active_discounts -> [[]5.0, 10.0[]]",
    "    now: * EXIT active_discounts -> [[]5.0, 20.0[]]",
    "    difference: return_value[[]1[]]: recorded 10.0, now 20.0",
    "    matched just before:",
    "      SET tax_rate = 0.08",
    "      ENTER calculate_tax(amount=200.0, rate=0.08)",
    "      ENTER active_discounts(amount=200.0)",
    "  (-vv shows every recorded and replayed event)",
]


@pytest.fixture
def regressed(project: ReplayProject) -> ReplayProject:
    """A healthy request recorded, then the code changed under it."""
    project.record("healthy.jsonl", [HEALTHY])
    project.write_app(REGRESSED_SHOP)
    return project


def test_the_report_shows_where_what_and_the_context_before(regressed: ReplayProject) -> None:
    result = regressed.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(DIVERGENCE, consecutive=True)
    result.stdout.no_fnmatch_line("*recorded events:*")
    result.stdout.no_fnmatch_line("*truncated*")
    result.stdout.fnmatch_lines([
        "DIVERGED *traces/healthy.jsonl::process_order[[]req_ok777[]]: first divergent event #5 "
        "at process_order > calculate_tax > active_discounts*",
    ])


def test_vv_adds_every_recorded_and_replayed_event(regressed: ReplayProject) -> None:
    result = regressed.run("-vv")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        *DIVERGENCE[:-1],
        "  recorded events:",
        "    ENTER process_order(order_id=777, user_id=1001)",
        "    SET tax_rate = 0.08",
        "    ENTER calculate_tax(amount=200.0, rate=0.08)",
        "    ENTER active_discounts(amount=200.0)",
        "    EXIT active_discounts -> [[]5.0, 10.0[]]",
        "    EXIT calculate_tax -> 15.4",
        "    EXIT process_order -> *",
        "  replayed events:",
        "    ENTER process_order(order_id=777, user_id=1001)",
        "*",
        "    EXIT active_discounts -> [[]5.0, 20.0[]]",
        "    EXIT calculate_tax -> 15.0",
    ])


def test_the_item_points_at_the_roots_line_in_the_trace(regressed: ReplayProject) -> None:
    path = regressed.traces / "healthy.jsonl"
    line = next(number for number, text in enumerate(path.read_bytes().splitlines(), 1)
                if orjson.loads(text)["event_type"] == "function_entry")
    items, _ = regressed.pytester.inline_genitems(*RUN_ARGS)
    (item,) = items
    assert item.nodeid == "traces/healthy.jsonl::process_order[req_ok777]"
    reported_path, lineno, domain = item.reportinfo()
    assert (reported_path, lineno) == (path, line - 1)  # pytest counts lines from 0
    assert domain == f"healthy.jsonl:{line} process_order[req_ok777]"
    assert item.location == ("traces/healthy.jsonl", line - 1, domain)
    result = regressed.run()
    result.stdout.fnmatch_lines([f"_* healthy.jsonl:{line} process_order[[]req_ok777[]] _*"])


def test_the_explanation_comes_from_pytest_assertrepr_compare(regressed: ReplayProject) -> None:
    """A plain test asserting a replay verdict gets the same explanation from the hook."""
    regressed.pytester.makepyfile(test_verdict="""
        from pytest_replay.assertion import check

        def test_replayed_from_a_test(replay_trace):
            (result,) = replay_trace("traces/healthy.jsonl")
            check(result)
    """)
    result = regressed.run("test_verdict.py")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "E       *assert replay of process_order[[]req_ok777[]] == the recording",
        "E         first divergent event #5 at process_order > calculate_tax > active_discounts:*",
    ])


def test_the_result_hook_sees_every_verdict(regressed: ReplayProject) -> None:
    regressed.record("incident_abc123.jsonl", [("req_abc123", "process_order", (12345, 67890))])
    regressed.pytester.makeconftest("""
        from pathlib import Path

        def pytest_replay_result(item, result):
            with Path("verdicts.txt").open("a") as out:
                out.write(f"{item.name} {result.status}\\n")
    """)
    regressed.run().assert_outcomes(failed=2)
    verdicts = (regressed.path / "verdicts.txt").read_text().splitlines()
    assert sorted(verdicts) == ["process_order[req_abc123] reproduced",
                                "process_order[req_ok777] diverged"]
