"""Hunt: ways capture changes, blocks, breaks or raises into the host application.

The contract under test: capture never raises into, blocks or crashes the host,
and an instrumented call behaves exactly as the bare one (same results, same
exceptions with the same user frames, same side effects, same laziness). Each
test runs the host's code bare (or undecorated) and then with capture on, inside
``replay.request_scope`` to a real sink, and compares.

Every difference found is a ``strict`` xfail whose reason says ``BUG:``, the
symptom and the root cause; the passing tests prove guarantees that are not
obvious from the code (a body read ahead and put back, a C wrapper whose
constructor takes ``function=``, cursors fed through Python wrappers...).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import functools
import http.client
import inspect
import os
import pickle
import random
import socket
import sqlite3
import sys
import threading
import time
import traceback
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, cast

import anyio
import anyio.to_thread
import orjson
import pytest
from sqlalchemy import ForeignKey, String, create_engine, event
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    MappedAsDataclass,
    Session,
    mapped_column,
    relationship,
)

import pytest_replay as replay
from pytest_replay.capture import traced as traced_module
from tests.capture.capturesupport import Captured
from tests.external.db_servers import MYSQL, MYSQL_PORT, PG_DSN, PG_PORT, require, unique

# -- helpers ---------------------------------------------------------------------------


def _identity(value: Any) -> Any:
    return value


traced_identity = replay.traced(_identity)


def _swallow(value: Any) -> None:
    """Takes a value and returns nothing: only the argument is captured."""


traced_swallow = replay.traced(_swallow)


def _timed(function: Callable[[], Any]) -> tuple[Any, float]:
    began = time.perf_counter()
    result = function()
    return result, time.perf_counter() - began


def _in_request(function: Callable[[], Any], name: str = "req_hunt") -> Any:
    with replay.request_scope(name):
        return function()


# -- @traced: what the decorated callable looks like -----------------------------------


def _plain_generator() -> Iterator[int]:
    yield 1


async def _plain_async_generator() -> AsyncIterator[int]:
    yield 1


@pytest.mark.parametrize(("function", "check"), [
    (_plain_generator, inspect.isgeneratorfunction),
    (_plain_async_generator, inspect.isasyncgenfunction),
], ids=["generator", "async-generator"])
def test_traced_generator_functions_still_look_like_generator_functions(
        function: Callable[..., Any], check: Callable[[Any], bool]) -> None:
    assert check(function)
    assert check(replay.traced(function))


def test_traced_above_property_keeps_a_property(captured: Captured) -> None:
    def make_class() -> type:
        def value(self: Any) -> int:
            return int(self.stored)

        return type("Box", (), {"stored": 7, "value": replay.traced(cast(Any, property(value)))})

    box = make_class()()
    assert _in_request(lambda: box.value) == 7
    names = [event["function_name"] for event in captured.events("function_entry")]
    assert "value" in names  # the getter's call is recorded


def test_calls_with_awkward_signatures_behave_as_bare(captured: Captured) -> None:
    """Keyword names the C wrapper's constructor uses, positional-only names that spill
    into **kwargs, keyword-only arguments, and a self-referential result."""

    def awkward(a: Any, /, function: Any = None, *args: Any, self: Any = None,
                **kwargs: Any) -> tuple[Any, ...]:
        return (a, function, args, self, kwargs)

    def ring() -> list[Any]:
        out: list[Any] = []
        out.append(out)
        return out

    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
        ((1,), {"function": 2, "self": 3, "site": 4, "fallback": 5, "args": 6, "a": 7}),
        ((1, 2, 3, 4), {"kwargs": {"x": 1}}),
    ]
    traced_awkward = replay.traced(awkward)
    for args, kwargs in calls:
        bare = awkward(*args, **kwargs)
        with replay.request_scope("req_awkward"):
            assert traced_awkward(*args, **kwargs) == bare
    with replay.request_scope("req_ring"):
        result = replay.traced(ring)()
    assert result[0] is result
    entries = captured.events("function_entry")
    assert entries[0]["args"]["kwargs"]["a"] == 7  # positional-only name given by keyword
    assert captured.events("function_exit")[-1]["return_value"] == [
        {"$type": "cycle", "class": "builtins:list"}]


# -- @traced: generators, coroutines, errors -------------------------------------------


def _user_frames(exc: BaseException) -> list[tuple[str, int]]:
    """The traceback's frames outside capture's own wrapper."""
    wrapper_file = traced_module.__file__
    return [(frame.name, frame.lineno or 0) for frame in traceback.extract_tb(exc.__traceback__)
            if frame.filename != wrapper_file]


def _divide(a: int, b: int) -> float:
    return a / b


def _fails_deep(a: int) -> float:
    return _divide(a, 0)


def _raised(function: Callable[..., Any], *args: Any) -> BaseException:
    try:
        function(*args)
    except BaseException as exc:  # the exception is what is compared
        return exc
    raise AssertionError("did not raise")


def _drive_generator(factory: Callable[[], Iterator[Any]]) -> list[Any]:
    out: list[Any] = []
    gen = cast(Any, factory())
    out.append(next(gen))
    out.append(gen.send(10))
    out.append(gen.throw(ValueError("thrown in")))
    gen.close()
    left = factory()  # left unconsumed: nothing of it runs
    del left
    out.append(list(factory()))
    return out


def _talking_generator() -> Iterator[Any]:
    try:
        got = yield "first"
        yield ("sent", got)
        yield from ("never",)
    except ValueError as exc:
        yield ("caught", str(exc))
        yield from ("delegated", "values")


async def _talking_async_generator() -> AsyncIterator[Any]:
    try:
        got = yield "first"
        yield ("sent", got)
    except ValueError as exc:
        yield ("caught", str(exc))
        yield "after"


async def _drive_async_generator(factory: Callable[[], AsyncIterator[Any]]) -> list[Any]:
    agen = cast(Any, factory())
    out = [await agen.__anext__(), await agen.asend(10), await agen.athrow(ValueError("in"))]
    await agen.aclose()
    out.append([item async for item in factory()])
    return out


async def _sleeps(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "slept"


async def _async_fails(a: int) -> float:
    await asyncio.sleep(0)
    return _divide(a, 0)


async def _cancel_and_time_out(sleeps: Callable[[float], Any]) -> list[Any]:
    out: list[Any] = []
    task = asyncio.ensure_future(sleeps(10.0))
    await asyncio.sleep(0.01)
    task.cancel("shutting down")
    try:
        await task
    except asyncio.CancelledError as exc:
        out.append(("cancelled", task.cancelled(), exc.args))
    try:
        await asyncio.wait_for(sleeps(10.0), 0.01)
    except TimeoutError as exc:
        out.append(("timeout", type(exc).__name__))
    out.append(await asyncio.wait_for(sleeps(0.0), 1.0))
    return out


def test_generators_coroutines_and_errors_behave_as_bare(captured: Captured) -> None:
    """send/throw/close, yield from, asend/athrow/aclose, cancellation with a message,
    wait_for timeouts, and the exception's own frames: all as without capture, while
    capture records the errors on the way."""
    sync_gen = replay.traced(_talking_generator)
    async_gen = replay.traced(_talking_async_generator)
    sleeps = replay.traced(_sleeps)
    fails, fails_async = replay.traced(_fails_deep), replay.traced(_async_fails)

    bare = (_drive_generator(_talking_generator),
            asyncio.run(_drive_async_generator(_talking_async_generator)),
            asyncio.run(_cancel_and_time_out(_sleeps)))
    with replay.request_scope("req_gen"):
        on = (_drive_generator(sync_gen), asyncio.run(_drive_async_generator(async_gen)),
              asyncio.run(_cancel_and_time_out(sleeps)))
    assert on == bare

    bare_exc = _raised(_fails_deep, 1)
    with replay.request_scope("req_err"):
        exc = _raised(fails, 1)
    assert (type(exc), exc.args, exc.__cause__, exc.__context__) == (
        type(bare_exc), bare_exc.args, None, None)
    assert _user_frames(exc) == _user_frames(bare_exc)  # the same frames, in order
    assert vars(exc) == {}  # nothing set on the application's exception

    async def async_raised(function: Callable[[int], Any]) -> BaseException:
        try:
            await function(1)
        except ZeroDivisionError as exc:
            return exc
        raise AssertionError("did not raise")

    bare_exc = asyncio.run(async_raised(_async_fails))
    with replay.request_scope("req_async_err"):
        exc = asyncio.run(async_raised(fails_async))
    assert _user_frames(exc) == _user_frames(bare_exc)
    errors = captured.events("error")
    assert {e["error_type"] for e in errors} >= {"CancelledError", "ZeroDivisionError"}


# -- @traced: capture running the host's code --------------------------------------------

TOUCHED: list[str] = []
"""What capture made the application's objects do (bare calls do none of it)."""


class LoudRepr:
    def __repr__(self) -> str:
        TOUCHED.append("__repr__")  # a Django model's repr runs a query; a QuerySet's runs one
        return "LoudRepr()"


class DictIsAProperty:
    @property
    def __dict__(self) -> dict[str, Any]:  # type: ignore[override]
        TOUCHED.append("__dict__ property")
        raise RuntimeError("computed on demand")


class LazyPages(list[int]):
    """A list that fetches the next page when iterated."""

    def __iter__(self) -> Iterator[int]:
        TOUCHED.append("list.__iter__")
        return super().__iter__()


class LazySet(set[int]):
    def __iter__(self) -> Iterator[int]:
        TOUCHED.append("set.__iter__")
        return super().__iter__()


class AuditedMapping(dict[str, int]):
    def keys(self) -> Any:
        TOUCHED.append("dict.keys")
        return super().keys()

    def __iter__(self) -> Iterator[str]:
        TOUCHED.append("dict.__iter__")
        return super().__iter__()


def _loud_name(self: enum.Enum) -> str:
    TOUCHED.append("enum.name")
    return "RED"


class LoudError(Exception):
    def __str__(self) -> str:
        TOUCHED.append("Exception.__str__")
        return "loud"


class Counted:
    """A data descriptor backing a dataclass field (SQLAlchemy's mapped attributes are)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = "_" + name

    def __get__(self, instance: Any, owner: Any = None) -> int:
        if instance is None:
            return 0
        TOUCHED.append("dataclass field descriptor")
        return int(instance.__dict__.get(self.slot, 0))

    def __set__(self, instance: Any, value: int) -> None:
        instance.__dict__[self.slot] = value


@dataclasses.dataclass
class Invoice:
    amount: Counted = Counted()


def _enum_with_a_name_property() -> Any:
    # The enum's ``name`` read through a property the application defined.
    level = enum.Enum("level", ["LOW"])
    type.__setattr__(level, "name", property(_loud_name))
    return level["LOW"]


HOSTILE: list[tuple[str, Callable[[], Any]]] = [
    ("repr", LoudRepr),
    ("dict-property", DictIsAProperty),
    ("list-subclass-iter", lambda: LazyPages([1, 2, 3])),
    ("set-subclass-iter", lambda: LazySet({1, 2})),
    ("dict-subclass-keys", lambda: AuditedMapping(a=1)),
    ("enum-name-property", _enum_with_a_name_property),
    ("exception-str", lambda: LoudError("boom")),
    ("dataclass-descriptor-field", lambda: Invoice(amount=cast(Any, 5))),
]


_RUNS_CODE = pytest.mark.xfail(strict=True, reason=(
    "BUG: capture runs the application's code while recording a value, though "
    "docs/capture.md says 'Capture only asks values their type: properties ... are never "
    "triggered'. format/values.py:_Encoder calls repr() of any class with its own "
    "__repr__ (_object/_safe_repr), str() of exceptions (_safe_str), list()/set()/dict() "
    "of container subclasses (_subclass: runs their __iter__/keys/__len__), "
    "object.__getattribute__(value, '__dict__') and (value, field.name), which run a "
    "__dict__ property and field descriptors, and value.name of enums. Each runs host code "
    "(queries, page fetches, counters) the bare call never runs. Fix: read instance "
    "state without descriptors (the __dict__ getset of object only, inspect.getattr_static "
    "for fields, the base type's slots: list.__len__/list.__getitem__, dict.items(d), "
    "set.__iter__ via the base), take enum names from _name_ in __dict__, and write a "
    "repr only for types known to be inert (or not at all)."))
_NO_CODE_RUN = frozenset({"dataclass-descriptor-field", "enum-name-property"})
"""Fixed: dataclass fields and enum names are read as stored."""


@pytest.mark.parametrize("make", [
    pytest.param(make, id=name, marks=() if name in _NO_CODE_RUN else _RUNS_CODE)
    for name, make in HOSTILE])
def test_capture_runs_no_code_of_the_values_it_records(captured: Captured,
                                                       make: Callable[[], Any]) -> None:
    value = make()
    TOUCHED.clear()
    assert _identity(value) is value
    assert TOUCHED == []
    assert _in_request(lambda: traced_identity(value)) is value
    assert captured.events("function_exit")
    assert TOUCHED == []


@pytest.mark.xfail(strict=True, reason=(
    "BUG: the locals of a failing frame are recorded through the same encoder, so a "
    "local with its own __repr__ runs it while the application's exception propagates "
    "(errors.py:error_event -> Runtime.encode_named -> values.py:_Encoder._object -> "
    "_safe_repr). Fix: as for arguments, never call repr() on the request path."))
def test_the_locals_of_a_failing_call_are_recorded_without_running_them(
        captured: Captured) -> None:
    def fails() -> None:
        local = LoudRepr()
        raise KeyError(type(local).__name__)

    TOUCHED.clear()
    with pytest.raises(KeyError), replay.request_scope("req_locals"):
        replay.traced(fails)()
    assert captured.events("error")[0]["locals"]["local"]["class"].endswith("LoudRepr")
    assert TOUCHED == []


class SlowRepr:
    def __repr__(self) -> str:
        time.sleep(0.5)  # a repr that queries a database, renders a DataFrame...
        return "SlowRepr()"


@pytest.mark.xfail(strict=True, reason=(
    "BUG: a value whose __repr__ blocks holds the call for as long: a 0.5 s repr adds "
    "0.5 s to a call that takes microseconds bare (values.py:_Encoder._object -> "
    "_safe_repr runs repr() on the request thread). Fix: no repr() on the request path."))
def test_a_slow_repr_does_not_hold_the_call(captured: Captured) -> None:
    value = SlowRepr()
    _, elapsed = _timed(lambda: _in_request(lambda: traced_swallow(value)))
    assert elapsed < 0.1, f"the call took {elapsed:.2f}s"


class Abort(BaseException):
    """Like gevent.Timeout or trio.Cancelled: a BaseException a host uses for control flow."""


class AbortingRepr:
    def __repr__(self) -> str:
        raise Abort("raised inside repr")


@pytest.mark.xfail(strict=True, reason=(
    "BUG: a BaseException raised by a recorded value's dunder (here __repr__) escapes "
    "capture and replaces the result of a call that returns normally bare: the wrapper "
    "(traced.py:_sync_wrapper, _speedups.c:enter/leave) and values.py:encode/_safe_repr "
    "catch Exception only. Fix: never run the value's code (see above); failing that, "
    "treat a BaseException that is not KeyboardInterrupt/SystemExit from the encoder as "
    "a capture failure."))
def test_a_base_exception_from_a_recorded_value_does_not_escape(captured: Captured) -> None:
    value = AbortingRepr()
    assert _identity(value) is value
    try:
        result = _in_request(lambda: traced_identity(value))
    except Abort:
        pytest.fail("capture raised Abort out of a call that returns normally bare")
    assert result is value


def test_a_huge_int_does_not_hold_the_call(captured: Captured) -> None:
    """With ``sys.set_int_max_str_digits(0)`` a 200,000-digit int would cost ~0.5 s of
    quadratic decimal conversion per call: capture writes its size, not its digits."""
    old = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        _in_request(lambda: traced_swallow(10 ** 200_000))
        _in_request(lambda: traced_swallow(10 ** 4_000))
    finally:
        sys.set_int_max_str_digits(old)
    huge, big = (event["args"]["value"] for event in captured.events("function_entry"))
    assert huge == {"$type": "int", "digits": 200_001, "truncated": True}
    assert big == {"$type": "int", "value": str(10 ** 4_000)}  # below the cap: exact


def test_a_long_text_is_written_as_its_head(captured: Captured) -> None:
    """What is kept of a 4 M-character text (its cost against a short one's is printed by
    tests/benchmarks/bench_big_values.py: it was ~0.25 s per call, scanned whole)."""
    text = "é" * 4_000_000
    _in_request(lambda: traced_swallow(text))
    written = captured.events("function_entry")[0]["args"]["value"]
    assert written == {"$type": "str", "head": "é" * 2048, "len": len(text), "truncated": True}


def test_a_big_mapping_is_written_as_its_first_items(captured: Captured) -> None:
    """What is kept of a 2 M-key dict, plain keys first and a non-str key past the cap
    (cost: tests/benchmarks/bench_big_values.py; it was ~0.15 s per call)."""
    index: dict[Any, int] = dict.fromkeys(map(str, range(2_000_000)), 0)
    index[7] = 1  # past the first 100 items: never looked at, never written
    _in_request(lambda: traced_swallow(index))
    written = captured.events("function_entry")[0]["args"]["value"]
    assert written == {"$type": "dict", "items": [[str(key), 0] for key in range(100)],
                       "len": len(index), "truncated": True}


# -- SQLAlchemy dataclass models: capture loads and flushes -----------------------------


class OrmBase(MappedAsDataclass, DeclarativeBase):
    pass


class Customer(OrmBase):
    __tablename__ = "hunt_customer"
    id: Mapped[int] = mapped_column(primary_key=True, init=False)
    name: Mapped[str] = mapped_column(String(40))
    orders: Mapped[list[Order]] = relationship(default_factory=list)


class Order(OrmBase):
    __tablename__ = "hunt_order"
    id: Mapped[int] = mapped_column(primary_key=True, init=False)
    customer_id: Mapped[int] = mapped_column(ForeignKey("hunt_customer.id"), init=False)
    label: Mapped[str] = mapped_column(String(40), default="order")


def test_a_mapped_dataclass_is_recorded_without_touching_its_session(
        restore_capture: None, tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'orm.db'}")
    OrmBase.metadata.create_all(engine)
    with Session(engine) as session:
        session.add(Customer(name="ada", orders=[Order(), Order()]))
        session.commit()
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute",
                 lambda *args: statements.append(str(args[2]).split()[0]))

    def handle(function: Callable[[Any], Any]) -> list[str]:
        with Session(engine) as session:
            customer = session.get(Customer, 1)
            session.add(Customer(name="pending"))
            statements.clear()
            function(customer)
            done = list(statements)
            session.rollback()
        return done

    try:
        bare = handle(_swallow)
        replay.configure(sink=replay.MemorySink())
        with replay.request_scope("req_orm"):
            captured = handle(traced_swallow)
    finally:
        engine.dispose()
    assert bare == []
    assert captured == bare, f"capture ran {captured} on the application's session"


# -- requests, threads, tasks, reconfiguration -------------------------------------------


def test_request_scope_closed_in_another_context(captured: Captured) -> None:
    def dependency(scoped: bool) -> contextlib.AbstractContextManager[str]:
        @contextlib.contextmanager
        def session() -> Iterator[str]:
            with replay.request_scope("req_dep") if scoped else contextlib.nullcontext():
                yield "db-session"

        return session()

    async def serve(scoped: bool) -> str:
        manager = dependency(scoped)
        value = await anyio.to_thread.run_sync(manager.__enter__)
        await anyio.to_thread.run_sync(manager.__exit__, None, None, None)
        return value

    assert anyio.run(serve, False) == "db-session"
    assert anyio.run(serve, True) == "db-session"


def _inner(n: int) -> int:
    return n * 2


traced_inner = replay.traced(_inner)


def _outer(n: int) -> int:
    return traced_inner(n) + 1


traced_outer = replay.traced(_outer)


async def _outer_async(n: int) -> int:
    await asyncio.sleep(0.005)
    first = traced_inner(n)
    await asyncio.sleep(0.005)
    return first + traced_inner(n)


traced_outer_async = replay.traced(_outer_async)


def test_ids_stay_per_request_across_threads_tasks_and_nested_scopes(
        captured: Captured) -> None:
    barrier = threading.Barrier(4)
    results: dict[int, list[int]] = {}

    def worker(n: int) -> None:
        out = []
        with replay.request_scope(f"req_thread{n}"):
            for _ in range(3):
                barrier.wait(5)  # the threads' calls interleave
                out.append(traced_outer(n))
        results[n] = out

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    async def task(n: int) -> int:
        with replay.request_scope(f"req_task{n}"):
            return int(await traced_outer_async(n))

    async def gather() -> list[int]:
        return list(await asyncio.gather(*(task(n) for n in range(3))))

    task_results = asyncio.run(gather())
    with replay.request_scope("req_outer"):
        first = traced_outer(1)
        with replay.request_scope("req_nested"):
            nested = traced_outer(2)
        second = traced_outer(3)

    assert results == {n: [2 * n + 1] * 3 for n in range(4)}
    assert task_results == [4 * n for n in range(3)]
    assert (first, nested, second) == (3, 5, 7)
    entries = captured.events("function_entry")
    by_id = {e["correlation_id"]: e for e in entries}

    def request_of(entry: dict[str, Any]) -> str:
        while "parent_correlation_id" in entry and entry["parent_correlation_id"] in by_id:
            entry = by_id[entry["parent_correlation_id"]]
        return str(entry.get("trace_id", entry["correlation_id"]))

    roots: dict[str, list[str]] = {}
    for entry in entries:
        if entry["function_name"] in ("_outer", "_outer_async"):
            roots.setdefault(request_of(entry), []).append(entry["correlation_id"])
        else:  # every inner call hangs under an outer call of its own request
            parent = by_id[entry["parent_correlation_id"]]
            assert parent["function_name"] in ("_outer", "_outer_async")
            assert request_of(entry) == request_of(parent)
    for n in range(4):
        assert roots[f"req_thread{n}"] == [f"req_thread{n}", f"req_thread{n}.2",
                                           f"req_thread{n}.3"]
    for n in range(3):
        assert roots[f"req_task{n}"] == [f"req_task{n}"]
    assert roots["req_outer"] == ["req_outer", "req_outer.2"]
    assert roots["req_nested"] == ["req_nested"]


def test_reconfiguring_while_threads_are_inside_traced_calls(restore_capture: None) -> None:
    """configure()/shutdown() from another thread never reaches into a call in flight."""
    stop = threading.Event()
    failures: list[BaseException] = []
    counts: list[int] = []

    def worker(n: int) -> None:
        done = 0
        try:
            while not stop.is_set():
                with replay.request_scope(f"req_{n}_{done}"):
                    assert traced_outer(done) == 2 * done + 1
                done += 1
        except BaseException as exc:
            failures.append(exc)
        counts.append(done)

    replay.configure(sink=replay.MemorySink())
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for round_ in range(30):
        if round_ % 3 == 2:
            replay.shutdown()
        else:
            replay.configure(sink=replay.MemorySink(), sample_rate=1.0 if round_ % 2 else 0.5)
        time.sleep(0.002)
    stop.set()
    for thread in threads:
        thread.join(10)
    assert failures == []
    assert len(counts) == 3
    assert all(count > 0 for count in counts)


def test_a_call_in_flight_during_reconfigure_stays_in_its_own_sink(
        restore_capture: None) -> None:
    first, second = replay.MemorySink(), replay.MemorySink()
    replay.configure(sink=first)
    inside, release = threading.Event(), threading.Event()

    def slow(n: int) -> int:
        inside.set()
        release.wait(5)
        return n

    traced_slow = replay.traced(slow)
    results: list[int] = []

    def request() -> None:
        with replay.request_scope("req_inflight"):
            results.append(traced_slow(21))

    thread = threading.Thread(target=request)
    thread.start()
    assert inside.wait(5)
    replay.configure(sink=second)
    release.set()
    thread.join(5)
    assert results == [21]
    kinds = [orjson.loads(line)["event_type"] for line in second.lines]
    assert "function_exit" not in kinds, "sink B got the exit of a call that began in sink A"


# -- sinks ------------------------------------------------------------------------------


def test_a_file_sink_whose_path_turns_into_a_full_disk_mid_run(restore_capture: None,
                                                               tmp_path: Path) -> None:
    """The working file is swapped for /dev/full while the app runs: the sink notices the
    path names another file, fails on it, counts, and the calls keep their results."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    path = tmp_path / "trace.jsonl"
    sink = replay.FileSink(path, flush_interval=0.01)
    replay.configure(sink=sink)

    def serve(count: int, start: int) -> tuple[list[int], float]:
        out, slowest = [], 0.0
        for n in range(start, start + count):
            with replay.request_scope(f"r{n}"):
                result, elapsed = _timed(functools.partial(traced_outer, n))
            out.append(result)
            slowest = max(slowest, elapsed)
        return out, slowest

    before, _ = serve(50, 0)
    assert sink.flush(timeout=10)
    swap = tmp_path / "swap"
    swap.symlink_to("/dev/full")
    os.replace(swap, path)  # mid-run: the path now names a device that is always full
    during, slowest = serve(200, 50)
    assert sink.flush(timeout=10)
    replay.shutdown()
    assert before + during == [2 * n + 1 for n in range(250)]
    assert slowest < 0.5
    stats = replay.stats()
    assert stats["written"] == 50 * 4
    assert stats["dropped_by_reason"] == {"io_error": 200 * 4}
    assert "No space left on device" in stats["last_error"]


# -- HTTP: a raw server on 127.0.0.1 whose every byte the test decides ----------------

BINARY = bytes(range(256)) * 40  # 10,240 bytes, under the 16 KB capture cap
LINES = b"a\nbb\nccc\n" * 100
LARGE = b"z" * 40_000  # over the cap: never read by capture


class RawServer:
    """Answers HTTP/1.1 requests (keep-alive) with bytes written by hand."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = int(self.listener.getsockname()[1])
        self.release = threading.Event()
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            buffer = b""
            try:
                while True:
                    while b"\r\n\r\n" not in buffer:
                        data = conn.recv(65536)
                        if not data:
                            return
                        buffer += data
                    head, _, buffer = buffer.partition(b"\r\n\r\n")
                    method, path = head.split(b" ")[:2]
                    if not self._answer(conn, method.decode(), path.decode()):
                        return
            except OSError:
                return

    def _answer(self, conn: socket.socket, method: str, path: str) -> bool:
        def fixed(body: bytes, status: bytes = b"200 OK") -> None:
            head = b"HTTP/1.1 %s\r\nContent-Length: %d\r\n\r\n" % (status, len(body))
            conn.sendall(head if method == "HEAD" else head + body)

        if path == "/bin":
            fixed(BINARY)
        elif path == "/lines":
            fixed(LINES)
        elif path == "/large":
            fixed(LARGE)
        elif path == "/nocontent":
            conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
        elif path == "/chunked":
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for n in range(5):
                chunk = b"line %d\n" % n
                conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            conn.sendall(b"0\r\n\r\n")
        elif path == "/cut":  # promises 100 bytes, sends 40, hangs up
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 40)
            return False
        elif path == "/stall":  # promises 100 bytes, sends 40, then nothing for a while
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"y" * 40)
            self.release.wait(5)
            return False
        elif path == "/slow":  # the status at once, the body 0.6 s later
            conn.sendall(b"HTTP/1.1 503 Busy\r\nContent-Length: 5\r\n\r\n")
            time.sleep(0.6)
            conn.sendall(b"retry")
        else:
            fixed(b"not found", b"404 Not Found")
        return True

    def stop(self) -> None:
        self.release.set()
        self.stopping.set()
        self._acceptor.join(5)
        self.listener.close()
        for thread in self.threads:
            thread.join(5)


@pytest.fixture
def raw_server() -> Iterator[RawServer]:
    server = RawServer()
    try:
        yield server
    finally:
        server.stop()


def _on_connection(port: int, talk: Callable[[http.client.HTTPConnection], Any],
                   timeout: float = 5.0) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        return talk(conn)
    finally:
        conn.close()


def _bare_then_captured(talk: Callable[[], Any]) -> tuple[Any, Any]:
    """``talk`` without any capture installed, then inside a sampled request."""
    bare = talk()
    replay.configure(sink=replay.MemorySink())
    with replay.request_scope("req_http"):
        on = talk()
    return bare, on


def _outcome(function: Callable[[], Any]) -> Any:
    try:
        return ("ok", function())
    except http.client.IncompleteRead as exc:
        return ("IncompleteRead", bytes(exc.partial))
    except http.client.HTTPException:
        return ("HTTPException", "HTTPException")  # BadStatusLine, RemoteDisconnected...
    except OSError as exc:
        return ("OSError", type(exc).__name__)


def test_http_client_reads_the_same_bytes_with_capture(restore_capture: None,
                                                       raw_server: RawServer) -> None:
    """Capture reads a small body ahead and puts it back: every way of reading it, and
    the kept-alive connection under it, must see what they see without capture."""

    def talk(conn: http.client.HTTPConnection) -> list[Any]:
        out: list[Any] = []

        def get(path: str, method: str = "GET") -> http.client.HTTPResponse:
            conn.request(method, path)
            return conn.getresponse()

        response = get("/bin")
        socket_before = conn.sock
        pieces = []
        while piece := response.read(777):
            pieces.append(piece)
        out.append((b"".join(pieces) == BINARY, response.isclosed()))
        response = get("/lines")
        lines = list(response)
        out.append((lines[:3], len(lines), response.read(), response.isclosed()))
        response = get("/bin")
        buffer = bytearray(5000)
        out.append((response.readinto(buffer), bytes(buffer[:3]), response.peek(3)[:3],
                    response.read1(10), response.readline()[:5], len(response.read())))
        response = get("/bin", "HEAD")
        out.append((response.status, response.getheader("Content-Length"), response.read(),
                    response.isclosed()))
        response = get("/nocontent")
        out.append((response.status, response.read(), response.isclosed()))
        response = get("/chunked")
        out.append([response.readline() for _ in range(3)] + [response.read()])
        response = get("/large")
        out.append((response.read(10), len(response.read())))
        out.append(conn.sock is socket_before)  # one connection served them all
        response = get("/lines")
        out.append(_outcome(lambda: get("/lines")))  # the first answer is still unread
        return out

    bare, on = _bare_then_captured(lambda: _on_connection(raw_server.port, talk))
    assert on == bare
    assert bare[-2] is True


def test_a_body_cut_short_fails_as_without_capture(restore_capture: None,
                                                   raw_server: RawServer) -> None:
    def talk(conn: http.client.HTTPConnection) -> Any:
        conn.request("GET", "/cut")
        response = conn.getresponse()
        return _outcome(response.read)

    def talk_in_pieces(conn: http.client.HTTPConnection) -> Any:
        conn.request("GET", "/cut")
        response = conn.getresponse()
        return _outcome(lambda: response.read(10))

    bare, on = _bare_then_captured(lambda: (_on_connection(raw_server.port, talk),
                                            _on_connection(raw_server.port, talk_in_pieces)))
    assert bare == (("IncompleteRead", b"x" * 40), ("ok", b"x" * 10))
    assert on == bare


@pytest.mark.xfail(strict=True, reason=(
    "BUG: a body that stalls mid-way blocks getresponse() until the socket times out "
    "(0.5 s here, for ever without a timeout) and the bytes that had arrived are lost: "
    "the bare app gets the response at once and read(10) returns 10 bytes; with capture "
    "read(10) raises OSError. Root cause: http_client.py:_read_and_restore reads the "
    "whole body (any Content-Length up to max_body) inside getresponse. Fix: never read "
    "ahead in getresponse; record the body as the application reads it (wrap "
    "response.fp in a tee that keeps up to max_body) and emit at close/EOF."))
def test_a_stalled_body_does_not_block_getresponse(restore_capture: None,
                                                   raw_server: RawServer) -> None:
    def talk(conn: http.client.HTTPConnection) -> Any:
        conn.request("GET", "/stall")
        response, took = _timed(conn.getresponse)
        return took < 0.25, _outcome(lambda: response.read(10))

    bare, on = _bare_then_captured(lambda: _on_connection(raw_server.port, talk, timeout=0.5))
    assert bare == (True, ("ok", b"y" * 10))
    assert on == bare


@pytest.mark.xfail(strict=True, reason=(
    "BUG: getresponse() waits for the body: a 503 whose body comes 0.6 s after its "
    "status line is returned after 0.6 s with capture, at once bare (an app that checks "
    "the status and gives up never waits). Root cause: the eager read in "
    "http_client.py:_read_and_restore. Fix: as above, tee the body as it is read."))
def test_getresponse_does_not_wait_for_the_body(restore_capture: None,
                                                raw_server: RawServer) -> None:
    def talk(conn: http.client.HTTPConnection) -> Any:
        conn.request("GET", "/slow")
        response, took = _timed(conn.getresponse)
        return response.status, took < 0.3, response.read()

    bare, on = _bare_then_captured(lambda: _on_connection(raw_server.port, talk))
    assert bare == (503, True, b"retry")
    assert on == bare


@pytest.mark.xfail(strict=True, reason=(
    "BUG: HTTPResponse.fileno() raises io.UnsupportedOperation with capture (an int "
    "bare), so code that select()s on a response breaks. Root cause: "
    "http_client.py:_read_and_restore replaces response.fp with "
    "BufferedReader(BytesIO(data)). Fix: do not replace fp (tee it), or give the "
    "replacement a fileno() of the original socket file."))
def test_a_response_keeps_its_file_descriptor(restore_capture: None,
                                              raw_server: RawServer) -> None:
    def talk(conn: http.client.HTTPConnection) -> Any:
        conn.request("GET", "/bin")
        response = conn.getresponse()
        outcome = _outcome(lambda: type(response.fileno()).__name__)
        response.read()
        return outcome

    bare, on = _bare_then_captured(lambda: _on_connection(raw_server.port, talk))
    assert bare == ("ok", "int")
    assert on == bare


@pytest.mark.xfail(strict=True, reason=(
    "BUG: capture changes what a kept-alive connection does after a body the app did "
    "not finish: bare, the unread bytes are still on the socket and the next request "
    "on the connection fails (BadStatusLine, an HTTPException); with capture it "
    "succeeds, because the body was drained in getresponse. The app's behaviour "
    "depends on whether capture is on (a bug hidden in production, seen in replay). "
    "Root cause: the eager read in http_client.py:_read_and_restore. Fix: as above."))
def test_an_abandoned_body_leaves_the_connection_as_without_capture(
        restore_capture: None, raw_server: RawServer) -> None:
    def talk(conn: http.client.HTTPConnection) -> Any:
        conn.request("GET", "/bin")
        response = conn.getresponse()
        head = response.read(100)
        response.close()

        def again() -> Any:
            conn.request("GET", "/lines")
            return conn.getresponse().read()[:4]

        return head[:4], _outcome(again)

    bare, on = _bare_then_captured(lambda: _on_connection(raw_server.port, talk))
    assert bare == (BINARY[:4], ("HTTPException", "HTTPException"))
    assert on == bare


# -- chance: the wrapped random/os functions --------------------------------------------


@pytest.mark.parametrize("name", ["random.randint", "random.random", "os.urandom"])
def test_wrapped_sources_of_chance_still_pickle(restore_capture: None, name: str) -> None:
    owner, attribute = name.split(".")
    module = {"random": random, "os": os}[owner]

    def round_trip() -> bool:
        function = getattr(module, attribute)
        return callable(pickle.loads(pickle.dumps(function)))

    assert round_trip()
    replay.configure(sink=replay.MemorySink())
    assert round_trip()


# -- databases ----------------------------------------------------------------------------


def _sqlite_connect(tmp_path: Path) -> Callable[[], Any]:
    return lambda: sqlite3.connect(tmp_path / "hunt.db")


def _connector(system: str, tmp_path: Path) -> tuple[Callable[[], Any], str]:
    """A connect function and the driver's placeholder."""
    if system == "sqlite":
        return _sqlite_connect(tmp_path), "?"
    if system == "postgresql":
        require("PostgreSQL", PG_PORT)
        import psycopg

        return lambda: psycopg.connect(PG_DSN), "%s"
    require("MariaDB", MYSQL_PORT)
    import pymysql

    return lambda: pymysql.connect(**MYSQL), "%s"


SYSTEMS = ["sqlite", "postgresql", "mysql"]


@pytest.mark.parametrize("system", SYSTEMS)
def test_executemany_pulls_a_generator_as_the_driver_does(restore_capture: None,
                                                          tmp_path: Path, system: str) -> None:
    connect, mark = _connector(system, tmp_path)

    def run(table: str) -> list[Any]:
        conn = connect()
        try:
            cur = conn.cursor()
            cur.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY, v VARCHAR(10))")
            cur.executemany(f"INSERT INTO {table} VALUES ({mark}, {mark})",
                            [(n, str(n)) for n in range(4)])

            def updates() -> Iterator[tuple[str, int]]:
                yield ("x", 1)
                yield ("y", 2)
                raise LookupError("the feed broke")

            with contextlib.suppress(LookupError):
                cur.executemany(f"UPDATE {table} SET v = {mark} WHERE id = {mark}", updates())
            cur.execute(f"SELECT v FROM {table} ORDER BY id")
            values = [row[0] for row in cur.fetchall()]
            cur.execute(f"DROP TABLE {table}")
            conn.commit()
            return values
        finally:
            conn.close()

    bare = run(unique("hunt_many"))
    sink = replay.MemorySink()
    replay.configure(sink=sink)
    with replay.request_scope("req_many"):
        on = run(unique("hunt_many"))
    assert bare == ["0", "x", "y", "3"]
    assert on == bare
    failed = next(event for event in map(orjson.loads, sink.lines)
                  if event.get("operation") == "executemany" and "error_type" in event)
    assert failed["error_type"] == "LookupError"  # the sets the driver pulled are recorded
    assert failed["parameters"] == [{"$type": "tuple", "items": ["x", 1]},
                                    {"$type": "tuple", "items": ["y", 2]}]


@pytest.mark.parametrize("system", SYSTEMS)
def test_cursors_behave_as_bare(restore_capture: None, tmp_path: Path, system: str) -> None:
    """Iteration, fetchmany/fetchone, reuse mid-result, description, rowcount, lastrowid
    and the driver's exceptions, through capture's Python wrappers, as without them."""
    connect, mark = _connector(system, tmp_path)

    def run(table: str) -> list[Any]:
        out: list[Any] = []
        conn = connect()
        try:
            cur = conn.cursor()
            cur.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY, v VARCHAR(10))")
            cur.executemany(f"INSERT INTO {table} VALUES ({mark}, {mark})",
                            [(n, str(n)) for n in range(6)])
            out.append((cur.rowcount, getattr(cur, "lastrowid", None)))
            cur.execute(f"INSERT INTO {table} VALUES ({mark}, {mark})", (10, "ten"))
            out.append((cur.rowcount, getattr(cur, "lastrowid", None), cur.description))
            conn.commit()
            cur.execute(f"SELECT id, v FROM {table} ORDER BY id")
            out.append(([col[0] for col in cur.description], cur.fetchone(),
                        cur.fetchmany(2), next(iter(cur)), [tuple(r) for r in cur]))
            cur.execute(f"SELECT id FROM {table} WHERE id < {mark} ORDER BY id", (3,))
            out.append(cur.fetchone())
            cur.execute(f"SELECT v FROM {table} WHERE id = {mark}", (10,))  # reuse mid-result
            out.append((cur.fetchall(), cur.fetchone(), cur.fetchmany(3)))
            try:
                cur.execute(f"SELECT * FROM {table}_missing")
            except Exception as exc:
                out.append((type(exc).__name__, str(exc).replace(table, "T").split("\n")[0]))
            conn.rollback()
            cur = conn.cursor()
            cur.execute(f"DROP TABLE {table}")
            conn.commit()
        finally:
            conn.close()
        return out

    bare = run(unique("hunt_cur"))
    sink = replay.MemorySink()
    replay.configure(sink=sink)
    with replay.request_scope("req_cur"):
        on = run(unique("hunt_cur"))
    assert on == bare
    db_calls = [e for e in sink.events() if e["event_type"] == "db_call"]
    assert len(db_calls) >= 8  # capture was there, and recorded the calls


@pytest.mark.xfail(strict=True, reason=(
    "BUG (a documented design choice, still a difference): once capture is configured, "
    "sqlite3.connect hands out CapturedConnection/CapturedCursor subclasses, so type(x) is "
    "sqlite3.Connection/Cursor is False, repr() names pytest_replay's classes, "
    "conn.cursor(None) returns a cursor instead of raising TypeError, and a keyword "
    "passed to conn.execute raises a different TypeError message. Root cause: "
    "db_sqlite.py (_wrap_connect passes factory=CapturedConnection; "
    "CapturedConnection.cursor/execute are Python re-implementations). Fix: keep the "
    "subclasses but mirror the C signatures (positional-only, factory=None refused) and "
    "set __module__/__qualname__ = 'sqlite3'/'Connection' and 'Cursor' for repr."))
@pytest.mark.parametrize("probe", ["types", "cursor-none", "execute-keyword"])
def test_sqlite_objects_look_as_bare(restore_capture: None, tmp_path: Path,
                                     probe: str) -> None:
    def run() -> Any:
        conn = sqlite3.connect(tmp_path / "look.db")
        try:
            if probe == "types":
                return (type(conn) is sqlite3.Connection,
                        type(conn.cursor()) is sqlite3.Cursor,
                        repr(conn).split(" object")[0])
            call: Callable[[], Any] = (lambda: conn.cursor(cast(Any, None))
                                       ) if probe == "cursor-none" else (
                lambda: conn.execute("SELECT 1", parameters=()))  # type: ignore[call-arg]
            try:
                call()
            except TypeError as exc:
                return ("TypeError", str(exc).replace("CapturedConnection", "Connection"))
            return "no error"
        finally:
            conn.close()

    bare, on = _bare_then_captured(run)
    assert on == bare


def test_a_traced_yield_fixture_still_yields_its_value(pytester: pytest.Pytester) -> None:
    """pytest decides a fixture is a yield fixture with ``inspect.isgeneratorfunction``:
    a traced one must give the test what it yields, and run its teardown."""
    pytester.makepyfile(test_fixture_user="""
        import pytest
        import pytest_replay as replay

        torn_down = []

        @pytest.fixture
        @replay.traced
        def session():
            yield "db-session"
            torn_down.append(True)

        def test_uses_the_value(session):
            assert session == "db-session"

        def test_teardown_ran():
            assert torn_down == [True]
        """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly")
    result.assert_outcomes(passed=2)
