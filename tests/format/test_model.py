"""The model: frames, roots, item names, incidents, orphans, duplicates, cycles, ordering."""

from __future__ import annotations

import gc
import io
from pathlib import Path
from typing import Any

import orjson
import pytest

from pytest_replay.format.reader import LineEvent, ReadResult, read_stream, read_trace
from pytest_replay.model import Root, Trace, build_trace, events_of, load_trace

# The five example lines of the seed document, byte for byte.
SEED_LINES = (
    b'{"event_type": "function_entry", "timestamp_ns": 1698765432123456789, "function_name": '
    b'"process_order", "args": {"order_id": 12345, "user_id": 67890}, "correlation_id": '
    b'"req_abc123"}\n'
    b'{"event_type": "variable_change", "timestamp_ns": 1698765432123567890, "variable_name": '
    b'"tax_rate", "value": 0.08, "correlation_id": "req_abc123"}\n'
    b'{"event_type": "function_entry", "timestamp_ns": 1698765432124000000, "function_name": '
    b'"calculate_tax", "args": {"amount": 100.0, "rate": 0.08}, "parent_correlation_id": '
    b'"req_abc123", "correlation_id": "func_xyz789"}\n'
    b'{"event_type": "error", "timestamp_ns": 1698765432124100000, "error_type": '
    b'"ZeroDivisionError", "message": "division by zero", "correlation_id": "func_xyz789"}\n'
    b'{"event_type": "function_exit", "timestamp_ns": 1698765432124200000, "function_name": '
    b'"calculate_tax", "error": true, "correlation_id": "func_xyz789"}\n'
)


def model(*events: dict[str, Any]) -> Trace:
    """A trace from events given as dicts, through the real reader."""
    data = b"".join(orjson.dumps(event) + b"\n" for event in events)
    return build_trace(read_stream(io.BytesIO(data), "t.jsonl"))


def enter(cid: str, name: str = "f", parent: str | None = None, ts: int | None = None,
          **extra: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"event_type": "function_entry", "correlation_id": cid,
                             "function_name": name, **extra}
    if parent is not None:
        event["parent_correlation_id"] = parent
    if ts is not None:
        event["timestamp_ns"] = ts
    return event


def leave(cid: str, error: bool = False, ts: int | None = None, **extra: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"event_type": "function_exit", "correlation_id": cid, **extra}
    if error:
        event["error"] = True
    else:
        event["return_value"] = 1
    if ts is not None:
        event["timestamp_ns"] = ts
    return event


def error(cid: str, kind: str = "ValueError", ts: int | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"event_type": "error", "correlation_id": cid, "error_type": kind,
                             "message": "boom"}
    if ts is not None:
        event["timestamp_ns"] = ts
    return event


def var(cid: str, name: str = "x", ts: int | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"event_type": "variable_change", "correlation_id": cid,
                             "variable_name": name, "value": 1}
    if ts is not None:
        event["timestamp_ns"] = ts
    return event


def lines_of(root: Root) -> list[int]:
    return [item.line for item in root.events]


def warnings_of(trace: Trace) -> list[tuple[int, str]]:
    return [(p.line, p.message) for p in trace.problems if p.severity == "warning"]


# -- the seed -----------------------------------------------------------------------------


@pytest.fixture
def seed(tmp_path: Path) -> Trace:
    path = tmp_path / "incident_abc123.jsonl"
    path.write_bytes(SEED_LINES)
    return load_trace(path)


def test_seed_is_one_root_named_like_its_test_item(seed: Trace) -> None:
    assert seed.problems == [] and seed.orphans == []
    (root,) = seed.roots
    assert root.name == "process_order[req_abc123]"
    assert root.correlation_id == "req_abc123" and root.line == 1
    assert root.timestamp_ns == 1698765432123456789
    assert lines_of(root) == [1, 2, 3, 4, 5]


def test_seed_is_an_incident_without_a_root_exit(seed: Trace) -> None:
    (root,) = seed.roots
    assert not root.complete
    assert root.has_error
    incident = root.incident_error
    assert incident is not None and incident.line == 4
    assert incident.event["error_type"] == "ZeroDivisionError"
    assert seed.incidents == [root]


def test_seed_call_tree(seed: Trace) -> None:
    root = seed.roots[0].frame
    (child,) = root.children
    assert child.function_name == "calculate_tax" and child.parent is root
    assert child.path == ["process_order", "calculate_tax"]
    assert child.raised and child.exit is not None and child.exit.line == 5
    assert [item.line for item in root.events] == [2]
    assert [item.line for item in child.events] == [4]
    assert [frame.correlation_id for frame in root.walk()] == ["req_abc123", "func_xyz789"]
    assert set(seed.frames) == {"req_abc123", "func_xyz789"}


# -- roots and names ----------------------------------------------------------------------


def test_roots_in_line_order_with_names() -> None:
    trace = model(enter("req_b", "checkout"), enter("req_a", "process_order"),
                  enter("c1", "helper", parent="req_b"), leave("c1"), leave("req_a"),
                  leave("req_b"))
    assert [root.name for root in trace.roots] == ["checkout[req_b]", "process_order[req_a]"]
    assert lines_of(trace.roots[0]) == [1, 3, 4, 6]


def test_name_falls_back_to_qualname() -> None:
    trace = model({"event_type": "function_entry", "correlation_id": "r", "qualname": "A.run"})
    assert trace.roots[0].name == "A.run[r]"


def test_parent_outside_the_file_makes_a_root() -> None:
    """A distributed trace: the caller is in another service's file."""
    trace = model(enter("svc_b_1", parent="svc_a_7"), leave("svc_b_1"))
    assert [root.correlation_id for root in trace.roots] == ["svc_b_1"]
    assert trace.problems == []


def test_children_in_call_order_and_walk_depth_first() -> None:
    trace = model(enter("r"), enter("a", "a", parent="r"), enter("a1", "a1", parent="a"),
                  leave("a1"), leave("a"), enter("b", "b", parent="r"), leave("b"), leave("r"))
    root = trace.roots[0].frame
    assert [child.correlation_id for child in root.children] == ["a", "b"]
    assert [frame.correlation_id for frame in root.walk()] == ["r", "a", "a1", "b"]


def test_events_of_yields_every_root_event_in_order() -> None:
    trace = model(enter("r1"), leave("r1"), enter("r2"), var("r2"), leave("r2"))
    kinds = [event["event_type"] for event in events_of(trace.roots)]
    assert kinds == ["function_entry", "function_exit", "function_entry", "variable_change",
                     "function_exit"]


# -- incidents ----------------------------------------------------------------------------


def test_root_that_raised_is_an_incident() -> None:
    trace = model(enter("r"), enter("c", parent="r"), error("c", "KeyError"), leave("c", True),
                  leave("r", True))
    root = trace.roots[0]
    assert root.complete and root.frame.raised
    assert root.incident_error is not None and root.incident_error.line == 3


def test_root_that_raised_without_an_error_event_points_at_its_exit() -> None:
    trace = model(enter("r"), leave("r", True, error_type="KeyError"))
    incident = trace.roots[0].incident_error
    assert incident is not None and incident.event["event_type"] == "function_exit"


def test_caught_error_is_not_an_incident() -> None:
    trace = model(enter("r"), enter("c", parent="r"), error("c"), leave("c", True), leave("r"))
    root = trace.roots[0]
    assert root.has_error and root.incident_error is None and not root.is_incident
    assert trace.incidents == []


def test_request_that_went_on_after_the_error_is_not_an_incident() -> None:
    """No root exit, but the request did more after the error: it was caught."""
    for after in (var("r"), enter("d", parent="r"), leave("c2")):
        trace = model(enter("r"), enter("c", parent="r"), error("c"), leave("c", True),
                      enter("c2", parent="r"), after)
        assert trace.roots[0].incident_error is None, after


def test_recording_stopping_at_a_propagating_error_is_an_incident() -> None:
    trace = model(enter("r"), enter("c", parent="r"), enter("g", parent="c"), error("g"),
                  leave("g", True), leave("c", True))
    incident = trace.roots[0].incident_error
    assert incident is not None and incident.line == 4


def test_healthy_root_is_not_an_incident() -> None:
    trace = model(enter("r"), var("r"), leave("r"))
    assert trace.roots[0].complete and trace.roots[0].incident_error is None
    assert not trace.roots[0].has_error


def test_partial_recording_without_error_is_not_an_incident() -> None:
    trace = model(enter("r"), var("r"))
    assert not trace.roots[0].complete and trace.roots[0].incident_error is None


# -- what does not fit --------------------------------------------------------------------


def test_orphans_are_kept_and_reported() -> None:
    trace = model(enter("r"), var("nobody"), {"event_type": "context", "context": {"a": 1}},
                  leave("r"))
    assert [item.line for item in trace.orphans] == [2, 3]
    assert lines_of(trace.roots[0]) == [1, 4]
    assert [line for line, _ in warnings_of(trace)] == [2, 3]
    assert "no function_entry for 'nobody'" in warnings_of(trace)[0][1]
    assert "no correlation_id" in warnings_of(trace)[1][1]


def test_duplicate_entry_first_wins_and_is_reported() -> None:
    trace = model(enter("r", "first"), enter("r", "second"), leave("r"), leave("r"))
    (root,) = trace.roots
    assert root.name == "first[r]"
    assert lines_of(root) == [1, 3]
    messages = warnings_of(trace)
    assert messages[0][0] == 2 and "duplicate entry for 'r' (first at line 1" in messages[0][1]
    assert messages[1][0] == 4 and "second exit" in messages[1][1]


def test_entry_without_id_is_reported() -> None:
    trace = model({"event_type": "function_entry", "function_name": "f"}, enter("r"))
    assert [root.correlation_id for root in trace.roots] == ["r"]
    assert "without an id" in warnings_of(trace)[0][1]


def test_parent_cycles_are_reported_and_never_loop() -> None:
    trace = model(enter("a", parent="b"), enter("b", parent="a"), enter("c", parent="a"),
                  var("a"), enter("r"), leave("r"))
    assert [root.correlation_id for root in trace.roots] == ["r"]
    cycle = [line for line, message in warnings_of(trace) if "parent cycle" in message]
    assert cycle == [1, 2, 3]
    assert trace.orphans == []


def test_self_parent_is_a_root_with_a_warning() -> None:
    trace = model(enter("r", parent="r"), leave("r"))
    assert [root.correlation_id for root in trace.roots] == ["r"]
    assert "names itself as parent" in warnings_of(trace)[0][1]


def test_only_cycles_means_no_roots() -> None:
    trace = model(enter("a", parent="b"), enter("b", parent="a"))
    assert trace.roots == [] and len(trace.frames) == 2


# -- ordering -----------------------------------------------------------------------------


def test_out_of_order_events_are_ordered_by_timestamp() -> None:
    trace = model(enter("r", ts=10), leave("r", ts=50), enter("c", parent="r", ts=20),
                  var("c", ts=30), leave("c", ts=40))
    assert lines_of(trace.roots[0]) == [1, 3, 4, 5, 2]


def test_equal_timestamps_keep_line_order() -> None:
    trace = model(enter("r", ts=5), var("r", "b", ts=5), var("r", "a", ts=5), leave("r", ts=4))
    assert lines_of(trace.roots[0]) == [4, 1, 2, 3]


def test_one_missing_timestamp_keeps_line_order() -> None:
    trace = model(enter("r", ts=10), leave("r", ts=50), var("r"), leave("c", ts=5))
    assert lines_of(trace.roots[0]) == [1, 2, 3]


def test_incident_detection_follows_time_order() -> None:
    """Written out of order, the caught error is still seen as caught."""
    trace = model(enter("r", ts=1), var("r", ts=9), enter("c", parent="r", ts=2),
                  error("c", ts=3), leave("c", True, ts=4))
    assert trace.roots[0].incident_error is None


# -- housekeeping -------------------------------------------------------------------------


def test_build_trace_keeps_read_problems_and_leaves_gc_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(SEED_LINES + b"{oops\n")
    result: ReadResult = read_trace(path)
    assert gc.isenabled()
    trace = build_trace(result)
    assert gc.isenabled()
    assert trace.problems[0].line == 6 and trace.path == str(path)
    gc.disable()
    try:
        build_trace(result)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_building_the_model_decodes_no_event() -> None:
    events = [enter("r", "process_order", ts=1), var("r", ts=2),
              enter("c", "calculate_tax", parent="r", ts=3), error("c", ts=4),
              leave("c", True, ts=5), var("ghost", ts=6)]
    data = b"".join(orjson.dumps(event) + b"\n" for event in events)
    result = read_stream(io.BytesIO(data), "t.jsonl")
    decoded = result.events[0].decoded
    assert decoded == {} and all(item.decoded is decoded for item in result.events)
    trace = build_trace(result)
    (root,) = trace.roots
    assert root.is_incident and root.incident_error is result.events[3]
    assert root.timestamp_ns == 1 and not root.complete and trace.frames["c"].raised
    assert [item.line for item in trace.orphans] == [6]
    assert decoded == {}  # all of the above from the fields copied at read time
    assert root.name == "process_order[r]"
    assert list(decoded) == [1]  # the name needed the root's entry, and only that


def test_events_made_by_hand_with_odd_ids_are_orphans_as_before() -> None:
    events = [LineEvent(1, {"event_type": "function_entry", "correlation_id": "r"}),
              LineEvent(2, {"event_type": "variable_change", "correlation_id": ["r"]}),
              LineEvent(3, {"event_type": "variable_change", "correlation_id": 7}),
              LineEvent(4, {"event_type": "variable_change", "correlation_id": "r",
                            "timestamp_ns": "late"})]
    trace = build_trace(ReadResult("hand", events))
    assert [item.line for item in trace.orphans] == [2, 3]
    assert [item.line for item in trace.roots[0].events] == [1, 4]
