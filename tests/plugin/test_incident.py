"""Incident semantics in real pytest runs: reproduces, fixed, new error, zero false alarms."""

from __future__ import annotations

import pytest

from tests.plugin.replay_project import (
    BUG_LINE,
    BUG_LINENO,
    FIXED_SHOP,
    HEALTHY,
    HEALTHY_2,
    INCIDENT,
    SHOP,
    TAGS,
    ReplayProject,
)

SEED_LINES = [
    '{"event_type": "function_entry", "timestamp_ns": 1698765432123456789, "function_name": '
    '"process_order", "args": {"order_id": 12345, "user_id": 67890}, "correlation_id": '
    '"req_abc123"}',
    '{"event_type": "variable_change", "timestamp_ns": 1698765432123567890, "variable_name": '
    '"tax_rate", "value": 0.08, "correlation_id": "req_abc123"}',
    '{"event_type": "function_entry", "timestamp_ns": 1698765432124000000, "function_name": '
    '"calculate_tax", "args": {"amount": 100.0, "rate": 0.08}, "parent_correlation_id": '
    '"req_abc123", "correlation_id": "func_xyz789"}',
    '{"event_type": "error", "timestamp_ns": 1698765432124100000, "error_type": '
    '"ZeroDivisionError", "message": "division by zero", "correlation_id": "func_xyz789"}',
    '{"event_type": "function_exit", "timestamp_ns": 1698765432124200000, "function_name": '
    '"calculate_tax", "error": true, "correlation_id": "func_xyz789"}',
]
"""The seed document's example trace, line for line."""


def record_demo(project: ReplayProject) -> None:
    project.record("incident_abc123.jsonl", [INCIDENT])
    project.record("healthy.jsonl", [HEALTHY, HEALTHY_2])


def test_the_incident_reproduces_and_healthy_traces_pass(project: ReplayProject,
                                                         xdist_args: tuple[str, ...]) -> None:
    record_demo(project)
    result = project.run_with(xdist_args)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([
        f"*incident reproduces: ZeroDivisionError in calculate_tax at line {BUG_LINENO}",
        f"*at calculate_tax:{BUG_LINENO} -> {BUG_LINE.strip()}",
        "*locals: amount = 100.0, rate = 0.08, discounts = [[][]], discount_count = 0",
        "REPRODUCED *traces/incident_abc123.jsonl::process_order[[]req_abc123[]]: incident "
        "reproduces*",
        "FAILED traces/incident_abc123.jsonl::process_order[[]req_abc123[]]*",
    ])
    assert result.ret == 1


def test_the_fixed_incident_passes_and_says_what_the_code_does_now(
        project: ReplayProject, xdist_args: tuple[str, ...]) -> None:
    record_demo(project)
    project.write_app(FIXED_SHOP)
    result = project.run_with(xdist_args)
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines([
        "FIXED *traces/incident_abc123.jsonl::process_order[[]req_abc123[]]: fixed: "
        "ZeroDivisionError no longer raised; calculate_tax now returns 8.0; process_order "
        "returns {'order_id': 12345, 'user_id': 67890, 'total': 108.0, 'tax': 8.0}",
    ])


def test_a_different_error_fails_as_a_new_error(project: ReplayProject) -> None:
    project.record("incident_abc123.jsonl", [INCIDENT])
    project.write_app(SHOP.replace(BUG_LINE, "    discount_amount = {}[discount_count]\n"))
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*new error: KeyError: 0 in calculate_tax at line *(the recording ended in "
        "ZeroDivisionError)",
    ])


def test_unchanged_code_passes_twice_in_one_process(project: ReplayProject) -> None:
    record_demo(project)
    project.write_app(FIXED_SHOP)
    for _ in range(2):
        project.run().assert_outcomes(passed=3)


def test_unchanged_code_passes_in_fresh_interpreters_whatever_the_hash_seed(
        project: ReplayProject, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sets are encoded in hash order: this process recorded, another one replays."""
    project.record("tags.jsonl", [TAGS])
    monkeypatch.setenv("PYTHONHASHSEED", "0")  # this process runs with a random seed
    project.run_subprocess().assert_outcomes(passed=1)


def test_the_seed_documents_own_lines_reproduce_then_pass_once_fixed(
        project: ReplayProject) -> None:
    project.write_trace("incident_abc123.jsonl", SEED_LINES)
    failed = project.run()
    failed.assert_outcomes(failed=1)
    failed.stdout.fnmatch_lines(["*incident reproduces: ZeroDivisionError in calculate_tax*"])
    project.write_app(FIXED_SHOP)
    fixed = project.run()
    fixed.assert_outcomes(passed=1)
    fixed.stdout.fnmatch_lines(["FIXED *calculate_tax now returns 8.0*"])
