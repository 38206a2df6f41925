"""Root cause: the demo incident, each category on hand-made errors, and the negatives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_replay.format.events import Event
from pytest_replay.model import Trace
from pytest_replay.render.rootcause import find_root_cause, render_root_cause
from pytest_replay.render.style import Style
from tests.render.rendersupport import ev

PLAIN = Style.plain()


def failing(
    source_line: str | None,
    local_values: dict[str, Any],
    error_type: str,
    message: str,
    *,
    args: dict[str, Any] | None = None,
    children: tuple[tuple[str, dict[str, Any], Any], ...] = (),
    variables: tuple[tuple[str, Any], ...] = (),
) -> list[Event]:
    """``handler`` calls ``work(**args)``; ``work`` calls ``children``, sets ``variables``,
    then fails on ``source_line`` with ``local_values``."""
    events = [ev("function_entry", 0, function_name="handler", correlation_id="req_1",
                 args={"request": 1}),
              ev("function_entry", 1, function_name="work", correlation_id="w",
                 parent_correlation_id="req_1", args=args or {})]
    for number, (name, child_args, returned) in enumerate(children):
        cid = f"child{number}"
        events.append(ev("function_entry", 2 + number, function_name=name, correlation_id=cid,
                         parent_correlation_id="w", args=child_args))
        events.append(ev("function_exit", 2.5 + number, function_name=name,
                         correlation_id=cid, return_value=returned))
    for name, value in variables:
        events.append(ev("variable_change", 8, variable_name=name, value=value,
                         correlation_id="w"))
    error = ev("error", 9, correlation_id="w", error_type=error_type, message=message,
               function_name="work", lineno=12, locals=local_values)
    if source_line is not None:
        error["source_line"] = "    " + source_line + "\n"
    events += [error,
               ev("function_exit", 10, function_name="work", correlation_id="w", error=True),
               ev("function_exit", 11, function_name="handler", correlation_id="req_1",
                  error=True)]
    return events


def test_demo_incident(incident: Trace) -> None:
    cause = find_root_cause(incident.roots[0])
    assert cause.determined and cause.category == "zero_division"
    assert cause.summary == "Variable 'discount_count' was 0, causing division by zero"
    assert cause.call_path == ("process_order", "calculate_tax")
    assert cause.location == "calculate_tax:16"
    assert cause.expression == "sum(discounts) / discount_count"
    assert cause.suggestion == "Add a check for discount_count > 0 before the division"
    texts = [origin.text for origin in cause.origins]
    assert "discounts came from active_discounts(amount=100.0), which returned []" in texts
    assert "discount_count = 0 matches len(discounts): discounts = [] (empty)" in texts
    assert render_root_cause(cause, PLAIN).splitlines() == [
        "Root Cause: Variable 'discount_count' was 0, causing division by zero",
        "   at calculate_tax:16 -> discount_amount = sum(discounts) / discount_count",
        "   failing expression: sum(discounts) / discount_count",
        "   call path: process_order > calculate_tax",
        "   discount_count = 0",
        "   discount_count = 0 matches len(discounts): discounts = [] (empty)",
        "   discounts came from active_discounts(amount=100.0), which returned []",
        "Suggested Fix: Add a check for discount_count > 0 before the division",
    ]
    fancy = render_root_cause(cause, Style(unicode=True))
    assert fancy.startswith("🐛 Root Cause: ") and "🔧 Suggested Fix: " in fancy


def test_whole_trace_and_healthy_trace(incident: Trace, healthy: Trace) -> None:
    assert find_root_cause(incident).category == "zero_division"
    cause = find_root_cause(healthy.roots[0])
    assert cause.category == "no_error" and not cause.determined
    assert "No error was recorded" in render_root_cause(cause)


# -- zero divisors --------------------------------------------------------------------


def test_zero_divisor_name() -> None:
    cause = find_root_cause(failing("avg = total / count", {"total": 10, "count": 0},
                                    "ZeroDivisionError", "division by zero"))
    assert cause.determined and cause.culprits[0].expression == "count"
    assert cause.suggestion == "Add a check for count > 0 before the division"
    assert cause.call_path == ("handler", "work")


def test_zero_divisor_len_of_a_returned_empty_list() -> None:
    cause = find_root_cause(failing(
        "avg = total / len(items)", {"total": 10, "items": []}, "ZeroDivisionError",
        "division by zero", children=(("fetch_items", {"cart": 7}, []),)))
    assert cause.culprits[0].expression == "len(items)"
    assert cause.summary == "'len(items)' was 0, causing division by zero"
    assert [o.text for o in cause.origins] == [
        "items came from fetch_items(cart=7), which returned []"]


def test_modulo_and_attribute_divisors() -> None:
    cause = find_root_cause(failing("slot = n % width", {"n": 7, "width": 0},
                                    "ZeroDivisionError", "integer modulo by zero"))
    assert cause.suggestion == "Add a check for width != 0 before the modulo"
    shelf = {"$type": "object", "class": "shop:Shelf", "attrs": {"size": 0}}
    cause = find_root_cause(failing("per = a // self.size", {"a": 1, "self": shelf},
                                    "ZeroDivisionError", "integer division or modulo by zero"))
    assert cause.culprits[0].expression == "self.size" and cause.determined
    decimal_zero = {"$type": "decimal", "value": "0.00"}
    cause = find_root_cause(failing("r = x / d", {"x": 1, "d": decimal_zero},
                                    "DivisionByZero", "[<class 'decimal.DivisionByZero'>]"))
    assert cause.determined and cause.culprits[0].expression == "d"


def test_zero_divisor_set_by_a_recorded_variable_change() -> None:
    cause = find_root_cause(failing("avg = total / count", {"total": 3, "count": 0},
                                    "ZeroDivisionError", "division by zero",
                                    variables=(("count", 0),)))
    assert [o.kind for o in cause.origins] == ["variable_change"]
    assert cause.origins[0].text == "count was set to 0 in work (SET count = 0)"


def test_zero_divisor_passed_as_an_argument() -> None:
    cause = find_root_cause(failing("avg = total / count", {"total": 3, "count": 0},
                                    "ZeroDivisionError", "division by zero",
                                    args={"total": 3, "count": 0}))
    assert cause.origins[0].kind == "argument"
    assert cause.origins[0].text == ("count = 0 was passed in: handler called "
                                     "work(total=3, count=0)")


def test_compound_header_line_is_still_read() -> None:
    cause = find_root_cause(failing("if total / count > 3:", {"total": 3, "count": 0},
                                    "ZeroDivisionError", "division by zero"))
    assert cause.determined and cause.culprits[0].expression == "count"


def test_zero_division_negatives_make_no_suggestion() -> None:
    two = find_root_cause(failing("r = a / b + c / d", {"a": 1, "c": 1},
                                  "ZeroDivisionError", "division by zero"))
    assert not two.determined and two.suggestion is None
    assert "divides by b, d" in two.summary
    assert two.summary.startswith("Root cause not determined from the trace: ")
    nonzero = find_root_cause(failing("r = a / b", {"a": 1, "b": 2}, "ZeroDivisionError",
                                      "division by zero"))
    assert not nonzero.determined and "b = 2 is not 0" in nonzero.summary
    unrecorded = find_root_cause(failing("r = a / get_b()", {"a": 1}, "ZeroDivisionError",
                                         "division by zero"))
    assert unrecorded.determined and unrecorded.suggestion is None
    assert "must have been 0" in unrecorded.summary
    no_source = find_root_cause(failing(None, {"b": 0}, "ZeroDivisionError", "division by zero"))
    assert not no_source.determined and "no source line" in no_source.summary
    assert "Suggested Fix" not in render_root_cause(no_source)
    garbage = find_root_cause(failing("this is not python )(", {}, "ZeroDivisionError", "x"))
    assert not garbage.determined and "could not be parsed" in garbage.summary


# -- None -----------------------------------------------------------------------------


def test_none_attribute_with_origin() -> None:
    cause = find_root_cause(failing(
        "email = user.email.lower()", {"user": None, "user_id": 5}, "AttributeError",
        "'NoneType' object has no attribute 'email'", args={"user_id": 5},
        children=(("audit", {}, None), ("find_user", {"user_id": 5}, None))))
    assert cause.determined and cause.category == "none_value"
    assert cause.culprits[0].expression == "user"
    assert cause.summary.startswith("Variable 'user' was None, so user.email failed")
    assert cause.suggestion == "Check that user is not None before user.email"
    assert [o.text for o in cause.origins] == [
        "user came from find_user(user_id=5), which returned None"]


def test_none_subscript_operand_and_len() -> None:
    sub = find_root_cause(failing("name = row['name']", {"row": None}, "TypeError",
                                  "'NoneType' object is not subscriptable"))
    assert sub.culprits[0].expression == "row"
    operand = find_root_cause(failing(
        "total = price + tax", {"price": 5, "tax": None}, "TypeError",
        "unsupported operand type(s) for +: 'int' and 'NoneType'"))
    assert operand.culprits[0].expression == "tax"
    sized = find_root_cause(failing("n = len(rows)", {"rows": None}, "TypeError",
                                    "object of type 'NoneType' has no len()"))
    assert sized.culprits[0].expression == "rows"


def test_none_negatives() -> None:
    nothing_none = find_root_cause(failing(
        "x = a.b + c.b", {"a": 1, "c": 2}, "AttributeError",
        "'NoneType' object has no attribute 'b'"))
    assert not nothing_none.determined and nothing_none.suggestion is None
    # a single call returning None, with no name in common: not blamed
    cause = find_root_cause(failing(
        "email = user.email", {"user": None}, "AttributeError",
        "'NoneType' object has no attribute 'email'", children=(("audit", {}, None),)))
    assert cause.determined and cause.origins == ()


# -- missing keys ---------------------------------------------------------------------


def test_missing_key_from_an_argument() -> None:
    cause = find_root_cause(failing("amount = ORDER_TOTALS[order_id]", {"order_id": 12345},
                                    "KeyError", "12345", args={"order_id": 12345}))
    assert cause.determined and cause.category == "missing_key"
    assert cause.summary == "Key 12345 was missing from ORDER_TOTALS"
    assert cause.suggestion == ("Check `order_id in ORDER_TOTALS` (or use "
                                "ORDER_TOTALS.get(order_id)) before the lookup")
    assert cause.origins[0].kind == "argument"


def test_missing_key_with_recorded_mapping_and_constant_key() -> None:
    cause = find_root_cause(failing("price = prices[sku]", {"prices": {"a": 1}, "sku": "b"},
                                    "KeyError", "'b'"))
    assert "prices had 1 key(s): 'a'" in cause.facts
    constant = find_root_cause(failing("t = config['timeout']", {"config": {}}, "KeyError",
                                       "'timeout'"))
    assert constant.determined and constant.summary == "Key 'timeout' was missing from config"
    assert "config was empty" in constant.facts


def test_missing_key_negative() -> None:
    cause = find_root_cause(failing("x = d[k]", {"d": {}, "k": "other"}, "KeyError", "'zzz'"))
    assert not cause.determined and cause.suggestion is None


# -- empty sequences and indexes ------------------------------------------------------


@pytest.mark.parametrize("message", ["max() arg is an empty sequence",
                                     "max() iterable argument is empty"])
def test_max_of_an_empty_list(message: str) -> None:
    cause = find_root_cause(failing("best = max(scores)", {"scores": []}, "ValueError", message))
    assert cause.determined and cause.category == "empty_sequence"
    assert cause.summary == "Variable 'scores' was empty, so max(scores) failed"
    assert cause.suggestion is not None and "default=" in cause.suggestion


def test_min_over_a_generator_of_an_empty_list() -> None:
    cause = find_root_cause(failing("low = min(p.price for p in items)", {"items": []},
                                    "ValueError", "min() arg is an empty sequence"))
    assert cause.determined and cause.culprits[0].expression == "items"


def test_index_zero_of_an_empty_list_and_out_of_range() -> None:
    empty = find_root_cause(failing("first = items[0]", {"items": []}, "IndexError",
                                    "list index out of range"))
    assert empty.category == "empty_sequence" and empty.determined
    beyond = find_root_cause(failing("x = items[i]", {"items": [1, 2, 3], "i": 3},
                                     "IndexError", "list index out of range"))
    assert beyond.category == "index_out_of_range"
    assert beyond.summary == "Index 3 is out of range for items, which had 3 items"
    popped = find_root_cause(failing("job = queue.pop()", {"queue": []}, "IndexError",
                                     "pop from empty list"))
    assert popped.category == "empty_sequence"


def test_index_negatives() -> None:
    unknown = find_root_cause(failing("x = items[i]", {"i": 3}, "IndexError",
                                      "list index out of range"))
    assert not unknown.determined and unknown.suggestion is None
    fits = find_root_cause(failing("x = items[1]", {"items": [1, 2, 3]}, "IndexError",
                                   "list index out of range"))
    assert not fits.determined


# -- everything else ------------------------------------------------------------------


def test_unknown_error_type_is_honest() -> None:
    cause = find_root_cause(failing("run()", {}, "RuntimeError", "boom"))
    assert not cause.determined
    assert cause.summary == ("Root cause not determined from the trace: RuntimeError: boom "
                             "at work:12; no analysis knows RuntimeError (boom)")
    assert render_root_cause(cause).splitlines()[1] == "   at work:12 -> run()"


def test_ambiguous_origins_are_named_not_blamed() -> None:
    cause = find_root_cause(failing(
        "avg = total / len(items)", {"total": 1, "items": []}, "ZeroDivisionError",
        "division by zero", children=(("load_a", {}, []), ("load_b", {}, []))))
    assert cause.origins[0].kind == "ambiguous"
    assert "2 calls returned (load_a(), load_b())" in cause.origins[0].text


def test_innermost_recording_of_the_same_error_is_explained() -> None:
    events = failing("avg = total / count", {"total": 1, "count": 0}, "ZeroDivisionError",
                     "division by zero")
    events.insert(-1, ev("error", 10.5, correlation_id="req_1", error_type="ZeroDivisionError",
                         message="division by zero", function_name="handler"))
    assert find_root_cause(events).culprits[0].expression == "count"


def test_source_is_parsed_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    line = f"x = __import__('os').system('touch {marker}') / count"
    cause = find_root_cause(failing(line, {"count": 0}, "ZeroDivisionError", "division by zero"))
    assert cause.determined and not marker.exists()


def test_bad_error_events_never_raise() -> None:
    for error in [{"event_type": "error"}, {"event_type": "error", "locals": "x", "lineno": "1",
                                            "source_line": 5, "message": None},
                  {"event_type": "error", "error_type": "KeyError", "message": "(",
                   "source_line": "d[(]"}]:
        cause = find_root_cause([error])
        assert not cause.determined
        assert render_root_cause(cause)
