"""The C accelerator of ``@traced``: in use wherever it was built, and indistinguishable from
the pure-Python wrapper in what it writes and in what the call does."""

from __future__ import annotations

import asyncio
import copy
import gc
import importlib.machinery
import inspect
import math
import os
import pickle
import random
import re
import shutil
import struct
import subprocess
import sys
import sysconfig
import threading
import traceback
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

import pytest_replay as replay
from pytest_replay.capture import _speedups_loader
from pytest_replay.capture import traced as traced_module
from pytest_replay.capture.callsite import CallSite
from pytest_replay.capture.runtime import RUNTIME, Runtime
from pytest_replay.native_switch import PURE_PYTHON_ENV
from tests.capture.capturesupport import Captured

ROOT = Path(__file__).resolve().parents[2]
CAPTURE = Path(traced_module.__file__).parent
RUNNING = traced_module._ACCELERATOR is not None
needs_accelerator = pytest.mark.skipif(not RUNNING, reason=_speedups_loader.implementation())


def _pure_env() -> dict[str, str]:
    env = dict(os.environ)
    env[PURE_PYTHON_ENV] = "1"
    return env


@pytest.fixture(params=["accelerated", "python"])
def wrapping(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which wrapper ``@traced`` makes inside the test: the C accelerator's or the Python one."""
    if request.param == "accelerated":
        if not RUNNING:
            pytest.skip(_speedups_loader.implementation())
    else:
        monkeypatch.setattr(traced_module, "_ACCELERATOR", None)
    return str(request.param)


# -- the build --------------------------------------------------------------------------


def _built_here() -> list[Path]:
    return [CAPTURE / f"_speedups{suffix}" for suffix in importlib.machinery.EXTENSION_SUFFIXES
            if (CAPTURE / f"_speedups{suffix}").exists()]


def _can_compile() -> bool:
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    return shutil.which(compiler) is not None and headers.exists()


@pytest.mark.skipif(bool(os.environ.get(PURE_PYTHON_ENV)),
                    reason="pure Python forced by the environment")
def test_the_accelerator_is_built_and_in_use_where_it_can_be() -> None:
    built = _built_here()
    if not built and not _can_compile():
        pytest.skip("no C compiler or Python headers: the pure-Python wrapper runs")
    assert built, ("a C compiler and Python headers are here but the accelerator is not built: "
                   "run `pip install -e .` to build it")
    assert _speedups_loader.SPEEDUPS is not None, _speedups_loader.WHY_PURE
    assert RUNNING, _speedups_loader.implementation()
    assert _speedups_loader.implementation() == "C accelerator"
    assert type(replay.traced(lambda: None)).__name__ == "TracedFunction"
    source = (CAPTURE / "_speedups.c").stat().st_mtime
    assert all(path.stat().st_mtime >= source for path in built), (
        "_speedups.c changed after the accelerator was built: run `pip install -e .`")


@needs_accelerator
def test_a_build_of_another_version_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _speedups_loader.SPEEDUPS is not None
    monkeypatch.setattr(_speedups_loader.SPEEDUPS, "INTERFACE", -1)
    module, why = _speedups_loader._load()
    assert module is None
    assert "another version" in why


def test_the_environment_variable_forces_pure_python(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PURE_PYTHON_ENV, "1")
    module, why = _speedups_loader._load()
    assert module is None
    assert PURE_PYTHON_ENV in why
    monkeypatch.setenv(PURE_PYTHON_ENV, "0")
    assert (_speedups_loader._load()[0] is not None) == bool(_built_here())



def test_an_accelerator_that_fails_to_initialise_falls_back_with_the_reason(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.abc

    import pytest_replay.capture as capture_package

    class Broken(importlib.abc.MetaPathFinder):
        def find_spec(self, name: str, path: Any, target: Any = None) -> None:
            if name == "pytest_replay.capture._speedups":
                raise SystemError("initialization of _speedups raised")

    monkeypatch.delenv(PURE_PYTHON_ENV, raising=False)
    monkeypatch.delitem(sys.modules, "pytest_replay.capture._speedups", raising=False)
    monkeypatch.delattr(capture_package, "_speedups", raising=False)
    monkeypatch.setattr(sys, "meta_path", [Broken(), *sys.meta_path])
    module, why = _speedups_loader._load()
    assert module is None
    assert "SystemError: initialization of _speedups raised" in why

# -- the same lines -------------------------------------------------------------------------

_IDS = re.compile(rb"(?:req_)?f[0-9a-f]{8}_[0-9a-f]+")
_CLOCKS = re.compile(rb'"(timestamp_ns|duration_ns)":-?\d+')


def _scenario(env: dict[str, str]) -> list[bytes]:
    done = subprocess.run([sys.executable, "-m", "tests.capture.speedups_scenario"], cwd=ROOT,
                          env=env, capture_output=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-4000:]
    seen: dict[bytes, bytes] = {}
    text = _CLOCKS.sub(rb'"\1":0', done.stdout)
    text = _IDS.sub(lambda match: seen.setdefault(match.group(), b"id%d" % len(seen)), text)
    return text.split(b"\n")


@needs_accelerator
def test_both_implementations_write_the_same_lines() -> None:
    accelerated = _scenario(dict(os.environ))
    python = _scenario(_pure_env())
    assert accelerated[0] == b"C accelerator"
    assert python[0].startswith(b"pure Python")
    assert len(accelerated) == len(python) > 5000
    for index, (ours, theirs) in enumerate(zip(accelerated[1:], python[1:], strict=True)):
        assert ours == theirs, f"line {index + 1} differs"


@needs_accelerator
def test_the_capture_suite_passes_in_pure_python_too() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/capture", "-q", "-p", "no:cacheprovider", "-x"],
        cwd=ROOT, env=_pure_env(), capture_output=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout.decode(errors="replace")[-4000:]


@needs_accelerator
@given(st.floats(allow_nan=False, allow_infinity=False)
       | st.builds(lambda n, k: n / 10**k, st.integers(-(10**16), 10**16), st.integers(0, 18)))
def test_floats_are_written_as_orjson_writes_them(value: float) -> None:
    assert _speedups_loader.SPEEDUPS is not None
    ours = _speedups_loader.SPEEDUPS.float_json(value)
    assert ours is None or ours == orjson.dumps(value)


@needs_accelerator
def test_floats_agree_with_orjson_over_a_sweep() -> None:
    speedups = _speedups_loader.SPEEDUPS
    assert speedups is not None
    draw = random.Random(20240611)
    written = 0
    for index in range(120_000):
        kind = index % 4
        if kind == 0:  # decimals of every length
            value = draw.randint(0, 10 ** draw.randint(1, 16)) / 10 ** draw.randint(0, 18)
        elif kind == 1:  # any bit pattern
            value = struct.unpack("<d", struct.pack("<Q", draw.getrandbits(64)))[0]
        elif kind == 2:  # rounded amounts
            value = round(draw.uniform(-1e6, 1e6), draw.randint(0, 10))
        else:  # scaled integers, near every power of ten
            value = draw.randint(1, 10 ** draw.randint(1, 17)) * 10.0 ** draw.randint(-22, 2)
        if not math.isfinite(value):
            continue
        ours = speedups.float_json(value)
        if ours is not None:
            written += 1
            assert ours == orjson.dumps(value), value
    assert written > 50_000  # the sweep exercised the C formatting, not only orjson


@needs_accelerator
def test_install_found_orjson_agrees_on_floats_and_ascii_strings() -> None:
    assert _speedups_loader.SPEEDUPS is not None
    assert _speedups_loader.SPEEDUPS.shortcuts() == {"floats": True, "strings": True}
    assert _speedups_loader.SPEEDUPS.float_json(0.08) == b"0.08"
    assert _speedups_loader.SPEEDUPS.float_json(1e-7) is None  # orjson's to write


def test_a_traced_function_passed_as_a_value_is_recorded_as_a_reference(
        captured: Captured) -> None:
    @replay.traced
    def callback(x: int) -> int:
        return x

    @replay.traced
    def apply(function: Callable[[int], int], x: int) -> int:
        return function(x)

    apply(callback, 1)
    assert captured.events("function_entry")[0]["args"]["function"] == {
        "$type": "ref", "class": "builtins:function",
        "name": f"{__name__}:{callback.__qualname__}"}


# -- the call itself is untouched ------------------------------------------------------------


def test_the_wrapper_stands_for_the_function(wrapping: str, captured: Captured) -> None:
    def price(amount: float, rate: float = 0.1) -> float:
        """Docstring kept."""
        return amount * rate

    price.custom = "kept"  # type: ignore[attr-defined]
    wrapped = replay.traced(price)
    assert (type(wrapped).__name__ == "TracedFunction") == (wrapping == "accelerated")
    assert wrapped.__name__ == "price"
    assert wrapped.__qualname__ == price.__qualname__
    assert wrapped.__module__ == __name__
    assert wrapped.__doc__ == "Docstring kept."
    assert wrapped.__wrapped__ is price  # type: ignore[attr-defined]
    assert wrapped.custom == "kept"  # type: ignore[attr-defined]
    assert inspect.signature(wrapped) == inspect.signature(price)
    assert "price" in repr(wrapped)
    assert replay.traced(wrapped) is wrapped
    assert weakref.ref(wrapped)() is wrapped
    assert copy.copy(wrapped) is wrapped and copy.deepcopy(wrapped) is wrapped
    assert wrapped(10.0) == 1.0
    assert wrapped(10.0, rate=0.5) == 5.0
    assert [e["args"] for e in captured.events("function_entry")] == [
        {"amount": 10.0}, {"amount": 10.0, "rate": 0.5}]


@replay.traced
def module_level(x: int) -> int:
    """Pickled by reference, like any function."""
    return x + 1


def test_a_traced_function_pickles_by_reference() -> None:
    assert pickle.loads(pickle.dumps(module_level)) is module_level


def test_methods_bind_like_functions(wrapping: str, captured: Captured) -> None:
    class Shop:
        def __init__(self) -> None:
            self.total = 0.0

        @replay.traced
        def add(self, amount: float) -> float:
            self.total += amount
            return self.total

        @classmethod
        @replay.traced
        def make(cls) -> Shop:
            return cls()

        @replay.traced
        @staticmethod
        def tax(amount: float) -> float:
            return amount * 0.1

    shop = Shop.make()
    assert shop.add(2.0) == 2.0
    assert Shop.add(shop, 3.0) == 5.0
    assert shop.tax(10.0) == 1.0 and Shop.tax(20.0) == 2.0
    original = Shop.add.__wrapped__  # type: ignore[attr-defined]
    assert inspect.signature(shop.add) == inspect.signature(original.__get__(shop))
    assert inspect.ismethod(shop.add) and shop.add.__self__ is shop
    names = [e["qualname"].rsplit(".", 1)[-1] for e in captured.events("function_entry")]
    assert names == ["make", "add", "add", "tax", "tax"]


def test_exceptions_propagate_unchanged_with_their_traceback(wrapping: str,
                                                             captured: Captured) -> None:
    marker = KeyError("missing")

    def deepest() -> None:
        raise marker

    @replay.traced
    def inner() -> None:
        deepest()

    @replay.traced
    def outer() -> None:
        inner()

    with pytest.raises(KeyError) as raised:
        outer()
    assert raised.value is marker
    assert raised.value.__context__ is None and raised.value.__cause__ is None
    names = [frame.name for frame in traceback.extract_tb(raised.value.__traceback__)]
    wrapper = "traced_call" if wrapping == "accelerated" else "wrapper"
    # One entry per traced call where its wrapper stands, then the application's own frames.
    assert names[1:] == [wrapper, "outer", wrapper, "inner", "deepest"]
    errors = captured.events("error")
    assert len(errors) == 1 and errors[0]["function_name"] == "deepest"
    assert [e["error_type"] for e in captured.events("function_exit")] == ["KeyError"] * 2


def test_a_failure_of_capture_costs_events_never_the_call(
        wrapping: str, captured: Captured, monkeypatch: pytest.MonkeyPatch) -> None:
    @replay.traced
    def child(x: Any) -> Any:
        return x

    @replay.traced
    def root(x: int) -> int:
        return int(child(x)) + 1

    def broken(self: Runtime) -> Any:
        raise RuntimeError("no root for you")

    monkeypatch.setattr(Runtime, "open_root", broken)
    assert root(5) == 6
    assert captured.events() == []  # the call and its callee ran uncaptured
    assert replay.stats()["dropped_by_reason"] == {"unencodable": 1}
    monkeypatch.undo()

    def unencodable(self: CallSite, args: tuple[Any, ...]) -> bytes:
        raise ValueError("cannot encode")

    monkeypatch.setattr(CallSite, "_bound_json", unencodable)
    RUNTIME.service = None  # a new generation: sites bind their encoders again
    assert root(3) == 4  # scalars never reach the encoder
    assert len(captured.events("function_entry")) == 2
    thing = object()
    assert child(thing) is thing
    assert len(captured.events("function_entry")) == 2
    assert replay.stats()["dropped_by_reason"] == {"unencodable": 2}


def test_keyboard_interrupt_in_a_sink_propagates_as_in_python(wrapping: str,
                                                              restore_capture: None) -> None:
    class Interrupting:
        def write(self, line: bytes) -> None:
            raise KeyboardInterrupt

        def flush(self) -> None:
            """Nothing."""

        def close(self) -> None:
            """Nothing."""

    ran: list[int] = []

    @replay.traced
    def work() -> None:
        ran.append(1)

    replay.configure(sink=replay.MemorySink())
    RUNTIME.sink = Interrupting()
    with pytest.raises(KeyboardInterrupt):
        work()
    assert ran == []  # the entry line is written first, as in the Python wrapper


def test_threads_keep_their_own_call_stacks(wrapping: str, captured: Captured) -> None:
    @replay.traced
    def leaf(worker: int, index: int) -> int:
        return worker * 1000 + index

    @replay.traced
    def work(worker: int) -> int:
        return sum(leaf(worker, index) for index in range(200))

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    entries = captured.events("function_entry")
    roots = {e["correlation_id"]: e["args"]["worker"] for e in entries
             if e["function_name"] == "work"}
    leaves = [e for e in entries if e["function_name"] == "leaf"]
    assert len(roots) == 6 and len(leaves) == 1200
    assert all(roots[e["parent_correlation_id"]] == e["args"]["worker"] for e in leaves)
    assert len({e["correlation_id"] for e in entries}) == len(entries)


def test_sync_calls_inside_tasks_join_their_task(wrapping: str, captured: Captured) -> None:
    @replay.traced
    def step(name: str) -> str:
        return name

    @replay.traced
    async def job(name: str) -> str:
        await asyncio.sleep(0)
        return step(name)

    async def both() -> list[str]:
        return list(await asyncio.gather(job("a"), job("b")))

    assert asyncio.run(both()) == ["a", "b"]
    entries = captured.events("function_entry")
    jobs = {e["correlation_id"]: e["args"]["name"] for e in entries if e["function_name"] == "job"}
    steps = [e for e in entries if e["function_name"] == "step"]
    assert sorted(jobs.values()) == ["a", "b"]
    assert all(jobs[e["parent_correlation_id"]] == e["args"]["name"] for e in steps)


def test_nothing_is_kept_alive_by_a_call(wrapping: str, captured: Captured) -> None:
    class Thing:
        pass

    @replay.traced
    def echo(value: Any, other: Any) -> Any:
        return value

    @replay.traced
    def raises(value: Any) -> None:
        raise ValueError("no")

    @replay.traced
    def caller(value: Any) -> Any:
        return echo(value, value)

    argument, result = Thing(), Thing()
    scalar = 2**70  # an int orjson refuses: the encoder's path

    def rounds() -> None:
        for _ in range(300):
            echo(argument, result)
            echo(result, scalar)
            caller(argument)
            echo(value=argument, other=result)
            with pytest.raises(ValueError):
                raises(argument)
            captured.clear()

    rounds()
    gc.collect()
    before = (sys.getrefcount(argument), sys.getrefcount(result), sys.getrefcount(scalar))
    rounds()
    gc.collect()
    assert (sys.getrefcount(argument), sys.getrefcount(result), sys.getrefcount(scalar)) == before


def test_deep_recursion_through_the_wrapper(wrapping: str, captured: Captured) -> None:
    @replay.traced
    def countdown(n: int) -> int:
        return 0 if n == 0 else 1 + countdown(n - 1)

    assert countdown(200) == 200
    exits = captured.events("function_exit")
    assert len(exits) == 201 and exits[-1]["return_value"] == 200


def test_keyboard_interrupt_while_recording_an_error_propagates_as_in_python(
        wrapping: str, restore_capture: None) -> None:
    class InterruptedOnErrors:
        def write(self, line: bytes) -> None:
            if b'"event_type":"error"' in line:
                raise KeyboardInterrupt

        def flush(self) -> None:
            """Nothing."""

        def close(self) -> None:
            """Nothing."""

    marker = ValueError("the application's")

    @replay.traced
    def work() -> None:
        raise marker

    replay.configure(sink=replay.MemorySink())
    RUNTIME.sink = InterruptedOnErrors()
    with pytest.raises(KeyboardInterrupt) as raised:
        work()
    assert raised.value.__context__ is marker  # the Python wrapper's except block chains it


# -- the process around it ---------------------------------------------------------------------

_SUBINTERPRETER = """
import sys
try:
    import _interpreters as interpreters
except ImportError:
    try:
        import _xxsubinterpreters as interpreters
    except ImportError:
        print("no subinterpreters"); raise SystemExit(0)
import pytest_replay as replay
from pytest_replay.capture._speedups_loader import implementation

@replay.traced
def work(x):
    return x

sink = replay.MemorySink()
replay.configure(sink=sink, capture_http=False, capture_db=False, capture_chance=False)
work(1)
interp = interpreters.create()
try:
    interpreters.run_string(interp, '''
try:
    import pytest_replay as replay
    from pytest_replay.capture._speedups_loader import implementation
except ImportError:
    pass  # a dependency (orjson) refuses subinterpreters: nothing to share
else:
    @replay.traced
    def other(x):
        return x
    replay.configure(sink=replay.MemorySink(), capture_http=False, capture_db=False,
                     capture_chance=False)
    other(2)
''')
except Exception as exc:  # this Python's subinterpreters cannot run it at all
    print("subinterpreter failed:", exc)
work(3)
interpreters.destroy(interp)
work(4)
print(implementation(), len(sink.lines))
"""


@needs_accelerator
def test_a_subinterpreter_leaves_the_main_interpreters_capture_alone() -> None:
    """mod_wsgi runs applications in subinterpreters of one process: the accelerator's state is
    per process, so only the first interpreter gets it; the others run pure Python."""
    done = subprocess.run([sys.executable, "-c", _SUBINTERPRETER], cwd=ROOT, capture_output=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-4000:]
    out = done.stdout.decode().strip().splitlines()
    if out == ["no subinterpreters"]:
        pytest.skip("this Python has no subinterpreters")
    assert out[-1] == "C accelerator 6"  # three calls, an entry and an exit line each


_RECURSION = """
import sys, threading
import pytest_replay as replay

replay.configure(sink=replay.MemorySink(), capture_http=False, capture_db=False,
                 capture_chance=False)
if sys.argv[1] != "default":
    sys.setrecursionlimit(int(sys.argv[1]))

@replay.traced
def countdown(n):
    return 0 if n == 0 else 1 + countdown(n - 1)

def deepest():
    low, high = 10, int(sys.argv[2])
    while low < high:
        middle = (low + high + 1) // 2
        try:
            countdown(middle)
            low = middle
        except RecursionError:
            high = middle - 1
    print(low)

threading.stack_size(8 * 2**20)
thread = threading.Thread(target=deepest)
thread.start()
thread.join()
"""


def _deepest(limit: str, env: dict[str, str], most: int = 20_000) -> int:
    """How deep ``countdown`` recurses through ``@traced`` (up to ``most``) in an 8 MiB thread
    at recursion limit ``limit``."""
    done = subprocess.run([sys.executable, "-c", _RECURSION, limit, str(most)], cwd=ROOT, env=env,
                          capture_output=True, timeout=300, check=False)
    assert done.returncode == 0, (done.returncode, done.stderr.decode(errors="replace")[-2000:])
    return int(done.stdout)


@needs_accelerator
def test_deep_recursion_goes_at_least_as_deep_as_with_the_python_wrapper() -> None:
    """Under the default recursion limit the C wrapper never recurses less deep (the line
    buffers are off the C stack during the call). Past it, on 3.12 and later, CPython's own
    C recursion limit caps any C callable between Python frames: docs/capture.md says so."""
    accelerated, pure = _deepest("default", dict(os.environ)), _deepest("default", _pure_env())
    assert accelerated >= pure > 300
    if sys.version_info < (3, 12):  # no C recursion limit: as deep as the stack allows
        assert _deepest("100000", dict(os.environ), most=6000) == 6000
