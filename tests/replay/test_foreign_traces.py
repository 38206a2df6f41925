"""Traces from other emitters (the seed's lines): undecorated code is observed call by call."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_replay.model import load_trace
from tests.replay.engine_support import AppPackage, make_app, only_root, replay_twice

SEED_INCIDENT = """\
{"event_type": "function_entry", "timestamp_ns": 1698765432123456789, "function_name": "process_order", "args": {"order_id": 12345, "user_id": 67890}, "correlation_id": "req_abc123"}
{"event_type": "variable_change", "timestamp_ns": 1698765432123567890, "variable_name": "tax_rate", "value": 0.08, "correlation_id": "req_abc123"}
{"event_type": "function_entry", "timestamp_ns": 1698765432124000000, "function_name": "calculate_tax", "args": {"amount": 100.0, "rate": 0.08}, "parent_correlation_id": "req_abc123", "correlation_id": "func_xyz789"}
{"event_type": "error", "timestamp_ns": 1698765432124100000, "error_type": "ZeroDivisionError", "message": "division by zero", "correlation_id": "func_xyz789"}
{"event_type": "function_exit", "timestamp_ns": 1698765432124200000, "function_name": "calculate_tax", "error": true, "correlation_id": "func_xyz789"}
"""  # noqa: E501 - the seed document's lines, byte for byte
"""The seed document's example trace, exactly as it is printed there."""

SEED_STYLE_HEALTHY = """\
{"event_type": "function_entry", "timestamp_ns": 1698765432123456789, "function_name": "process_order", "args": {"order_id": 777, "user_id": 1001}, "correlation_id": "req_ok"}
{"event_type": "variable_change", "timestamp_ns": 1698765432123567890, "variable_name": "tax_rate", "value": 0.08, "correlation_id": "req_ok"}
{"event_type": "function_entry", "timestamp_ns": 1698765432124000000, "function_name": "calculate_tax", "args": {"amount": 200.0, "rate": 0.08}, "parent_correlation_id": "req_ok", "correlation_id": "f1"}
{"event_type": "function_exit", "timestamp_ns": 1698765432124200000, "function_name": "calculate_tax", "return_value": 15.4, "correlation_id": "f1"}
{"event_type": "function_exit", "timestamp_ns": 1698765432124300000, "function_name": "process_order", "return_value": {"order_id": 777, "total": 215.4, "tax": 15.4}, "correlation_id": "req_ok"}
"""  # noqa: E501
"""A healthy request written the seed's way: no module, no qualname, no version."""

UNDECORATED_SHOP = """\
ORDER_TOTALS = {12345: 100.0, 777: 200.0}


def process_order(order_id, user_id):
    tax_rate = 0.08
    amount = lookup_total(order_id)
    tax = calculate_tax(amount, tax_rate)
    return {"order_id": order_id, "total": round(amount + tax, 2), "tax": tax}


def lookup_total(order_id):
    return ORDER_TOTALS[order_id]


def calculate_tax(amount, rate):
    discounts = [5.0, 10.0] if amount >= 150 else []
    discount_count = len(discounts)
    discount_amount = sum(discounts) / discount_count
    return round((amount - discount_amount) * rate, 2)
"""
"""The seed's shop before anyone added ``@traced``: another emitter wrote its traces."""

BUG = "    discount_amount = sum(discounts) / discount_count\n"
FIXED = UNDECORATED_SHOP.replace(
    BUG, "    discount_amount = sum(discounts) / discount_count if discount_count else 0.0\n")


@pytest.fixture
def app(request: pytest.FixtureRequest, tmp_path: Path) -> AppPackage:
    package = make_app(request, tmp_path)
    package.write("shop", UNDECORATED_SHOP)
    return package


def seed_trace(tmp_path: Path, text: str, name: str = "incident_abc123.jsonl") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_seed_lines_load_as_they_are(tmp_path: Path) -> None:
    trace = load_trace(seed_trace(tmp_path, SEED_INCIDENT))
    root = only_root(trace)
    assert root.name == "process_order[req_abc123]"
    assert not root.complete
    assert root.incident_error is not None
    assert root.incident_error.event["error_type"] == "ZeroDivisionError"


def test_the_seed_incident_reproduces_against_undecorated_code(app: AppPackage,
                                                               tmp_path: Path) -> None:
    root = only_root(load_trace(seed_trace(tmp_path, SEED_INCIDENT)))
    result = app.engine().replay(root)
    lineno = UNDECORATED_SHOP.splitlines().index(BUG.rstrip("\n")) + 1
    assert result.status == "reproduced"
    assert result.message == (f"incident reproduces: ZeroDivisionError in calculate_tax at "
                              f"line {lineno}")


def test_the_seed_incident_is_fixed_and_says_what_calculate_tax_returns(
        app: AppPackage, tmp_path: Path) -> None:
    root = only_root(load_trace(seed_trace(tmp_path, SEED_INCIDENT)))
    app.write("shop", FIXED)
    result = app.engine().replay(root)
    assert result.status == "fixed"
    assert result.message.startswith(
        "fixed: ZeroDivisionError no longer raised; calculate_tax now returns 8.0")


def test_a_seed_style_healthy_trace_passes_twice(app: AppPackage, tmp_path: Path) -> None:
    root = only_root(load_trace(seed_trace(tmp_path, SEED_STYLE_HEALTHY, "ok.jsonl")))
    first, second = replay_twice(app.engine(), root)
    assert (first.status, second.status) == ("passed", "passed"), first.message


def test_undecorated_calls_are_compared_call_by_call(app: AppPackage, tmp_path: Path) -> None:
    root = only_root(load_trace(seed_trace(tmp_path, SEED_STYLE_HEALTHY, "ok.jsonl")))
    app.write("shop", UNDECORATED_SHOP.replace("round((amount - discount_amount) * rate, 2)",
                                               "round(amount * rate, 2)"))
    result = app.engine().replay(root)
    assert result.status == "diverged"
    assert result.divergence is not None
    assert result.divergence.where == "process_order > calculate_tax"
    assert result.divergence.reason == "return_value: recorded 15.4, now 16.0"


def test_calls_the_foreign_recording_never_mentions_are_transparent(
        app: AppPackage, tmp_path: Path) -> None:
    """``lookup_total`` is observed but the seed's emitter never wrote it: not a divergence."""
    root = only_root(load_trace(seed_trace(tmp_path, SEED_STYLE_HEALTHY, "ok.jsonl")))
    outcome = app.engine().run(root)
    entries = [e["function_name"] for e in outcome.events if e["event_type"] == "function_entry"]
    assert "lookup_total" in entries
    assert app.engine().replay(root).status == "passed"


def test_a_recorded_local_is_observed_in_undecorated_code(app: AppPackage,
                                                          tmp_path: Path) -> None:
    root = only_root(load_trace(seed_trace(tmp_path, SEED_STYLE_HEALTHY, "ok.jsonl")))
    app.write("shop", UNDECORATED_SHOP.replace("tax_rate = 0.08", "tax_rate = 0.09"))
    result = app.engine().replay(root)
    assert result.status == "diverged"
    assert result.divergence is not None
    assert result.divergence.where == "process_order"
    assert result.divergence.reason == "value: recorded 0.08, now 0.09"


def test_a_recorded_variable_replay_cannot_observe_is_not_compared(
        app: AppPackage, tmp_path: Path) -> None:
    """``region`` is no local of ``process_order``: not compared, never a divergence."""
    lines = SEED_STYLE_HEALTHY.splitlines()
    lines.insert(2, '{"event_type": "variable_change", "timestamp_ns": 1698765432123600000, '
                    '"variable_name": "region", "value": "us-west-2", "correlation_id": "req_ok"}')
    root = only_root(load_trace(seed_trace(tmp_path, "\n".join(lines) + "\n", "region.jsonl")))
    result = app.engine().replay(root)
    assert result.status == "passed", result.message
    assert any("region" in note for note in result.not_compared)


def test_an_ambiguous_seed_name_is_refused_with_the_candidates(app: AppPackage,
                                                               tmp_path: Path) -> None:
    app.write("legacy", "def process_order(order_id, user_id):\n    return None\n")
    root = only_root(load_trace(seed_trace(tmp_path, SEED_INCIDENT)))
    result = app.engine().replay(root)
    assert result.status == "not_replayable"
    assert "ambiguous" in result.message
    assert f"{app.name}.legacy:process_order" in result.message
    assert f"{app.name}.shop:process_order" in result.message
