"""A selected request comes out whole, in any log order, and nothing else comes with it."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest

from pytest_replay.extract import Criteria
from tests.extract.extractsupport import (
    Event,
    Request,
    dump,
    events_of,
    ids_of,
    interleave,
    request,
    roots_in,
    run_cli,
    run_engine,
    write,
)

SEED_INCIDENT = b"""\
{"event_type": "function_entry", "timestamp_ns": 1698765432123456789, "function_name": "process_order", "args": {"order_id": 12345, "user_id": 67890}, "correlation_id": "req_abc123"}
{"event_type": "variable_change", "timestamp_ns": 1698765432123567890, "variable_name": "tax_rate", "value": 0.08, "correlation_id": "req_abc123"}
{"event_type": "function_entry", "timestamp_ns": 1698765432124000000, "function_name": "calculate_tax", "args": {"amount": 100.0, "rate": 0.08}, "parent_correlation_id": "req_abc123", "correlation_id": "func_xyz789"}
{"event_type": "error", "timestamp_ns": 1698765432124100000, "error_type": "ZeroDivisionError", "message": "division by zero", "correlation_id": "func_xyz789"}
{"event_type": "function_exit", "timestamp_ns": 1698765432124200000, "function_name": "calculate_tax", "error": true, "correlation_id": "func_xyz789"}
"""  # noqa: E501 - the seed document's lines, exactly


def _other(root: str) -> Request:
    return request(root, user=1, depth=2)


def test_seed_incident_takes_child_calls_that_grep_misses(tmp_path: Path) -> None:
    log = tmp_path / "production.log"
    noise = dump(_other("req_zzz999").events)
    log.write_bytes(noise + SEED_INCIDENT + noise)
    grep = subprocess.run(["grep", "req_abc123", str(log)], capture_output=True, check=False)
    assert len(grep.stdout.splitlines()) == 3  # the seed's own recipe loses the child's lines

    result = run_cli(log, "--correlation-id", "req_abc123")
    assert result.returncode == 0, result.stderr
    events = events_of(result.stdout)
    assert len(events) == 5
    assert ids_of(events) == {"req_abc123", "func_xyz789"}
    assert [e["event_type"] for e in events if e["correlation_id"] == "func_xyz789"] == [
        "function_entry", "error", "function_exit"]


def test_child_lines_before_their_parent_line(tmp_path: Path) -> None:
    wanted = request("req_target", depth=4, fail=True)
    events = list(wanted.events)
    # Merged out of order: the deepest calls and the root exit first, the root entry last.
    reordered = events[::-1]
    log = write(tmp_path / "app.log",
                _other("req_before").events + reordered + _other("req_after").events)
    report, out = run_engine([log], Criteria(correlation_ids=("req_target",)))
    assert sorted(map(_key, out)) == sorted(map(_key, events))
    assert ids_of(out) == set(wanted.frames)
    assert report.passes >= 3  # the ids learnt late were looked for before where they were learnt


def test_interleaved_requests_do_not_leak(tmp_path: Path) -> None:
    first = request("req_1", user=7, depth=3)
    second = request("req_10", user=8, depth=3)  # an id that contains the other one
    third = request("req_100", depth=3, fail=True)
    log = write(tmp_path / "app.log", interleave(first, second, third))
    for wanted in (first, second, third):
        _report, out = run_engine([log], Criteria(correlation_ids=(wanted.root,)))
        assert ids_of(out) == set(wanted.frames)
        assert len(out) == len(wanted.events)


def test_random_orders_always_give_exactly_the_tree(tmp_path: Path) -> None:
    requests = [request(f"req_{n}", depth=n % 5 + 1, fail=n % 3 == 0) for n in range(12)]
    everything = [event for req in requests for event in req.events]
    chooser = random.Random(20251031)
    for attempt in range(6):
        shuffled = list(everything)
        chooser.shuffle(shuffled)
        log = write(tmp_path / f"shuffled_{attempt}.log", shuffled)
        wanted = requests[chooser.randrange(len(requests))]
        _report, out = run_engine([log], Criteria(correlation_ids=(wanted.root,)))
        assert sorted(map(_key, out)) == sorted(map(_key, wanted.events)), attempt


def test_a_child_frame_id_selects_its_whole_request(tmp_path: Path) -> None:
    wanted = request("req_whole", depth=3)
    log = write(tmp_path / "app.log", interleave(_other("req_x"), wanted, _other("req_y")))
    deepest = wanted.frames[-1]
    _report, out = run_engine([log], Criteria(correlation_ids=(deepest,)))
    assert ids_of(out) == set(wanted.frames)
    assert roots_in(out) == ["req_whole"]


def test_several_ids_give_several_requests_in_log_order(tmp_path: Path) -> None:
    reqs = [request(f"req_{name}", depth=1) for name in ("a", "b", "c", "d", "e", "f")]
    log = write(tmp_path / "app.log", [e for r in reqs for e in r.events])
    wanted = ("req_f", "req_b", "req_d", "req_a", "req_e")  # more than the plain find handles
    _report, out = run_engine([log], Criteria(correlation_ids=wanted))
    assert roots_in(out) == ["req_a", "req_b", "req_d", "req_e", "req_f"]
    assert "req_c" not in ids_of(out)


def test_distributed_trace_across_two_services_logs(tmp_path: Path) -> None:
    front = request("req_front", trace="trace_77", service="checkout", depth=2)
    caller = front.frames[-1]
    back = request("req_back", trace="trace_77", service="inventory", parent=caller,
                   depth=2, fail=True)
    unrelated = request("req_other", trace="trace_88", service="inventory", depth=2)
    checkout = write(tmp_path / "checkout.log", front.events + _other("req_c2").events)
    inventory = write(tmp_path / "inventory.log", interleave(unrelated, back))
    for order in ((checkout, inventory), (inventory, checkout)):
        result = run_cli(*order, "--trace-id", "trace_77", "--no-redact")
        assert result.returncode == 0, result.stderr
        out = events_of(result.stdout)
        assert ids_of(out) == set(front.frames) | set(back.frames)
        assert {e["service"] for e in out} == {"checkout", "inventory"}
        assert roots_in(out) == ["req_front"]  # one tree: the back end hangs under its caller


def test_trace_with_only_one_services_log(tmp_path: Path) -> None:
    back = request("req_back", trace="trace_77", service="inventory", parent="func_elsewhere")
    log = write(tmp_path / "inventory.log", interleave(_other("req_q"), back))
    _report, out = run_engine([log], Criteria(trace_ids=("trace_77",)))
    assert ids_of(out) == set(back.frames)
    assert roots_in(out) == ["req_back"]  # its caller is in no log given: it is the root


def test_ids_written_with_spaces_and_escapes(tmp_path: Path) -> None:
    odd = request('req "quoted" é', depth=2)
    log = write(tmp_path / "app.log", odd.events + _other("req_plain").events, spaced=True)
    _report, out = run_engine([log], Criteria(correlation_ids=('req "quoted" é',)))
    assert ids_of(out) == set(odd.frames)


def test_an_id_inside_arguments_does_not_pull_its_line_in(tmp_path: Path) -> None:
    wanted = request("req_w", depth=1)
    liar = request("req_liar", depth=1,
                   extra_args={"correlation_id": "req_w", "parent_correlation_id": "req_w"})
    log = write(tmp_path / "app.log", interleave(wanted, liar))
    _report, out = run_engine([log], Criteria(correlation_ids=("req_w",)))
    assert ids_of(out) == set(wanted.frames)


def test_events_without_an_entry_are_a_request_of_their_own(tmp_path: Path) -> None:
    scope_only: list[Event] = [
        {"event_type": "context", "timestamp_ns": 1, "correlation_id": "req_scope",
         "context": {"user_id": 5}},
        {"event_type": "error", "timestamp_ns": 2, "correlation_id": "req_scope",
         "error_type": "ValueError", "message": "bad"},
    ]
    log = write(tmp_path / "app.log", _other("req_a").events + scope_only)
    _report, out = run_engine([log], Criteria(correlation_ids=("req_scope",)))
    assert out == scope_only


@pytest.mark.parametrize("depth", [1, 25])
def test_general_filters_also_take_whole_trees(tmp_path: Path, depth: int) -> None:
    failing = request("req_fail", depth=depth, fail=True)
    log = write(tmp_path / "app.log",
                list(reversed(failing.events)) + interleave(_other("req_a"), _other("req_b")))
    _report, out = run_engine([log], Criteria(error=True))
    assert sorted(map(_key, out)) == sorted(map(_key, failing.events))


def _key(event: Event) -> tuple[str, str, int]:
    return (str(event["correlation_id"]), str(event["event_type"]), int(event["timestamp_ns"]))


def test_wide_requests_use_set_matching_and_stay_complete(tmp_path: Path) -> None:
    root = "req_wide"
    events: list[Event] = [{"event_type": "function_entry", "timestamp_ns": 1,
                            "correlation_id": root, "function_name": "fan_out"}]
    children = [f"func_w{n:04d}" for n in range(300)]
    for number, child in enumerate(children):
        events.append({"event_type": "function_entry", "timestamp_ns": 2 + number,
                       "correlation_id": child, "function_name": "leaf",
                       "parent_correlation_id": root})
    exits = [{"event_type": "function_exit", "timestamp_ns": 1000 + n, "correlation_id": c,
              "function_name": "leaf", "return_value": n} for n, c in enumerate(children)]
    noise = [e for n in range(150) for e in request(f"req_n{n}", depth=1).events]
    log = write(tmp_path / "wide.log", exits[:100] + noise[:400] + events + noise[400:]
                + exits[100:])
    _report, out = run_engine([log], Criteria(correlation_ids=(root,)))
    assert len(out) == len(events) + len(exits)
    assert ids_of(out) == {root, *children}
    _report, many = run_engine([log], Criteria(limit=120))  # >128 frames: set matching
    assert len(roots_in(many)) == 120
    assert ids_of(many) >= {root, *children}
