"""Methods (``self`` rebuilt from recorded attributes, or a clear refusal) and async roots."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import pytest_replay as replay
from pytest_replay.model import load_trace
from tests.replay.engine_support import AppPackage, make_app, only_root, record, replay_twice

CART = """\
from __future__ import annotations

import asyncio

import pytest_replay as replay


class Cart:
    def __init__(self, owner: str, items: list[float]) -> None:
        self.owner = owner
        self.items = items

    @replay.traced
    def total(self, factor: float) -> float:
        subtotal = 0.0
        for price in replay.loop(self.items, "items"):
            subtotal += price
        return subtotal * factor

    @staticmethod
    @replay.traced
    def vat(amount: float) -> float:
        return round(amount * 0.2, 2)

    @classmethod
    @replay.traced
    def empty(cls, owner: str) -> dict[str, object]:
        return {"owner": owner, "items": cls("x", []).items}

    @replay.traced
    async def checkout(self, factor: float) -> float:
        await asyncio.sleep(0)
        return await price(self.total(factor))


class Slotted:
    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n

    @replay.traced
    def double(self) -> int:
        return self.n * 2


@replay.traced
async def price(amount: float) -> float:
    await asyncio.sleep(0)
    return round(amount * 1.2, 2)


@replay.traced
async def fetch_ratio(numerator: int, denominator: int) -> float:
    await asyncio.sleep(0)
    return numerator / denominator
"""


@pytest.fixture
def app(request: pytest.FixtureRequest, tmp_path: Path) -> AppPackage:
    package = make_app(request, tmp_path)
    package.write("cart", CART)
    return package


def test_a_method_replays_on_a_self_rebuilt_from_its_recorded_attributes(
        app: AppPackage, tmp_path: Path) -> None:
    cart = app.module("cart")
    shopping = cart.Cart("bob", [1.5, 2.5])
    root = only_root(record(tmp_path / "m.jsonl", [("m1", shopping.total, (2.0,))]))
    outcome = app.engine().run(root)
    assert outcome.value == 8.0
    loops = [e["value"] for e in outcome.events if e["event_type"] == "loop_iteration"]
    assert loops == [1.5, 2.5]
    first, second = replay_twice(app.engine(), root)
    assert (first.status, second.status) == ("passed", "passed")


def test_a_changed_method_diverges_inside_its_loop(app: AppPackage, tmp_path: Path) -> None:
    cart = app.module("cart")
    root = only_root(record(tmp_path / "m.jsonl",
                            [("m1", cart.Cart("bob", [1.5, 2.5]).total, (2.0,))]))
    app.write("cart", CART.replace("replay.loop(self.items,", "replay.loop(self.items[::-1],"))
    result = app.engine().replay(root)
    assert result.status == "diverged"
    assert result.divergence is not None
    assert result.divergence.recorded is not None
    assert result.divergence.recorded.event_type == "loop_iteration"
    assert result.divergence.reason == "value: recorded 1.5, now 2.5"


def test_a_static_method_replays(app: AppPackage, tmp_path: Path) -> None:
    cart = app.module("cart")
    root = only_root(record(tmp_path / "s.jsonl", [("s1", cart.Cart.vat, (10.0,))]))
    first, second = replay_twice(app.engine(), root)
    assert (first.status, second.status) == ("passed", "passed")


def test_a_class_method_replays_with_cls_bound_to_its_class(app: AppPackage,
                                                            tmp_path: Path) -> None:
    """``cls`` is recorded by name only; the resolved owner class is the one to pass."""
    cart = app.module("cart")
    root = only_root(record(tmp_path / "c.jsonl", [("c1", cart.Cart.empty, ("ann",))]))
    result = app.engine().replay(root)
    assert result.status == "passed", result.message


def test_a_self_of_a_class_outside_the_targets_is_refused_by_name(
        app: AppPackage, tmp_path: Path) -> None:
    cart = app.module("cart")

    # A subclass defined in this test module: outside replay_targets.
    local_cart: Any = type("LocalCart", (cart.Cart,), {"__module__": __name__})
    root = only_root(record(tmp_path / "o.jsonl",
                            [("o1", local_cart("eve", [1.0]).total, (1.0,))]))
    result = app.engine().replay(root)
    assert result.status == "not_replayable"
    assert "argument 'self' holds a recorded" in result.message
    assert "LocalCart" in result.message
    assert result.replayed == []


def test_a_self_truncated_at_capture_is_refused(app: AppPackage, tmp_path: Path) -> None:
    cart = app.module("cart")
    shopping = cart.Cart("bob", [1.0])
    for index in range(5):
        setattr(shopping, f"extra_{index}", index)
    path = tmp_path / "t.jsonl"
    replay.configure(path=path, limits=replay.Limits(max_items=3))
    try:
        with replay.request_scope(correlation_id="t1"):
            shopping.total(1.0)
    finally:
        replay.shutdown()
    result = app.engine().replay(only_root(load_trace(path)))
    assert result.status == "not_replayable"
    assert "cut short at capture" in result.message


def test_a_self_recorded_without_its_attributes_is_not_replayable(
        app: AppPackage, tmp_path: Path) -> None:
    """A ``__slots__`` object is recorded without attributes: replay must say so, not crash."""
    cart = app.module("cart")
    root = only_root(record(tmp_path / "sl.jsonl", [("sl1", cart.Slotted(3).double, ())]))
    result = app.engine().replay(root)
    assert result.status == "not_replayable", result.message
    assert "self" in result.message


def test_a_method_recorded_without_self_is_not_replayable(app: AppPackage,
                                                          tmp_path: Path) -> None:
    """A low-level emitter that names ``Cart.total`` but records no ``self``."""
    path = tmp_path / "n.jsonl"
    replay.configure(path=path)
    try:
        telemetry = replay.Telemetry()
        with replay.request_scope(correlation_id="n1"):
            telemetry.function_entry("total", {"factor": 2.0}, module=f"{app.name}.cart",
                                     qualname="Cart.total")
            telemetry.function_exit("total", return_value=8.0)
    finally:
        replay.shutdown()
    result = app.engine().replay(only_root(load_trace(path)))
    assert result.status == "not_replayable", result.message
    assert "self" in result.message


# -- async ----------------------------------------------------------------------------------


def test_an_async_root_replays_with_its_awaited_calls(app: AppPackage, tmp_path: Path) -> None:
    cart = app.module("cart")
    root = only_root(record(tmp_path / "a.jsonl",
                            [("a1", lambda: asyncio.run(cart.fetch_ratio(1, 4)), ())]))
    outcome = app.engine().run(root)
    assert outcome.value == 0.25
    first, second = replay_twice(app.engine(), root)
    assert (first.status, second.status) == ("passed", "passed")


def test_an_async_method_root_replays(app: AppPackage, tmp_path: Path) -> None:
    cart = app.module("cart")
    shopping = cart.Cart("bob", [1.5, 2.5])
    root = only_root(record(tmp_path / "am.jsonl",
                            [("am1", lambda: asyncio.run(shopping.checkout(2.0)), ())]))
    assert root.frame.function_name == "checkout"
    outcome = app.engine().run(root)
    assert outcome.value == 9.6
    names = [e["function_name"] for e in outcome.events if e["event_type"] == "function_entry"]
    assert names == ["checkout", "total", "price"]
    assert app.engine().replay(root).status == "passed"


def test_an_async_incident_reproduces_then_is_fixed(app: AppPackage, tmp_path: Path) -> None:
    cart = app.module("cart")
    root = only_root(record(tmp_path / "ai.jsonl",
                            [("ai1", lambda: asyncio.run(cart.fetch_ratio(1, 0)), ())]))
    assert root.is_incident
    assert app.engine().replay(root).message.startswith(
        "incident reproduces: ZeroDivisionError in fetch_ratio")
    app.write("cart", CART.replace("return numerator / denominator",
                                   "return numerator / denominator if denominator else 0.0"))
    result = app.engine().replay(root)
    assert result.status == "fixed"
    assert result.message == ("fixed: ZeroDivisionError no longer raised; "
                              "fetch_ratio now returns 0.0")
