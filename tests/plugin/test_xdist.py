"""pytest-xdist: verdicts reach the controller; a bad trace fails only its own items."""

from __future__ import annotations

from tests.plugin.replay_project import HEALTHY, HEALTHY_2, INCIDENT, ReplayProject


def test_a_mixed_directory_under_two_workers(project: ReplayProject) -> None:
    project.record("incident_abc123.jsonl", [INCIDENT])
    project.record("healthy.jsonl", [HEALTHY, HEALTHY_2])
    project.write_trace("corrupt.jsonl", ['{"event_type": "function_entry", "correlation_id": '])
    marker = project.path / "called"
    project.write_trace("hostile.jsonl", [{
        "event_type": "function_entry", "correlation_id": "h1", "module": "os",
        "qualname": "system", "function_name": "system",
        "args": {"command": f"touch {marker}"}}])
    result = project.run_subprocess("-n", "2", "-rf")
    result.assert_outcomes(passed=2, failed=3)
    assert result.ret == 1
    result.stdout.no_fnmatch_line("*INTERNALERROR*")
    result.stdout.fnmatch_lines_random([
        "REPRODUCED *traces/incident_abc123.jsonl::process_order[[]req_abc123[]]: incident "
        "reproduces: ZeroDivisionError in calculate_tax*",
        "NOT_REPLAYABLE *traces/hostile.jsonl::system[[]h1[]]: refused: os:system: module 'os' "
        "is outside replay_targets*",
        "*/traces/corrupt.jsonl:1:*",
        "FAILED traces/corrupt.jsonl::trace - *",
    ])
    assert not marker.exists()


def test_lf_reruns_only_the_failed_root_under_xdist(project: ReplayProject) -> None:
    project.record("incident_abc123.jsonl", [INCIDENT])
    project.record("healthy.jsonl", [HEALTHY, HEALTHY_2])
    project.run().assert_outcomes(passed=2, failed=1)  # writes the cache --lf reads
    rerun = project.run_subprocess("-n", "2", "--lf")
    rerun.assert_outcomes(failed=1)
    rerun.stdout.fnmatch_lines(["2 workers [[]1 item[]]"])
