"""Request scopes, correlation ids, explicit events, the low-level emitter and sampling."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from typing import Any

import pytest

import pytest_replay as replay
from pytest_replay.capture.runtime import current_ids
from tests.capture.capturesupport import Captured


@replay.traced
def child(n: int) -> int:
    replay.variable("doubled", n * 2)
    return n * 2


@replay.traced
def root(n: int) -> int:
    return child(n) + child(n + 1)


def test_first_root_takes_the_request_id_and_children_get_generated_ids(
        captured: Captured) -> None:
    with replay.request_scope("req_abc123", user_id=67890) as request_id:
        assert request_id == "req_abc123"
        root(1)
        root(2)
    entries = captured.events("function_entry")
    first, second = (e for e in entries if e["function_name"] == "root")
    assert first["correlation_id"] == "req_abc123"
    assert "parent_correlation_id" not in first
    assert "trace_id" not in first  # the request is its own trace
    assert second["correlation_id"] == "req_abc123.2"
    assert second["trace_id"] == "req_abc123"
    children = [e for e in entries if e["function_name"] == "child"]
    assert len(children) == 4
    assert [c["parent_correlation_id"] for c in children] == [
        "req_abc123", "req_abc123", "req_abc123.2", "req_abc123.2"]
    assert all(c["trace_id"] == "req_abc123" for c in children)
    assert len({c["correlation_id"] for c in children}) == 4
    assert not any(c["correlation_id"].startswith("req_") for c in children)


def test_extra_scope_fields_become_a_context_event_first(captured: Captured) -> None:
    with replay.request_scope("req_ctx", user_id=7, plan="pro"):
        root(1)
    first = captured.events()[0]
    assert first["event_type"] == "context"
    assert first["correlation_id"] == "req_ctx"
    assert first["context"] == {"user_id": 7, "plan": "pro"}


def test_a_generated_request_id_when_none_is_given(captured: Captured) -> None:
    with replay.request_scope() as request_id:
        root(3)
    assert request_id is not None and request_id.startswith("req_")
    assert captured.events("function_entry")[0]["correlation_id"] == request_id


def test_a_request_joined_from_another_service(captured: Captured) -> None:
    with replay.request_scope("req_local", trace_id="trace_9", parent_correlation_id="up_1"):
        root(1)
    entry = captured.events("function_entry")[0]
    assert entry["correlation_id"] == "req_local"
    assert entry["parent_correlation_id"] == "up_1"
    assert entry["trace_id"] == "trace_9"
    assert captured.events("function_entry")[1]["trace_id"] == "trace_9"


def test_calls_outside_any_scope_are_roots_of_their_own(captured: Captured) -> None:
    root(5)
    root(6)
    roots = [e for e in captured.events("function_entry") if e["function_name"] == "root"]
    assert all("parent_correlation_id" not in e for e in roots)
    assert roots[0]["correlation_id"] != roots[1]["correlation_id"]


def test_request_ids_that_need_escaping_survive(captured: Captured) -> None:
    odd = 'req "quoted" \\ back\tslash é'
    with replay.request_scope(odd):
        root(1)
        assert current_ids() == (odd, odd)
    entries = captured.events("function_entry")
    assert entries[0]["correlation_id"] == odd
    assert entries[1]["parent_correlation_id"] == odd


def test_variable_loop_and_context_land_under_the_current_call(captured: Captured) -> None:
    @replay.traced
    def work(items: list[int]) -> int:
        replay.context({"environment": "production"}, region="us-west-2")
        total = 0
        for item in replay.loop(items, "items"):
            total += item
        replay.variable("total", total)
        return total

    with replay.request_scope("req_v"):
        assert work([1, 2, 3]) == 6
    events = captured.events()
    assert [e["event_type"] for e in events] == [
        "function_entry", "context", "loop_iteration", "loop_iteration", "loop_iteration",
        "variable_change", "function_exit"]
    assert all(e["correlation_id"] == "req_v" for e in events)
    assert events[1]["context"] == {"environment": "production", "region": "us-west-2"}
    assert [(e["loop_name"], e["iteration"], e["value"]) for e in events[2:5]] == [
        ("items", 0, 1), ("items", 1, 2), ("items", 2, 3)]
    assert (events[5]["variable_name"], events[5]["value"]) == ("total", 6)


def test_a_long_loop_records_the_first_hundred_then_a_count(captured: Captured) -> None:
    with replay.request_scope("req_loop"):
        assert sum(replay.loop(range(250), "big")) == sum(range(250))
    iterations = captured.events("loop_iteration")
    assert len(iterations) == 101
    assert iterations[-1] == {**iterations[-1], "iterations": 250, "truncated": True}


def test_explicit_events_outside_a_request_are_not_written(captured: Captured) -> None:
    replay.variable("x", 1)
    replay.context(environment="production")
    assert list(replay.loop([1, 2], "l")) == [1, 2]
    assert captured.events() == []


def test_telemetry_emitter_as_the_seed_uses_it(captured: Captured) -> None:
    tel = replay.Telemetry()
    request_id = "req_seed"
    cid = tel.function_entry("process_order", correlation_id=request_id)
    assert cid == request_id
    tel.context({"environment": "production", "region": "us-west-2"})
    tel.variable("tax_rate", 0.08)
    assert child(4) == 8  # a decorated call inside lands under the emitter's frame
    tel.error("ZeroDivisionError", "division by zero")
    tel.function_exit("process_order", error=True)
    tel.context({"after": True})  # the frame is closed: nothing to attach to
    events = captured.events()
    kinds = [e["event_type"] for e in events]
    assert kinds == ["function_entry", "context", "variable_change", "function_entry",
                     "variable_change", "function_exit", "error", "function_exit", "context"]
    assert events[1]["correlation_id"] == request_id
    assert events[1]["context"] == {"environment": "production", "region": "us-west-2"}
    assert events[3]["parent_correlation_id"] == request_id
    assert events[6] == {**events[6], "error_type": "ZeroDivisionError",
                         "correlation_id": request_id}
    assert events[7]["error"] is True
    assert "correlation_id" not in events[8]


def test_telemetry_entry_in_a_scope_takes_the_request_id(captured: Captured) -> None:
    tel = replay.Telemetry()
    with replay.request_scope("req_tel"):
        first = tel.function_entry("handler", {"path": "/orders"})
        nested = tel.function_entry("lookup", {"password": "pw-in-telemetry"})
        tel.function_exit("lookup", return_value={"rows": 1})
        tel.function_exit("handler", return_value=200, duration_ns=5)
    assert first == "req_tel"
    entries = captured.events("function_entry")
    assert entries[1]["correlation_id"] == nested
    assert entries[1]["parent_correlation_id"] == "req_tel"
    assert entries[1]["args"] == {"password": {"$type": "redacted", "rule": "key"}}
    exits = captured.events("function_exit")
    assert [(e["correlation_id"], e["return_value"]) for e in exits] == [
        (nested, {"rows": 1}), ("req_tel", 200)]


def test_telemetry_with_its_own_sink(restore_capture: None) -> None:
    own = replay.MemorySink()
    tel = replay.Telemetry(sink=own, service="billing")
    tel.function_entry("charge", {"amount": 5}, correlation_id="c1")
    tel.function_exit("charge", correlation_id="c1", return_value=True)
    tel.close()
    events = Captured(own).events()
    assert [e["service"] for e in events] == ["billing", "billing"]
    assert events[0]["args"] == {"amount": 5}


def _requests(count: int) -> None:
    for index in range(count):
        with replay.request_scope(f"req_{index}"):
            root(index)


def _by_request(events: list[dict[str, Any]]) -> dict[str, Counter[str]]:
    frames: dict[str, str] = {}
    for event in events:
        if event["event_type"] == "function_entry":
            frames[event["correlation_id"]] = event.get("trace_id", event["correlation_id"])
    kinds: dict[str, Counter[str]] = defaultdict(Counter)
    for event in events:
        kinds[frames[event["correlation_id"]]][event["event_type"]] += 1
    return kinds


@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_sample_rate_extremes(restore_capture: None, rate: float) -> None:
    sink = replay.MemorySink()
    replay.configure(sink=sink, sample_rate=rate)
    _requests(200)
    assert len(_by_request(Captured(sink).events())) == (200 if rate else 0)


def test_half_the_requests_sampled_and_never_half_a_request(restore_capture: None) -> None:
    sink = replay.MemorySink()
    replay.configure(sink=sink, sample_rate=0.5)
    _requests(1000)
    per_request = _by_request(Captured(sink).events())
    assert 350 <= len(per_request) <= 650, len(per_request)  # 0.5 +- 9.5 sigma
    whole = Counter({"function_entry": 3, "function_exit": 3, "variable_change": 2})
    assert all(kinds == whole for kinds in per_request.values())


def test_sampling_outside_scopes_is_per_top_level_call(restore_capture: None) -> None:
    sink = replay.MemorySink()
    replay.configure(sink=sink, sample_rate=0.5)
    for index in range(600):
        root(index)
    per_root = _by_request(Captured(sink).events())
    assert 150 <= len(per_root) <= 450
    assert all(kinds["function_entry"] == 3 for kinds in per_root.values())


def test_an_unsampled_request_yields_no_id_and_costs_its_callees_nothing(
        restore_capture: None) -> None:
    sink = replay.MemorySink()
    replay.configure(sink=sink, sample_rate=0.0)
    with replay.request_scope("req_skip") as request_id:
        assert request_id is None
        assert root(1) == 6
        replay.variable("x", 1)
        assert current_ids() == (None, None)
    assert sink.lines == []


def test_sample_rate_out_of_range_is_refused(restore_capture: None) -> None:
    with pytest.raises(ValueError, match="sample_rate"):
        replay.configure(sink=replay.MemorySink(), sample_rate=1.5)


def test_configure_takes_exactly_one_destination(restore_capture: None) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        replay.configure()


def test_concurrent_tasks_keep_their_own_request(captured: Captured) -> None:
    async def one(index: int) -> int:
        with replay.request_scope(f"req_t{index}"):
            await asyncio.sleep(0)
            return root(index)

    async def many() -> list[int]:
        return list(await asyncio.gather(*(one(i) for i in range(20))))

    asyncio.run(many())
    for request, kinds in _by_request(captured.events()).items():
        assert request.startswith("req_t")
        assert kinds["function_entry"] == 3
