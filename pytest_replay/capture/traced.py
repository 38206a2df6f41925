"""``@traced``: function entry/exit, arguments, outcome and errors, for sync and async code.

This is the hot path of the whole product, so it is written for speed:

* everything static about a call site is encoded once per configuration
  into ``bytes`` templates (:mod:`pytest_replay.capture.callsite`), and each
  call only pastes in the clock, the ids, the arguments and the result;
* a line goes from Python values to JSON bytes in one ``orjson.dumps`` plus
  one ``%`` formatting, with no event dict built;
* ids are pre-escaped bytes, so they are never encoded again;
* nothing about the call is kept once it returns (lines are bytes).

Capture never changes what the function does: its exceptions propagate
unchanged, generators are returned unconsumed, and any failure of capture
itself costs events (counted), never the call.

Sync callables get the C accelerator's wrapper when it is built
(:mod:`pytest_replay.capture._speedups_loader` says which runs): it does the
common case in C and hands every other case to the Python wrapper below, which
stays the reference and writes the same bytes.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from types import MethodType, ModuleType
from typing import Any, Final, TypeVar, cast

import orjson

from pytest_replay.capture import _speedups_loader
from pytest_replay.capture.callsite import CallSite, plain, value_json
from pytest_replay.capture.errors import message_of
from pytest_replay.capture.ids import IDS
from pytest_replay.capture.redact import MIN_SCANNED
from pytest_replay.capture.runtime import CURRENT_FRAME, RUNTIME, UNSAMPLED, TraceRef, frame_id
from pytest_replay.capture.stats import UNENCODABLE
from pytest_replay.format import events as ev
from pytest_replay.format.values import FUNCTION_STAND_INS

F = TypeVar("F", bound=Callable[..., Any])
TRACED_ATTRIBUTE: Final = "__telemetry_replay_traced__"
TRACED_CODES: set[object] = set()
"""Code objects of decorated functions: replay's observer skips them (the wrapper reports)."""

_clock: Final = time.time_ns
_get_frame: Final = CURRENT_FRAME.get
_set_frame: Final = CURRENT_FRAME.set
_WRAPPER_CODES: set[object] = set()
"""Code objects of our wrappers: a traceback passing through one was recorded there."""


def _capture_failed(exc: Exception) -> None:
    RUNTIME.drop(f"capture failed: {type(exc).__name__}: {exc}", UNENCODABLE)


def _recorded_below(exc: BaseException) -> bool:
    """Whether ``exc`` passed through another traced call below this one (which recorded it).

    The traceback starts at the wrapper handling it; any other wrapper frame
    further down is a traced callee that already wrote the ``error`` event.
    """
    tb = exc.__traceback__
    tb = tb.tb_next if tb is not None else None
    codes = _WRAPPER_CODES
    while tb is not None:
        if tb.tb_frame.f_code in codes:
            return True
        tb = tb.tb_next
    return False


def _record_failure(site: CallSite, cid_b: bytes, started: int, exc: BaseException) -> None:
    """Emit the ``error`` event (once per exception) and the failing ``function_exit``.

    The innermost traced call records the error with its failing frame's
    locals; outer calls it passes through write only their exit with
    ``error: true``.
    """
    try:
        cid = frame_id((cid_b, None))
        if not _recorded_below(exc):
            RUNTIME.emit(RUNTIME.error_event(exc, cid))
        now = _clock()
        RUNTIME.emit({
            "event_type": ev.FUNCTION_EXIT,
            "timestamp_ns": now,
            "correlation_id": cid,
            "function_name": site.function_name,
            "error": True,
            "error_type": type(exc).__name__,
            "message": message_of(exc, 500),
            "duration_ns": now - started,
        })
    except Exception as failure:  # capture must never replace the application's exception
        _capture_failed(failure)


def traced(function: F) -> F:
    """Record each call of ``function`` (sync or async; methods too) as entry/exit events.

    Generator functions are wrapped too: the call is recorded, and the
    generator is returned untouched (never iterated by capture). A
    ``property`` gets its getter, setter and deleter traced.
    """
    if isinstance(function, (classmethod, staticmethod)):
        inner = traced(function.__func__)
        return cast(F, type(function)(inner))
    if type(cast(Any, function)) is property:  # its getter, setter and deleter are the calls
        accessed = cast(property, function)
        accessors: tuple[Any, ...] = (accessed.fget, accessed.fset, accessed.fdel)
        getter, setter, deleter = (None if accessor is None else traced(accessor)
                                   for accessor in accessors)
        return cast(F, property(getter, setter, deleter, accessed.__doc__))
    if getattr(function, TRACED_ATTRIBUTE, False):
        return function
    site = CallSite(function)
    code = getattr(function, "__code__", None)
    if code is not None:
        TRACED_CODES.add(code)
    if inspect.iscoroutinefunction(function):
        wrapper = _async_wrapper(function, site)
    elif _ACCELERATOR is not None:
        wrapper = functools.wraps(function)(
            _ACCELERATOR.TracedFunction(function, site, _sync_wrapper(function, site)))
        if code is not None and code.co_flags & _GENERATOR_FLAGS:
            _look_like(wrapper, function, code)
    elif code is not None and code.co_flags & _GENERATOR_FLAGS:
        wrapper = functools.wraps(function)(GeneratorFunctionView(_sync_wrapper(function, site)))
        _look_like(wrapper, function, code)
    else:
        wrapper = functools.wraps(function)(_sync_wrapper(function, site))
    setattr(wrapper, TRACED_ATTRIBUTE, True)
    return cast(F, wrapper)


_GENERATOR_FLAGS: Final = inspect.CO_GENERATOR | inspect.CO_ASYNC_GENERATOR


def _look_like(wrapper: Any, function: Any, code: Any) -> None:
    """Let ``inspect.isgeneratorfunction``/``isasyncgenfunction`` see the wrapped function.

    They read the code flags of any function-like object (one with ``__code__``,
    ``__defaults__`` and ``__kwdefaults__``). FastAPI's yield-dependencies and
    pytest's yield fixtures dispatch on them: a wrapper that hid them would hand
    out the generator instead of what it yields. Only generator functions get
    these attributes; calling the wrapper still runs the wrapper.
    """
    wrapper.__code__ = code
    wrapper.__defaults__ = getattr(function, "__defaults__", None)
    wrapper.__kwdefaults__ = getattr(function, "__kwdefaults__", None)


class GeneratorFunctionView:
    """The pure-Python wrapper of a generator function, as a callable object.

    A function's ``__code__`` is what runs when it is called, so the Python
    wrapper itself cannot carry the generator function's; this object can
    (see :func:`_look_like`). It binds to instances as a function does.
    """

    def __init__(self, call: Callable[..., Any]) -> None:
        self._call = call

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(*args, **kwargs)

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        return self if instance is None else MethodType(self, instance)


def traced_call() -> None:  # the C accelerator's wrapper, as tracebacks show it
    """Stands in tracebacks for the C wrapper, where the Python wrapper's frame would be.

    :func:`_recorded_below` finds traced calls in a traceback by these frames.
    """


def _sync_wrapper(function: Callable[..., Any], site: CallSite) -> Callable[..., Any]:
    """The pure-Python wrapper: the reference behaviour, the fallback of the C one.

    The frame is put back with ``set(parent)``, not ``reset(token)``: the same
    value for readers, a third of the cost.
    """
    rt = RUNTIME
    ids = IDS
    clock, get_frame, set_frame = _clock, _get_frame, _set_frame

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not rt.active:
            return function(*args, **kwargs)
        parent = get_frame()
        if parent is not None and parent[0] is None:
            return function(*args, **kwargs)  # inside a request sampling left out
        started = clock()
        epoch = rt.epoch
        try:
            if site.generation != rt.generation:
                site.refresh()
            if parent is None:
                state, ref = rt.open_root()
                cid_b = state[0]
                line = site.root_format % (
                    started, cid_b, ref,
                    site.positional_json(args) if not kwargs else site.args_json(args, kwargs),
                ) if cid_b is not None else b""
            else:
                trace = parent[1]
                cid_b = next(ids.ids)
                state = (cid_b, trace)
                line = site.entry_format % (
                    started, cid_b, parent[0], trace.field,  # type: ignore[union-attr]
                    site.positional_json(args) if not kwargs else site.args_json(args, kwargs))
        except Exception as exc:
            _capture_failed(exc)
            state, cid_b = UNSAMPLED, None  # this call runs uncaptured, and so do its callees
        else:
            try:
                if line:
                    rt.write(line)
            except Exception as exc:
                rt.sink_failed(exc)
        set_frame(state)
        if cid_b is None:  # sampling left this request out: its callees skip capture cheaply
            try:
                return function(*args, **kwargs)
            finally:
                set_frame(parent)
        try:
            result = function(*args, **kwargs)
        except BaseException as exc:
            set_frame(parent)
            if rt.epoch == epoch:
                _record_failure(site, cid_b, started, exc)
            else:
                rt.stale_exit()
            raise
        set_frame(parent)
        if rt.epoch != epoch:  # reconfigured meanwhile: the entry is in a sink that is gone
            rt.stale_exit()
            return result
        try:
            now = clock()
            line = site.exit_format % (now, cid_b, site.result_json(result), now - started)
        except Exception as exc:
            _capture_failed(exc)
        else:
            try:
                rt.write(line)
            except Exception as exc:
                rt.sink_failed(exc)
        return result

    _WRAPPER_CODES.add(wrapper.__code__)
    return wrapper


def _async_wrapper(function: Callable[..., Any], site: CallSite) -> Callable[..., Any]:
    rt = RUNTIME
    ids = IDS
    clock, get_frame, set_frame = _clock, _get_frame, _set_frame

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not rt.active:
            return await function(*args, **kwargs)
        parent = get_frame()
        if parent is not None and parent[0] is None:
            return await function(*args, **kwargs)  # inside a request sampling left out
        started = clock()
        epoch = rt.epoch
        try:
            if site.generation != rt.generation:
                site.refresh()
            if parent is None:
                state, ref = rt.open_root()
                cid_b = state[0]
                line = site.root_format % (
                    started, cid_b, ref,
                    site.positional_json(args) if not kwargs else site.args_json(args, kwargs),
                ) if cid_b is not None else b""
            else:
                trace = parent[1]
                cid_b = next(ids.ids)
                state = (cid_b, trace)
                line = site.entry_format % (
                    started, cid_b, parent[0], trace.field,  # type: ignore[union-attr]
                    site.positional_json(args) if not kwargs else site.args_json(args, kwargs))
        except Exception as exc:
            _capture_failed(exc)
            state, cid_b = UNSAMPLED, None  # this call runs uncaptured, and so do its callees
        else:
            try:
                if line:
                    rt.write(line)
            except Exception as exc:
                rt.sink_failed(exc)
        set_frame(state)
        if cid_b is None:
            try:
                return await function(*args, **kwargs)
            finally:
                set_frame(parent)
        try:
            result = await function(*args, **kwargs)
        except BaseException as exc:
            set_frame(parent)
            if rt.epoch == epoch:
                _record_failure(site, cid_b, started, exc)
            else:
                rt.stale_exit()
            raise
        set_frame(parent)
        if rt.epoch != epoch:  # reconfigured meanwhile: the entry is in a sink that is gone
            rt.stale_exit()
            return result
        try:
            now = clock()
            line = site.exit_format % (now, cid_b, site.result_json(result), now - started)
        except Exception as exc:
            _capture_failed(exc)
        else:
            try:
                rt.write(line)
            except Exception as exc:
                rt.sink_failed(exc)
        return result

    _WRAPPER_CODES.add(wrapper.__code__)
    return functools.wraps(function)(wrapper)


def _start_accelerator() -> ModuleType | None:
    """The C accelerator, handed the Python pieces it calls back; None if it is not built
    or cannot start (then every wrapper is the Python one, and the loader says why)."""
    speedups = _speedups_loader.SPEEDUPS
    if speedups is None:
        return None
    try:
        speedups.install(runtime=RUNTIME, ids=IDS, frame_var=CURRENT_FRAME, trace_type=TraceRef,
                         dumps=orjson.dumps, value_json=value_json,
                         capture_failed=_capture_failed, record_failure=_record_failure,
                         unsampled=UNSAMPLED, marker=traced_call, min_scanned=MIN_SCANNED)
    except Exception as exc:  # a broken build must cost speed, never the import
        _speedups_loader.refuse(f"the C accelerator failed to start: {type(exc).__name__}: {exc}")
        return None
    _WRAPPER_CODES.add(traced_call.__code__)
    FUNCTION_STAND_INS.add(speedups.TracedFunction)
    return speedups


_ACCELERATOR: Final = _start_accelerator()

__all__ = ["TRACED_ATTRIBUTE", "TRACED_CODES", "CallSite", "plain", "traced", "value_json"]
