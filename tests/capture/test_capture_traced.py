"""``@traced``: what each kind of callable records, and that the call itself is untouched."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import pytest_replay as replay
from pytest_replay.capture.runtime import RUNTIME
from tests.capture.capturesupport import Captured


@replay.traced
def add(a: int, b: int) -> int:
    return a + b


@replay.traced
async def fetch(key: str, delay: float = 0.0) -> dict[str, str]:
    await asyncio.sleep(delay)
    return {"key": key}


class Account:
    rate = 0.5

    def __init__(self, owner: str, balance: float) -> None:
        self.owner = owner
        self.balance = balance

    @replay.traced
    def deposit(self, amount: float) -> float:
        self.balance += amount
        return self.balance

    @classmethod
    @replay.traced
    def opened(cls, owner: str) -> Account:
        return cls(owner, 0.0)

    @staticmethod
    @replay.traced
    def fee(amount: float) -> float:
        return amount * 0.01

    @replay.traced
    @classmethod
    def outer_classmethod(cls, n: int) -> int:
        return n

    @replay.traced
    @staticmethod
    def outer_staticmethod(n: int) -> int:
        return n + 1

    class Nested:
        @replay.traced
        def deep(self) -> str:
            return "deep"


def test_sync_call_records_entry_and_exit(captured: Captured) -> None:
    assert add(2, 3) == 5
    entry, leave = captured.events()
    assert entry["event_type"] == "function_entry"
    assert (entry["function_name"], entry["module"], entry["qualname"]) == (
        "add", __name__, "add")
    assert entry["args"] == {"a": 2, "b": 3}
    assert entry["v"] == 1
    assert isinstance(entry["timestamp_ns"], int)
    assert leave["event_type"] == "function_exit"
    assert leave["correlation_id"] == entry["correlation_id"]
    assert leave["return_value"] == 5
    assert leave["duration_ns"] >= 0
    assert leave["timestamp_ns"] >= entry["timestamp_ns"]


def test_async_call_records_entry_and_exit(captured: Captured) -> None:
    assert inspect.iscoroutinefunction(fetch)
    assert asyncio.run(fetch("k1")) == {"key": "k1"}
    entry, leave = captured.events()
    assert entry["function_name"] == "fetch"
    assert entry["args"] == {"key": "k1"}
    assert leave["return_value"] == {"key": "k1"}


def test_async_children_are_nested_under_their_task(captured: Captured) -> None:
    @replay.traced
    async def gather_two() -> list[dict[str, str]]:
        return list(await asyncio.gather(fetch("a", 0.001), fetch("b")))

    asyncio.run(gather_two())
    entries = captured.events("function_entry")
    parent = entries[0]["correlation_id"]
    assert [e["parent_correlation_id"] for e in entries[1:]] == [parent, parent]


def test_method_records_self_as_tagged_object_with_attributes(captured: Captured) -> None:
    account = Account("ann", 10.0)
    assert account.deposit(5.0) == 15.0
    entry = captured.events("function_entry")[0]
    assert entry["qualname"] == "Account.deposit"
    self_value = entry["args"]["self"]
    assert self_value["$type"] == "object"
    assert self_value["class"] == f"{__name__}:Account"
    assert self_value["attrs"] == {"owner": "ann", "balance": 10.0}  # as it was on entry
    assert entry["args"]["amount"] == 5.0


def test_classmethod_and_staticmethod_in_both_decorator_orders(captured: Captured) -> None:
    assert Account.opened("bob").owner == "bob"
    assert Account.fee(100.0) == 1.0
    assert Account.outer_classmethod(3) == 3
    assert Account.outer_staticmethod(3) == 4
    assert Account("x", 1.0).fee(200.0) == 2.0
    entries = captured.events("function_entry")
    assert [e["qualname"] for e in entries] == [
        "Account.opened", "Account.fee", "Account.outer_classmethod",
        "Account.outer_staticmethod", "Account.fee"]
    assert entries[0]["args"]["cls"]["$type"] == "ref"
    assert entries[0]["args"]["owner"] == "bob"
    assert entries[1]["args"] == {"amount": 100.0}
    assert entries[3]["args"] == {"n": 3}


def test_nested_class_qualname_makes_it_importable(captured: Captured) -> None:
    Account.Nested().deep()
    entry = captured.events("function_entry")[0]
    assert (entry["module"], entry["qualname"]) == (__name__, "Account.Nested.deep")


def test_generator_function_returns_the_generator_untouched(captured: Captured) -> None:
    pulled: list[int] = []

    def numbers() -> Iterator[int]:
        for n in range(3):
            pulled.append(n)
            yield n

    traced_numbers = replay.traced(numbers)
    generator = traced_numbers()
    assert inspect.isgenerator(generator)
    assert pulled == []  # capture never advanced it
    assert list(generator) == [0, 1, 2]
    leave = captured.events("function_exit")[0]
    assert leave["return_value"]["$type"] == "object"
    assert "generator" in leave["return_value"]["class"]


def test_async_generator_function_is_never_iterated(captured: Captured) -> None:
    pulled: list[int] = []

    async def stream() -> AsyncIterator[int]:
        pulled.append(1)
        yield 1

    agen = replay.traced(stream)()
    as_object: object = agen  # checked without narrowing agen's own type
    assert inspect.isasyncgen(as_object)
    assert pulled == []

    async def drain() -> list[int]:
        return [n async for n in agen]

    assert asyncio.run(drain()) == [1]
    assert len(captured.events("function_exit")) == 1


def test_argument_binding_of_every_parameter_kind(captured: Captured) -> None:
    @replay.traced
    def everything(a: int, /, b: int, *rest: int, c: int, d: int = 4, **extra: int) -> int:
        return a + b + sum(rest) + c + d + sum(extra.values())

    assert everything(1, 2, 3, 4, c=5, e=6) == 25
    assert everything(1, b=2, c=3) == 10
    assert everything(1, 2, c=3, a=9) == 19  # positional-only 'a' given by keyword -> **extra
    first, second, third = (e["args"] for e in captured.events("function_entry"))
    assert first == {"a": 1, "b": 2, "rest": [3, 4], "c": 5, "extra": {"e": 6}}
    assert second == {"a": 1, "b": 2, "c": 3}
    assert third == {"a": 1, "b": 2, "c": 3, "extra": {"a": 9}}


def test_keyword_only_and_defaults_not_passed_are_not_recorded(captured: Captured) -> None:
    @replay.traced
    def kw(x: int, *, scale: float = 2.0, label: str = "") -> float:
        return x * scale

    assert kw(3, label="l") == 6.0
    assert captured.events("function_entry")[0]["args"] == {"x": 3, "label": "l"}


def test_four_and_more_positional_arguments(captured: Captured) -> None:
    @replay.traced
    def four(a: int, b: str, c: float, d: None) -> tuple[int, str]:
        return (a, b)

    assert four(1, "two", 3.5, None) == (1, "two")
    entry, leave = captured.events()
    assert entry["args"] == {"a": 1, "b": "two", "c": 3.5, "d": None}
    assert leave["return_value"] == {"$type": "tuple", "items": [1, "two"]}


def test_error_event_carries_location_and_locals_once(captured: Captured) -> None:
    @replay.traced
    def divide(total: float, parts: int) -> float:
        api_token = "tok-should-not-appear"
        share = total / parts
        return share + len(api_token)

    @replay.traced
    def caller(total: float) -> float:
        return divide(total, 0)

    @replay.traced
    def top() -> float:
        return caller(10.0)

    with pytest.raises(ZeroDivisionError) as raised:
        top()
    assert raised.value.__traceback__ is not None
    errors = captured.events("error")
    assert len(errors) == 1, errors
    error = errors[0]
    divide_entry = next(e for e in captured.events("function_entry")
                        if e["function_name"] == "divide")
    assert error["correlation_id"] == divide_entry["correlation_id"]
    assert error["error_type"] == "ZeroDivisionError"
    assert error["message"] == "float division by zero"
    assert error["filename"] == __file__
    assert error["source_line"] == "share = total / parts"
    assert isinstance(error["lineno"], int)
    assert error["locals"]["total"] == 10.0
    assert error["locals"]["parts"] == 0
    assert error["locals"]["api_token"] == {"$type": "redacted", "rule": "key"}
    assert b"tok-should-not-appear" not in captured.raw()
    exits = captured.events("function_exit")
    assert [e["function_name"] for e in exits] == ["divide", "caller", "top"]
    assert all(e["error"] is True and e["error_type"] == "ZeroDivisionError" for e in exits)
    assert all("return_value" not in e for e in exits)


def test_a_new_exception_raised_while_handling_is_recorded_too(captured: Captured) -> None:
    @replay.traced
    def inner() -> None:
        raise KeyError("missing")

    @replay.traced
    def outer() -> None:
        try:
            inner()
        except KeyError as exc:
            raise ValueError("wrapped") from exc

    with pytest.raises(ValueError, match="wrapped"):
        outer()
    assert [e["error_type"] for e in captured.events("error")] == ["KeyError", "ValueError"]


def test_a_caught_error_is_recorded_and_the_caller_returns(captured: Captured) -> None:
    @replay.traced
    def fails() -> None:
        raise RuntimeError("once")

    @replay.traced
    def tolerant() -> str:
        try:
            fails()
        except RuntimeError:
            return "recovered"
        return "unreachable"

    assert tolerant() == "recovered"
    assert len(captured.events("error")) == 1
    assert captured.events("function_exit")[-1]["return_value"] == "recovered"


def test_the_same_exception_re_raised_by_the_caller_is_recorded_once(captured: Captured) -> None:
    @replay.traced
    def fails() -> None:
        raise RuntimeError("same")

    @replay.traced
    def rethrows() -> None:
        try:
            fails()
        except RuntimeError as exc:
            raise exc

    with pytest.raises(RuntimeError):
        rethrows()
    assert len(captured.events("error")) == 1


def test_exception_propagates_unchanged(captured: Captured) -> None:
    class Custom(Exception):
        pass

    marker = Custom("payload")

    @replay.traced
    def raises() -> None:
        raise marker

    with pytest.raises(Custom) as raised:
        raises()
    assert raised.value is marker
    assert raised.value.__context__ is None
    assert vars(marker) == {}  # capture leaves no marks on the application's exception


def test_inactive_capture_records_nothing_and_calls_through(restore_capture: None) -> None:
    replay.shutdown()
    assert not RUNTIME.active
    sink = replay.MemorySink()
    RUNTIME.sink = sink
    assert add(1, 1) == 2
    assert sink.lines == []


def test_a_failing_capture_never_breaks_the_call(captured: Captured,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    class Exploding:
        def write(self, line: bytes) -> None:
            raise OSError("sink is gone")

        def flush(self) -> None:
            """Nothing."""

        def close(self) -> None:
            """Nothing."""

    RUNTIME.sink = Exploding()  # set directly: a synchronous foreign sink
    assert add(20, 22) == 42
    assert asyncio.run(fetch("x")) == {"key": "x"}
    stats = replay.stats()
    assert stats["dropped"] == 4
    assert stats["dropped_by_reason"] == {"sink_error": 4}
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert "sink is gone" in warnings[0].getMessage()


def test_traced_twice_is_the_same_wrapper() -> None:
    assert replay.traced(add) is add


def test_wrapper_keeps_the_function_metadata() -> None:
    assert add.__name__ == "add"
    assert add.__qualname__ == "add"
    assert add.__wrapped__(1, 2) == 3  # type: ignore[attr-defined]
    assert inspect.signature(add) == inspect.signature(add.__wrapped__)  # type: ignore[attr-defined]


def test_values_are_snapshotted_at_entry(captured: Captured) -> None:
    @replay.traced
    def mutate(items: list[int]) -> list[int]:
        items.append(99)
        return items

    mutate([1, 2])
    entry, leave = captured.events()
    assert entry["args"]["items"] == [1, 2]
    assert leave["return_value"] == [1, 2, 99]


def _kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["event_type"] for e in events]


def test_service_field_follows_configure_for_already_decorated_functions(
        restore_capture: None) -> None:
    first, second = replay.MemorySink(), replay.MemorySink()
    replay.configure(sink=first, service="shop")
    add(1, 2)
    replay.configure(sink=second)
    add(1, 2)
    assert all(b'"service":"shop"' in line for line in first.lines)
    assert not any(b'"service"' in line for line in second.lines)
    assert _kinds([*Captured(first).events(), *Captured(second).events()]) == [
        "function_entry", "function_exit"] * 2
