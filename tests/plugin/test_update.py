"""``--replay-update``: baselines beside the trace, strict afterwards, refusals, orphans."""

from __future__ import annotations

import orjson
import pytest

from tests.plugin.replay_project import (
    FIXED_SHOP,
    HEALTHY,
    HEALTHY_2,
    INCIDENT,
    REGRESSED_SHOP,
    SHOP,
    ReplayProject,
)

BASELINES = ".replay-baselines"


def baseline_files(project: ReplayProject) -> list[str]:
    return sorted(str(p.relative_to(project.traces)) for p in project.traces.rglob("*.json"))


@pytest.fixture
def fixed(project: ReplayProject) -> ReplayProject:
    """The incident and two healthy requests recorded, then the bug fixed."""
    project.record("incident_abc123.jsonl", [INCIDENT])
    project.record("healthy.jsonl", [HEALTHY, HEALTHY_2])
    project.write_app(FIXED_SHOP)
    return project


def test_update_writes_baselines_beside_the_trace_and_never_touches_it(
        fixed: ReplayProject, xdist_args: tuple[str, ...]) -> None:
    evidence = (fixed.traces / "incident_abc123.jsonl").read_bytes()
    result = fixed.run_with(xdist_args, "--replay-update")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["--replay-update: wrote 3 baseline(s)"])
    assert (fixed.traces / "incident_abc123.jsonl").read_bytes() == evidence
    assert baseline_files(fixed) == [
        f"{BASELINES}/healthy.jsonl/process_order[req_ok4242].json",
        f"{BASELINES}/healthy.jsonl/process_order[req_ok777].json",
        f"{BASELINES}/incident_abc123.jsonl/process_order[req_abc123].json",
    ]
    document = orjson.loads((fixed.traces / BASELINES / "incident_abc123.jsonl"
                             / "process_order[req_abc123].json").read_bytes())
    assert document["format"] == "telemetry-replay-baseline"
    exits = [e for e in document["events"] if e["event_type"] == "function_exit"]
    assert {"function_name": "calculate_tax", "return_value": 8.0}.items() <= exits[-2].items()
    collected = fixed.run("--collect-only", "-q")
    collected.stdout.fnmatch_lines(["3 tests collected*"])  # baselines are never traces
    fixed.run().assert_outcomes(passed=3)
    assert (fixed.traces / "incident_abc123.jsonl").read_bytes() == evidence


def test_after_update_the_incident_is_a_strict_regression_test(fixed: ReplayProject) -> None:
    other_fix = SHOP.replace(
        "    discount_amount = sum(discounts) / discount_count\n",
        "    discount_amount = sum(discounts) / discount_count if discount_count else 1.0\n")
    fixed.write_app(other_fix)
    fixed.run().assert_outcomes(passed=3)  # without a baseline, any fix passes
    fixed.write_app(FIXED_SHOP)
    fixed.run("--replay-update").assert_outcomes(passed=3)
    fixed.write_app(other_fix)
    result = fixed.run()
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([
        "assert replay of process_order[[]req_abc123[]] == its baseline",
        "  first divergent event #* at process_order > calculate_tax: return_value: recorded 8.0,"
        " now 7.92",
        "*compared against the accepted baseline (--replay-update)",
    ])


def test_a_partial_k_run_refuses_and_judges_items_as_usual(project: ReplayProject) -> None:
    project.record("healthy.jsonl", [HEALTHY, HEALTHY_2])
    project.write_app(REGRESSED_SHOP)
    result = project.run("--replay-update", "-k", "ok777")
    result.assert_outcomes(failed=1, deselected=1)
    result.stdout.fnmatch_lines([
        "--replay-update refused: -k 'ok777' selects only some items; no baseline was written",
    ])
    assert baseline_files(project) == []


def test_update_refuses_when_an_item_errors(fixed: ReplayProject) -> None:
    fixed.pytester.makepyfile(test_other="""
        import pytest

        @pytest.fixture
        def broken():
            raise RuntimeError("setup failed")

        def test_uses_it(broken):
            pass
    """)
    result = fixed.run("--replay-update", "traces", "test_other.py")
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["--replay-update refused: 1 item(s) errored; no baseline was "
                                 "written"])
    assert baseline_files(fixed) == []


def test_update_refuses_when_a_trace_cannot_be_read(fixed: ReplayProject) -> None:
    fixed.write_trace("broken.jsonl", ['{"event_type": "function_entry", "correlation_id": '])
    result = fixed.run("--replay-update")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["--replay-update refused: 1 item(s) errored*"])
    assert baseline_files(fixed) == []


def test_an_incident_that_still_reproduces_gets_no_baseline(project: ReplayProject) -> None:
    project.record("incident_abc123.jsonl", [INCIDENT])
    project.record("healthy.jsonl", [HEALTHY])
    result = project.run("--replay-update")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "--replay-update: wrote 1 baseline(s)",
        "not updated: traces/incident_abc123.jsonl::process_order[[]req_abc123[]] (the incident "
        "still reproduces*",
    ])
    assert baseline_files(project) == [f"{BASELINES}/healthy.jsonl/process_order[req_ok777].json"]


def test_orphaned_baselines_are_reported_then_removed_by_a_full_update(
        fixed: ReplayProject) -> None:
    fixed.run("--replay-update").assert_outcomes(passed=3)
    fixed.record("healthy.jsonl", [HEALTHY])  # req_ok4242 is gone from the trace
    (fixed.traces / "incident_abc123.jsonl").unlink()  # and the incident file too
    result = fixed.run()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines_random([
        "orphaned baseline: */healthy.jsonl/process_order[[]req_ok4242[]].json (its trace or "
        "root is gone; --replay-update on a full run removes it)",
        "orphaned baseline: */incident_abc123.jsonl/process_order[[]req_abc123[]].json*",
    ])
    cleaned = fixed.run("--replay-update")
    cleaned.stdout.fnmatch_lines(["--replay-update: wrote 1 baseline(s), removed 2 orphaned"])
    assert baseline_files(fixed) == [f"{BASELINES}/healthy.jsonl/process_order[req_ok777].json"]
    fixed.run().stdout.no_fnmatch_line("*orphaned baseline*")


def test_a_deliberate_change_is_accepted_by_update(project: ReplayProject) -> None:
    project.record("healthy.jsonl", [HEALTHY])
    project.write_app(REGRESSED_SHOP)
    project.run().assert_outcomes(failed=1)
    result = project.run("--replay-update")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        "ACCEPTED *traces/healthy.jsonl::process_order[[]req_ok777[]]: first divergent event #5*",
        "--replay-update: wrote 1 baseline(s)",
    ])
    project.run().assert_outcomes(passed=1)
    project.write_app(SHOP)  # back to the recorded behaviour: now that is the regression
    project.run().assert_outcomes(failed=1)


def test_an_unreadable_baseline_fails_its_item_naming_the_file(project: ReplayProject) -> None:
    project.record("healthy.jsonl", [HEALTHY, HEALTHY_2])
    project.run("--replay-update").assert_outcomes(passed=2)
    broken = project.traces / BASELINES / "healthy.jsonl" / "process_order[req_ok777].json"
    broken.write_text('{"format": "something else"}', encoding="utf-8")
    result = project.run()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        f"{broken}: not a telemetry-replay baseline (field 'format')",
    ])
    result.stdout.no_fnmatch_line("*Traceback*")
