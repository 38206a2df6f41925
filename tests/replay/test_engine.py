"""The engine end to end: sandbox, instrumentation, incident semantics, zero false alarms."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest

import pytest_replay as replay
from pytest_replay.capture.runtime import RUNTIME
from pytest_replay.capture.sinks import MemorySink
from pytest_replay.model import Root, load_trace
from tests.replay.engine_support import (
    AppPackage,
    make_app,
    only_root,
    record,
    replay_twice,
    write_lines,
)

SHOP = """\
from __future__ import annotations

import pytest_replay as replay

ORDER_TOTALS = {12345: 100.0, 777: 200.0}


@replay.traced
def calculate_tax(amount: float, rate: float) -> float:
    discounts = active_discounts(amount)
    discount_count = len(discounts)
    discount_amount = sum(discounts) / discount_count
    return round((amount - discount_amount) * rate, 2)


def active_discounts(amount: float) -> list[float]:
    return [5.0, 10.0] if amount >= 150 else []


@replay.traced
def process_order(order_id: int, user_id: int) -> dict[str, float | int]:
    amount = ORDER_TOTALS[order_id]
    tax_rate = 0.08
    replay.variable("tax_rate", tax_rate)
    tax = calculate_tax(amount, tax_rate)
    return {"order_id": order_id, "total": round(amount + tax, 2), "tax": tax}
"""
BUG = "    discount_amount = sum(discounts) / discount_count\n"
FIXED = SHOP.replace(BUG, "    discount_amount = sum(discounts) / discount_count "
                          "if discount_count else 0.0\n")
NEW_ERROR = SHOP.replace(BUG, "    discount_amount = {}[discount_count]\n")
CAUGHT = SHOP.replace(BUG, """\
    try:
        discount_amount = sum(discounts) / discount_count
    except ZeroDivisionError:
        discount_amount = fallback_discount(amount)
""") + """

@replay.traced
def fallback_discount(amount: float) -> float:
    try:
        return {150.0: 5.0}[amount]
    except KeyError:
        return 0.0


@replay.traced
def lookup(table: dict[float, float], amount: float) -> float:
    return table[amount]
"""
CAUGHT_RAISING = CAUGHT.replace("        return {150.0: 5.0}[amount]",
                                "        return lookup({150.0: 5.0}, amount)")
"""The fallback's KeyError is raised in a traced call, caught by its caller: an error event."""
FIX_WITH_A_NEW_CAUGHT_ERROR = SHOP.replace(BUG, """\
    try:
        discount_amount = sum(discounts) / discount_count
    except ZeroDivisionError:
        discount_amount = fallback_discount(amount)
""") + """

@replay.traced
def fallback_discount(amount: float) -> float:
    try:
        return lookup({150.0: 5.0}, amount)
    except KeyError:
        return 0.0


@replay.traced
def lookup(table: dict[float, float], amount: float) -> float:
    return table[amount]
"""


@pytest.fixture
def app(request: pytest.FixtureRequest, tmp_path: Path) -> AppPackage:
    package = make_app(request, tmp_path)
    package.write("shop", SHOP)
    return package


def record_order(app: AppPackage, tmp_path: Path, order_id: int) -> Root:
    """Record one request of today's shop into ``t.jsonl`` and return its root."""
    shop = app.module("shop")
    return only_root(record(tmp_path / "t.jsonl", [("req_1", shop.process_order, (order_id, 7))]))


# -- incident semantics ---------------------------------------------------------------------


def test_an_incident_reproduces_where_it_was_raised(app: AppPackage, tmp_path: Path) -> None:
    root = record_order(app, tmp_path, 12345)
    assert root.is_incident
    result = app.engine().replay(root)
    assert result.status == "reproduced"
    assert not result.passed
    lineno = SHOP.splitlines().index(BUG.rstrip("\n")) + 1
    assert result.message == (f"incident reproduces: ZeroDivisionError in calculate_tax at "
                              f"line {lineno}")


def test_a_fixed_incident_passes_and_says_what_the_code_does_now(app: AppPackage,
                                                                  tmp_path: Path) -> None:
    root = record_order(app, tmp_path, 12345)
    app.write("shop", FIXED)
    result = app.engine().replay(root)
    assert result.status == "fixed"
    assert result.passed
    assert result.message.startswith(
        "fixed: ZeroDivisionError no longer raised; calculate_tax now returns 8.0")
    assert "process_order returns" in result.message


def test_a_different_error_is_a_new_error_not_a_fix(app: AppPackage, tmp_path: Path) -> None:
    root = record_order(app, tmp_path, 12345)
    app.write("shop", NEW_ERROR)
    result = app.engine().replay(root)
    assert result.status == "diverged"
    assert result.message.startswith("new error: KeyError: 0 in calculate_tax")
    assert "(the recording ended in ZeroDivisionError)" in result.message


def test_a_fix_that_swallows_a_new_error_does_not_pass(app: AppPackage, tmp_path: Path) -> None:
    root = record_order(app, tmp_path, 12345)
    app.write("shop", FIX_WITH_A_NEW_CAUGHT_ERROR)
    result = app.engine().replay(root)
    assert result.status == "diverged"
    assert result.message == ("ZeroDivisionError no longer ends the request, but a new error "
                              "appears: KeyError")


def test_an_error_caught_inside_a_healthy_request_is_ordinary_behaviour(
        app: AppPackage, tmp_path: Path) -> None:
    app.write("shop", CAUGHT_RAISING)
    root = record_order(app, tmp_path, 12345)
    assert not root.is_incident and root.has_error
    first, second = replay_twice(app.engine(), root)
    assert (first.status, second.status) == ("passed", "passed")
    app.write("shop", CAUGHT)  # the lookup no longer raises: the recorded error never happens
    result = app.engine().replay(root)
    assert result.status == "diverged"
    assert result.divergence is not None
    assert result.divergence.where == "process_order > calculate_tax > fallback_discount > lookup"


def test_unchanged_code_replayed_twice_passes_twice(app: AppPackage, tmp_path: Path) -> None:
    root = record_order(app, tmp_path, 777)
    engine = app.engine()
    first, second = replay_twice(engine, root)
    assert (first.status, second.status) == ("passed", "passed")
    assert first.message == "replay matches the recording (5 events compared)"
    assert app.engine().replay(root).status == "passed"  # a fresh engine agrees


def test_a_regression_in_a_healthy_request_diverges_at_the_first_changed_event(
        app: AppPackage, tmp_path: Path) -> None:
    root = record_order(app, tmp_path, 777)
    app.write("shop", SHOP.replace("tax_rate = 0.08", "tax_rate = 0.09"))
    result = app.engine().replay(root)
    assert result.status == "diverged"
    assert result.divergence is not None
    assert result.divergence.where == "process_order"
    assert result.message == ("first divergent event #2 at process_order: "
                              "value: recorded 0.08, now 0.09")
    assert result.noise == []  # the same code twice agrees: not nondeterminism


# -- instrumentation ------------------------------------------------------------------------


def test_undecorated_calls_inside_the_targets_are_observed_then_restored(
        app: AppPackage, tmp_path: Path) -> None:
    root = record_order(app, tmp_path, 777)
    shop = app.module("shop")
    original = shop.active_discounts
    outcome = app.engine().run(root)
    names = [e["function_name"] for e in outcome.events if e["event_type"] == "function_entry"]
    assert names == ["process_order", "calculate_tax", "active_discounts"]
    assert f"{app.name}.shop:active_discounts" in outcome.observed
    assert shop.active_discounts is original


def test_an_observed_call_the_recording_knows_is_compared(app: AppPackage,
                                                          tmp_path: Path) -> None:
    app.write("shop", SHOP.replace("\ndef active_discounts", "\n@replay.traced\ndef "
                                   "active_discounts"))
    root = record_order(app, tmp_path, 777)  # now the recording holds active_discounts
    app.write("shop", SHOP.replace("[5.0, 10.0] if", "[5.0, 20.0] if"))  # undecorated again
    result = app.engine().replay(root)
    assert result.divergence is not None
    assert result.divergence.where == "process_order > calculate_tax > active_discounts"
    assert result.divergence.reason == "return_value[1]: recorded 10.0, now 20.0"


def test_replay_uses_its_own_memory_sink_and_restores_production_capture(
        app: AppPackage, tmp_path: Path) -> None:
    root = record_order(app, tmp_path, 777)
    production = tmp_path / "production.jsonl"
    sink = replay.configure(path=production)
    try:
        assert app.engine().replay(root).status == "passed"
        assert RUNTIME.sink is sink
        assert RUNTIME.active
    finally:
        replay.shutdown()
    assert not production.exists() or production.read_bytes() == b""
    assert not RUNTIME.active


def test_capture_stays_off_after_replay_when_it_was_off(app: AppPackage, tmp_path: Path) -> None:
    root = record_order(app, tmp_path, 777)
    assert not RUNTIME.active
    app.engine().replay(root)
    assert not RUNTIME.active
    assert not isinstance(RUNTIME.sink, MemorySink)


# -- frozen time ----------------------------------------------------------------------------

CLOCK = """\
import datetime
import time

import pytest_replay as replay


@replay.traced
def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


@replay.traced
def stamp(label: str) -> dict[str, str]:
    return {"label": label, "at": datetime.datetime.now().isoformat()}


@replay.traced
def fail_after_reading_the_clock() -> None:
    time.time()
    raise RuntimeError("boom")
"""

SEED_MOMENT = 1698765432123456789
"""The seed's first timestamp: 2023-10-31 15:17:12.123456 UTC."""


def test_time_is_frozen_at_the_recorded_moment_and_restored(app: AppPackage,
                                                            tmp_path: Path) -> None:
    app.write("clock", CLOCK)
    trace = write_lines(tmp_path / "clock.jsonl", [
        {"event_type": "function_entry", "timestamp_ns": SEED_MOMENT, "correlation_id": "c1",
         "function_name": "now", "module": f"{app.name}.clock", "qualname": "now", "args": {}},
        {"event_type": "function_entry", "timestamp_ns": SEED_MOMENT, "correlation_id": "c2",
         "function_name": "fail_after_reading_the_clock", "module": f"{app.name}.clock",
         "qualname": "fail_after_reading_the_clock", "args": {}},
    ])
    engine = app.engine()
    outcome = engine.run(trace.roots[0])
    assert outcome.value == dt.datetime(2023, 10, 31, 15, 17, 12, 123456, tzinfo=dt.timezone.utc)
    assert dt.datetime.now().year >= 2025
    failed = engine.run(trace.roots[1])
    assert isinstance(failed.error, RuntimeError)
    assert dt.datetime.now().year >= 2025  # restored even though the replayed code raised
    assert abs(time.time() - time.time()) < 1


def test_code_that_reads_the_wall_clock_replays_without_a_false_alarm(
        app: AppPackage, tmp_path: Path) -> None:
    """Unchanged code must pass: the recorded ``now()`` is later than the request's start."""
    app.write("clock", CLOCK)
    clock = app.module("clock")
    root = only_root(record(tmp_path / "stamp.jsonl", [("s1", clock.stamp, ("x",))]))
    first, second = replay_twice(app.engine(), root)
    assert (first.status, second.status) == ("passed", "passed"), first.message


# -- arguments ------------------------------------------------------------------------------

TYPES = """\
from __future__ import annotations

import dataclasses
import datetime
import decimal
import uuid

import pytest_replay as replay


@dataclasses.dataclass
class Line:
    sku: str
    qty: int


class Opaque:
    def __init__(self) -> None:
        self.n = 1


@replay.traced
def kinds(when: datetime.datetime, price: decimal.Decimal, key: uuid.UUID, pair: tuple[int, int],
          tags: set[str], raw: bytes, line: Line) -> dict[str, object]:
    return {"types": [type(v).__name__ for v in (when, price, key, pair, tags, raw, line)],
            "tags": tags, "line": line, "total": price * line.qty}


@replay.traced
def takes_anything(value: object) -> str:
    return type(value).__name__


@replay.traced
def renamed(amount: float) -> float:
    return amount
"""


def test_arguments_decode_back_into_their_types(app: AppPackage, tmp_path: Path) -> None:
    import decimal
    import uuid

    app.write("types", TYPES)
    types_module = app.module("types")
    when = dt.datetime(2023, 10, 31, 14, 23, 45, tzinfo=dt.timezone.utc)
    args = (when, decimal.Decimal("9.99"), uuid.UUID(int=5), (1, 2), {"b", "a", "c"}, b"\x00\xff",
            types_module.Line("sku-1", 3))
    root = only_root(record(tmp_path / "k.jsonl", [("k1", types_module.kinds, args)]))
    outcome = app.engine().run(root)
    assert outcome.value["types"] == ["datetime", "Decimal", "UUID", "tuple", "set", "bytes",
                                      "Line"]
    first, second = replay_twice(app.engine(), root)
    assert (first.status, second.status) == ("passed", "passed")


def test_an_argument_of_a_class_outside_the_targets_is_not_replayable(
        app: AppPackage, tmp_path: Path) -> None:
    from fractions import Fraction

    app.write("types", TYPES)
    types_module = app.module("types")
    root = only_root(record(tmp_path / "o.jsonl",
                            [("o1", types_module.takes_anything, (Fraction(1, 3),))]))
    result = app.engine().replay(root)
    assert result.status == "not_replayable"
    assert "argument 'value' holds a recorded fractions:Fraction" in result.message
    assert result.replayed == []


def test_an_allowed_argument_recorded_without_its_attributes_is_not_replayable(
        app: AppPackage, tmp_path: Path) -> None:
    """``Fraction`` keeps its state in ``__slots__``: capture records no attributes for it.

    Rebuilding it empty would replay a different call (here ``str()`` of a broken
    Fraction); replay must refuse and say why instead.
    """
    from fractions import Fraction

    app.write("types", TYPES)
    types_module = app.module("types")
    root = only_root(record(tmp_path / "f.jsonl",
                            [("f1", types_module.takes_anything, (Fraction(1, 3),))]))
    result = app.engine(allowed_types=("fractions:Fraction",)).replay(root)
    assert result.status == "not_replayable", result.message
    assert "fractions:Fraction" in result.message


def test_a_recorded_argument_the_code_no_longer_takes_is_not_replayable(
        app: AppPackage, tmp_path: Path) -> None:
    app.write("types", TYPES)
    types_module = app.module("types")
    root = only_root(record(tmp_path / "r.jsonl", [("r1", types_module.renamed, (2.5,))]))
    app.write("types", TYPES.replace("def renamed(amount: float) -> float:\n    return amount",
                                     "def renamed(value: float) -> float:\n    return value"))
    result = app.engine().replay(root)
    assert result.status == "not_replayable"
    assert "recorded argument(s) amount are not parameters of the current code" in result.message


def test_a_partial_recording_compares_what_it_holds(app: AppPackage, tmp_path: Path) -> None:
    root = record_order(app, tmp_path, 777)
    path = tmp_path / "cut.jsonl"
    lines = Path(root.path).read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(lines[:4]) + "\n", encoding="utf-8")  # cut after the entries
    cut = only_root(load_trace(path))
    assert not cut.complete
    result = app.engine().replay(cut)
    assert result.status == "passed", result.message
    assert any("without the exit of process_order" in note for note in result.not_compared)
