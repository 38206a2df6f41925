"""Comparison: what is compared, what never is, and how the first divergence is reported."""

from __future__ import annotations

import math
from typing import Any

import pytest

from pytest_replay.replay.compare import (
    CompareOptions,
    Comparison,
    compare_steps,
    identical,
    steps_of,
    values_equal,
)

Event = dict[str, Any]


def enter(cid: str, name: str, parent: str | None = None, **args: Any) -> Event:
    event: Event = {"event_type": "function_entry", "correlation_id": cid,
                    "function_name": name, "module": "app.shop", "qualname": name,
                    "args": args, "v": 1, "timestamp_ns": 1}
    if parent is not None:
        event["parent_correlation_id"] = parent
    return event


def leave(cid: str, name: str, value: Any) -> Event:
    return {"event_type": "function_exit", "correlation_id": cid, "function_name": name,
            "return_value": value, "duration_ns": 5, "timestamp_ns": 2}


def raised(cid: str, name: str, error_type: str, message: str) -> Event:
    return {"event_type": "function_exit", "correlation_id": cid, "function_name": name,
            "error": True, "error_type": error_type, "message": message}


def setvar(cid: str, name: str, value: Any) -> Event:
    return {"event_type": "variable_change", "correlation_id": cid, "variable_name": name,
            "value": value, "timestamp_ns": 3}


def loop(cid: str, name: str, index: int, value: Any) -> Event:
    return {"event_type": "loop_iteration", "correlation_id": cid, "loop_name": name,
            "iteration": index, "value": value, "timestamp_ns": 4}


def order(tax: float = 8.0, rate: float = 0.08, discounts: Any = None,
          total: Any = 108.0) -> list[Event]:
    """process_order > calculate_tax > active_discounts, as the shop records it."""
    return [
        enter("req", "process_order", order_id=1, user_id=2),
        setvar("req", "tax_rate", rate),
        enter("c1", "calculate_tax", "req", amount=100.0, rate=rate),
        enter("c2", "active_discounts", "c1", amount=100.0),
        leave("c2", "active_discounts", [] if discounts is None else discounts),
        leave("c1", "calculate_tax", tax),
        leave("req", "process_order", {"total": total, "tax": tax}),
    ]


def compare(recorded: list[Event], replayed: list[Event], **options: Any) -> Comparison:
    left, _ = steps_of(recorded)
    right, _ = steps_of(replayed)
    return compare_steps(left, right, CompareOptions(**options))


def test_identical_streams_compare_equal_and_count_every_step() -> None:
    result = compare(order(), order())
    assert result.equal
    assert result.compared == 7


def test_timestamps_durations_and_ids_are_never_compared() -> None:
    replayed = order()
    for index, event in enumerate(replayed):
        event["timestamp_ns"] = 10**18 + index
        event["duration_ns"] = 999
        event["trace_id"] = "other"
        event["service"] = "elsewhere"
    ids = {"req": "zzz", "c1": "f_9", "c2": "f_10"}
    for event in replayed:
        event["correlation_id"] = ids[event["correlation_id"]]
        if "parent_correlation_id" in event:
            event["parent_correlation_id"] = ids[event["parent_correlation_id"]]
    assert compare(order(), replayed).equal


def test_first_divergence_names_its_call_path_both_sides_and_context() -> None:
    result = compare(order(discounts=[]), order(discounts=[5.0]))
    divergence = result.divergence
    assert divergence is not None
    assert divergence.index == 4
    assert divergence.where == "process_order > calculate_tax > active_discounts"
    assert divergence.field == "return_value"
    assert "return_value: recorded 0 items, now 1" in divergence.reason
    assert divergence.recorded is not None and divergence.replayed is not None
    assert divergence.recorded.describe() == "EXIT active_discounts -> []"
    assert divergence.replayed.describe() == "EXIT active_discounts -> [5.0]"
    assert [s.describe() for s in divergence.context] == [
        "SET tax_rate = 0.08",
        "ENTER calculate_tax(amount=100.0, rate=0.08)",
        "ENTER active_discounts(amount=100.0)",
    ]
    assert divergence.headline().startswith(
        "first divergent event #5 at process_order > calculate_tax > active_discounts")


def test_only_the_first_divergence_is_reported() -> None:
    result = compare(order(), order(tax=9.0, total=109.0))
    assert result.divergence is not None
    assert result.divergence.where == "process_order > calculate_tax"
    assert result.divergence.reason == "return_value: recorded 8.0, now 9.0"


def test_argument_values_of_calls_are_compared() -> None:
    result = compare(order(rate=0.08), order(rate=0.09))
    assert result.divergence is not None
    assert result.divergence.reason == "value: recorded 0.08, now 0.09"  # SET tax_rate first


def test_a_different_call_is_a_divergence() -> None:
    replayed = order()
    replayed[3] = enter("c2", "loyalty_discounts", "c1", amount=100.0)
    replayed[4] = leave("c2", "loyalty_discounts", [])
    result = compare(order(), replayed)
    assert result.divergence is not None
    assert result.divergence.reason == ("expected ENTER active_discounts(amount=100.0), "
                                        "got ENTER loyalty_discounts(amount=100.0)")


def test_an_error_outcome_is_compared_by_type_and_message() -> None:
    recorded = [enter("r", "f"), raised("r", "f", "ZeroDivisionError", "division by zero")]
    same = [enter("r", "f"), raised("r", "f", "ZeroDivisionError", "division by zero")]
    other = [enter("r", "f"), raised("r", "f", "KeyError", "12345")]
    assert compare(recorded, same).equal
    result = compare(recorded, other)
    assert result.divergence is not None
    assert "error_type: recorded 'ZeroDivisionError', now 'KeyError'" in result.divergence.reason


def test_replay_ending_early_or_doing_more_is_reported() -> None:
    short = order()[:4]
    early = compare(order(), short)
    assert early.divergence is not None
    assert early.divergence.reason == ("replay ended early: recorded EXIT active_discounts -> [] "
                                       "never happened")
    more = compare(short, order())
    assert more.divergence is not None
    assert more.divergence.reason.startswith("replay did more than the recording: EXIT")


def test_loop_iterations_are_compared() -> None:
    recorded = [enter("r", "f"), loop("r", "items", 0, 1.5), loop("r", "items", 1, 2.5),
                leave("r", "f", 4.0)]
    replayed = [enter("r", "f"), loop("r", "items", 0, 1.5), loop("r", "items", 1, 3.5),
                leave("r", "f", 5.0)]
    result = compare(recorded, replayed)
    assert result.divergence is not None
    assert result.divergence.index == 2
    assert result.divergence.recorded is not None
    assert result.divergence.recorded.event_type == "loop_iteration"


def test_context_events_are_not_compared() -> None:
    recorded = order()
    recorded.insert(1, {"event_type": "context", "correlation_id": "req",
                        "context": {"region": "us-west-2"}})
    assert compare(recorded, order()).equal


def test_float_tolerance_is_relative_and_configurable() -> None:
    near = order(tax=8.0 * (1 + 1e-12), total=108.0 * (1 + 1e-12))
    assert compare(order(), near).equal
    off = order(tax=8.0 * (1 + 1e-6), total=108.0 * (1 + 1e-6))
    assert not compare(order(), off).equal
    assert compare(order(), off, float_tolerance=1e-5).equal
    assert not compare(order(), near, float_tolerance=0.0).equal


def test_replay_ignore_patterns_skip_fields_and_event_paths() -> None:
    recorded = order(total={"$type": "datetime", "value": "2023-10-31T14:23:45"})
    replayed = order(total={"$type": "datetime", "value": "2025-01-01T00:00:00"})
    assert not compare(recorded, replayed).equal
    for pattern in ("process_order.return_value.total", "return_value.total", "total",
                    "function_exit.return_value.total", "process_order.return_value"):
        assert compare(recorded, replayed, ignore=(pattern,)).equal, pattern
    assert not compare(recorded, replayed, ignore=("calculate_tax.return_value",)).equal


def test_sets_compare_unordered_and_objects_without_their_repr() -> None:
    left = {"$type": "set", "items": ["a", "b", "c"]}
    right = {"$type": "set", "items": ["c", "a", "b"]}
    assert values_equal(left, right, "v", 1e-9)[0]
    obj = {"$type": "object", "class": "app:Cart", "attrs": {"n": 1}, "repr": "<Cart id=1>"}
    again = {"$type": "object", "class": "app:Cart", "attrs": {"n": 1}, "repr": "<Cart id=2>"}
    assert values_equal(obj, again, "v", 1e-9)[0]
    changed = {**again, "attrs": {"n": 2}}
    assert values_equal(obj, changed, "v", 1e-9) == (False, "v.attrs.n: recorded 1, now 2",
                                                     "v.attrs.n")


@pytest.mark.parametrize(("left", "right"), [
    (1, True), (0, False), (1, "1"), (None, 0), ([1], (1,)), ({"a": 1}, {"a": 1, "b": 2}),
])
def test_values_of_different_kinds_never_compare_equal(left: Any, right: Any) -> None:
    assert not values_equal(left, right, "v", 1e-9)[0]


@pytest.mark.parametrize(("left", "right"), [
    (1, True), (1, 1.0), (0, False), (None, 0), ([1], (1,)), ({"a": 1}, {"a": 1, "b": 2}),
    ({"a": [1, {"b": True}]}, {"a": [1, {"b": 1}]}), (float("nan"), float("nan")),
    ({"a": 1}, {"b": 1}), (["x"], ["x", "y"]),
])
def test_only_the_very_same_value_is_identical(left: Any, right: Any) -> None:
    """The shortcut never hides a difference comparison would report (``8 == 8.0`` aside)."""
    assert not identical(left, right)
    nan = isinstance(left, float) and math.isnan(left)  # never identical, not even to itself
    assert identical(left, left) is not nan


def test_identical_steps_skip_the_field_by_field_comparison_only_when_identical() -> None:
    flagged = order()
    flagged[-1]["return_value"] = {"total": 108.0, "tax": 8.0, "paid": True}
    counted = order()
    counted[-1]["return_value"] = {"total": 108.0, "tax": 8.0, "paid": 1}
    assert compare(flagged, flagged).equal
    divergence = compare(flagged, counted).divergence
    assert divergence is not None
    assert divergence.reason == "return_value.paid: recorded True, now 1"
    assert compare(order(tax=8), order(tax=8.0)).equal  # 8 equals 8.0, as before


def test_a_field_the_recording_lacks_is_not_compared() -> None:
    recorded = order()
    del recorded[-1]["return_value"]  # other emitters write less
    assert compare(recorded, order()).equal


def test_tokens_left_by_extract_traces_stand_for_the_live_values() -> None:
    from pytest_replay.replay.compare import values_equal

    recorded = "https://api.test/users?email=<email:3f2a9c1b>&page=2"
    assert values_equal(recorded, "https://api.test/users?email=ann@example.com&page=2",
                        "url", 1e-9)[0]
    assert not values_equal(recorded, "https://api.test/users?email=ann@example.com&page=3",
                            "url", 1e-9)[0]
    assert not values_equal("plain <b>text</b>", "plain text", "body", 1e-9)[0]
