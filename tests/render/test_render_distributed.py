"""The distributed view: two and three services joined by time windows and parent ids."""

from __future__ import annotations

from pathlib import Path

import orjson

from pytest_replay.format.events import Event
from pytest_replay.model import load_trace
from pytest_replay.render.distributed import (
    build_distributed,
    render_distributed,
    services_summary,
)
from pytest_replay.render.style import Style
from tests.render.rendersupport import MS, ev, untimed

PLAIN = Style.plain()
S = 1000  # milliseconds


def cascade(db_ms: float = 7.2 * S, with_db: bool = True) -> list[list[Event]]:
    """checkout -> inventory -> database; the database is slower than the 5 s timeout."""
    checkout = [
        ev("function_entry", 0, function_name="checkout", correlation_id="c1", trace_id="T1",
           args={"order_id": 1}, service="checkout_service"),
        ev("http_call", 10, method="POST", url="http://inventory/reserve", status=503,
           duration_ns=15_500 * MS, correlation_id="c1", service="checkout_service"),
        ev("error", 15_520, error_type="InventoryError", message="inventory check failed",
           correlation_id="c1", service="checkout_service"),
        ev("function_exit", 15_530, function_name="checkout", error=True, correlation_id="c1",
           service="checkout_service"),
    ]
    inventory = [ev("function_entry", 20, function_name="reserve", correlation_id="i1",
                    trace_id="T1", args={"sku": "X"}, service="inventory_service")]
    database: list[Event] = []
    for attempt in range(3):
        start = 30 + attempt * 5_100
        inventory.append(ev("http_call", start, method="GET", url="http://db/query",
                            error_type="ReadTimeout", error_message="timed out",
                            duration_ns=5_000 * MS, correlation_id="i1",
                            service="inventory_service"))
        database += [
            ev("function_entry", start + 1, function_name="query_stock",
               correlation_id=f"d{attempt}", trace_id="T1", service="database_service"),
            ev("function_exit", start + 1 + db_ms, function_name="query_stock",
               correlation_id=f"d{attempt}", return_value=3, duration_ns=int(db_ms * MS),
               service="database_service"),
        ]
    inventory += [
        ev("error", 15_400, error_type="RetryError", message="all retries failed",
           correlation_id="i1", service="inventory_service"),
        ev("function_exit", 15_410, function_name="reserve", error=True, correlation_id="i1",
           service="inventory_service"),
    ]
    return [checkout, inventory, database] if with_db else [checkout, inventory]


def test_three_services_timeout_cascade() -> None:
    view = build_distributed(cascade())
    assert view.services == ["checkout_service", "inventory_service", "database_service"]
    assert view.failed and view.trace_ids == ["T1"]
    text = untimed(render_distributed(view, PLAIN))
    lines = text.splitlines()
    assert lines[0] == "Timeline (across 3 services, trace T1):"
    assert lines[1] == "|- Service A: checkout_service"
    assert lines[2] == "|  |- [T] ENTER checkout(order_id=1)"
    assert lines[3] == "|  |  |- [T] HTTP POST http://inventory/reserve -> 503 (15.5 s)"
    assert lines[4] == "|  |  |  `- Calls Service B: inventory_service"
    assert lines[5] == "|  |  |     |- [T] ENTER reserve(sku='X')"
    assert ("|  |  |     |  |- [T] HTTP GET http://db/query -> error: ReadTimeout: timed out "
            "(5.0 s) (attempt 1 of 3)") in lines
    assert "|  |  |     |  |  `- Calls Service C: database_service" in lines
    assert any("(attempt 3 of 3): all 3 attempts failed" in line for line in lines)
    assert "`- [FAIL] Request failed: checkout (checkout_service) raised InventoryError" in lines
    assert lines[-1] == ("Root Cause: database_service was slow (query_stock took 7.2 s; "
                         "inventory_service timed out after 5.0 s, 3 attempts), causing a "
                         "timeout cascade: database_service -> inventory_service -> "
                         "checkout_service")
    fancy = render_distributed(view, Style(unicode=True))
    assert "│  │  │  └─ Calls Service B: inventory_service" in fancy
    assert "database_service → inventory_service → checkout_service" in fancy


def test_no_slowness_claim_without_evidence() -> None:
    fast = build_distributed(cascade(db_ms=200))
    assert fast.root_cause is not None and "was slow (" not in fast.root_cause
    assert "recorded handling was faster" in fast.root_cause
    missing = build_distributed(cascade(with_db=False))
    assert missing.root_cause is not None and "was slow (" not in missing.root_cause
    assert "whether it was slow or unreachable is not recorded" in missing.root_cause


def two_services_by_parent_id() -> tuple[list[Event], list[Event]]:
    """A web service calls a billing service that passes the caller's frame id along."""
    web = [ev("function_entry", 0, function_name="pay", correlation_id="req_9", service="web"),
           ev("http_call", 1, method="POST", url="http://billing/charge", status=500,
              duration_ns=30 * MS, correlation_id="req_9", service="web"),
           ev("function_exit", 40, function_name="pay", correlation_id="req_9",
              return_value={"ok": False}, service="web")]
    billing = [ev("function_entry", 2, function_name="charge", correlation_id="b1",
                  parent_correlation_id="req_9", trace_id="req_9", service="billing",
                  args={"amount": 5}),
               ev("error", 3, correlation_id="b1", error_type="CardDeclined",
                  message="insufficient funds", function_name="charge", service="billing"),
               ev("function_exit", 4, function_name="charge", correlation_id="b1", error=True,
                  service="billing")]
    return web, billing


def test_two_services_joined_by_parent_correlation_id() -> None:
    web, billing = two_services_by_parent_id()
    view = build_distributed([web, billing])
    text = untimed(render_distributed(view, PLAIN))
    assert text.splitlines()[1:6] == [
        "|- Service A: web",
        "|  |- [T] ENTER pay()",
        "|  |  `- [T] HTTP POST http://billing/charge -> 500 (30 ms)",
        "|  |     `- Calls Service B: billing",
        "|  |        |- [T] ENTER charge(amount=5)",
    ]
    assert not view.failed
    assert "Request completed: pay (web) returned {'ok': False}" in text
    assert text.splitlines()[-1] == ("Root Cause: billing raised CardDeclined: insufficient "
                                     "funds in charge (the first error of the request), "
                                     "failing billing -> web")
    assert len(view.crossings) == 1 and view.crossings[0].callee == "billing"


def test_same_ids_in_two_services_do_not_collide() -> None:
    one = [ev("function_entry", 0, function_name="a", correlation_id="req_1", service="s1"),
           ev("function_exit", 5, function_name="a", correlation_id="req_1", return_value=1,
              service="s1")]
    two = [ev("function_entry", 1, function_name="b", correlation_id="req_1", service="s2"),
           ev("function_exit", 2, function_name="b", correlation_id="req_1", return_value=2,
              service="s2")]
    view = build_distributed([one, two])
    text = render_distributed(view, PLAIN)
    assert "EXIT a (result=1)" in text and "EXIT b (result=2)" in text
    assert "Service A: s1" in text and "Service B: s2" in text
    assert view.root_cause is None and "No failure recorded across 2 services." in text


def test_files_without_service_fields_are_named_by_file(tmp_path: Path) -> None:
    web, billing = two_services_by_parent_id()
    paths = []
    for name, events in (("web", web), ("billing_svc", billing)):
        path = tmp_path / f"{name}.jsonl"
        stripped = [{k: v for k, v in e.items() if k != "service"} for e in events]
        path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in stripped))
        paths.append(load_trace(path))
    view = build_distributed(paths)
    assert view.services == ["web", "billing_svc"]
    assert [row[0] for row in services_summary(view)] == ["web", "billing_svc"]


def test_bad_input_never_raises() -> None:
    junk: list[object] = [None, "x", {"event_type": "http_call", "duration_ns": -1},
                          {"event_type": "function_entry", "parent_correlation_id": "zz"}]
    view = build_distributed([junk, [], [{"event_type": "function_exit"}]])
    assert render_distributed(view, PLAIN)
    assert render_distributed(build_distributed([]), PLAIN).startswith(
        "Timeline (across 0 services")
