"""``@traced``: function entry/exit, arguments, outcome and errors, for sync and async code.

Work done once per decorated function (names, redaction of parameter names,
the static part of the entry event) is done at decoration time, so each call
pays only for what changes: ids, the clock, the arguments and the outcome.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from typing import Any, Final, TypeVar, cast, final

from pytest_replay.capture.runtime import (
    CURRENT_FRAME,
    RUNTIME,
    UNSAMPLED,
    FrameState,
    new_frame_ids,
)
from pytest_replay.format import events as ev
from pytest_replay.format.values import redacted

F = TypeVar("F", bound=Callable[..., Any])
TRACED_ATTRIBUTE: Final = "__telemetry_replay_traced__"
TRACED_CODES: set[object] = set()
"""Code objects of decorated functions: replay's observer skips them (the wrapper reports)."""


@final
class CallSite:
    """What is known about a decorated function before it is ever called."""

    __slots__ = ("_names", "_redaction", "_secret", "function_name", "keyword_only", "module",
                 "positional", "qualname", "varargs", "varkw")

    def __init__(self, function: Callable[..., Any]) -> None:
        code = getattr(function, "__code__", None)
        self.function_name: str = getattr(function, "__name__", "?")
        self.module: str = getattr(function, "__module__", None) or "?"
        self.qualname: str = getattr(function, "__qualname__", self.function_name)
        self.positional: tuple[str, ...] = ()
        self.keyword_only: frozenset[str] = frozenset()
        self.varargs: str | None = None
        self.varkw: str | None = None
        if code is not None:
            count = code.co_argcount
            names = code.co_varnames
            self.positional = tuple(names[:count])
            index = count + code.co_kwonlyargcount
            self.keyword_only = frozenset(names[count:index])
            if code.co_flags & inspect.CO_VARARGS:
                self.varargs = names[index]
                index += 1
            if code.co_flags & inspect.CO_VARKEYWORDS:
                self.varkw = names[index]
        self._names: tuple[str, ...] = tuple(code.co_varnames) if code is not None else ()
        self._redaction: object = None
        self._secret: frozenset[str] = frozenset()

    def secret(self) -> frozenset[str]:
        """Parameter names to redact, recomputed when ``configure`` changes redaction."""
        redaction = RUNTIME.redaction
        if redaction is not self._redaction:
            self._secret = frozenset(n for n in self._names if redaction.is_secret_key(n))
            self._redaction = redaction
        return self._secret

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Encoded ``name -> value`` of the arguments actually passed."""
        encode = RUNTIME.encode
        secret = self.secret()
        out: dict[str, Any] = {}
        positional = self.positional
        for index, value in enumerate(args):
            if index < len(positional):
                name = positional[index]
                out[name] = redacted() if name in secret else encode(value)
            else:
                extra = args[index:]
                out[self.varargs or "*args"] = [encode(item) for item in extra]
                break
        if kwargs:
            named = {
                k: v
                for k, v in kwargs.items()
                if self.varkw is None or k in positional or k in self.keyword_only
            }
            spill = {k: v for k, v in kwargs.items() if k not in named}
            if named:
                out.update(RUNTIME.encode_named(named))
            if spill:
                out[self.varkw or "**kwargs"] = RUNTIME.encode_named(spill)
        return out

    def entry(self, cid: str, parent: str | None, trace_id: str | None,
              args: dict[str, Any]) -> dict[str, Any]:
        """The ``function_entry`` event."""
        event: dict[str, Any] = {
            "event_type": ev.FUNCTION_ENTRY,
            "timestamp_ns": time.time_ns(),
            "correlation_id": cid,
            "function_name": self.function_name,
            "module": self.module,
            "qualname": self.qualname,
            "args": args,
            "v": ev.FORMAT_VERSION,
        }
        if parent is not None:
            event["parent_correlation_id"] = parent
        if trace_id is not None and trace_id != cid:
            event["trace_id"] = trace_id
        return event

    def exit_ok(self, cid: str, started: int, result: Any) -> dict[str, Any]:
        """The ``function_exit`` event of a call that returned."""
        now = time.time_ns()
        return {
            "event_type": ev.FUNCTION_EXIT,
            "timestamp_ns": now,
            "correlation_id": cid,
            "function_name": self.function_name,
            "return_value": RUNTIME.encode(result),
            "duration_ns": now - started,
        }

    def exit_error(self, state: FrameState, started: int, exc: BaseException) -> None:
        """Emit the ``error`` event (once per exception) and the failing ``function_exit``."""
        cid = state.correlation_id
        if not _already_recorded(exc):
            _mark_recorded(exc)
            RUNTIME.emit(RUNTIME.error_event(exc, cid))
        now = time.time_ns()
        RUNTIME.emit({
            "event_type": ev.FUNCTION_EXIT,
            "timestamp_ns": now,
            "correlation_id": cid,
            "function_name": self.function_name,
            "error": True,
            "error_type": type(exc).__name__,
            "message": _short_message(exc),
            "duration_ns": now - started,
        })


_RECORDED: Final = "__telemetry_replay_recorded__"


def _already_recorded(exc: BaseException) -> bool:
    try:
        return bool(getattr(exc, _RECORDED, False))
    except Exception:
        return False


def _mark_recorded(exc: BaseException) -> None:
    try:
        setattr(exc, _RECORDED, True)
    except Exception:  # exceptions without __dict__ are recorded again by outer frames
        return


def _short_message(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:
        return "<unprintable message>"
    return text if len(text) <= 500 else text[:500] + "..."


def traced(function: F) -> F:
    """Record each call of ``function`` (sync or async; methods too) as entry/exit events."""
    if isinstance(function, (classmethod, staticmethod)):
        inner = traced(function.__func__)
        return cast(F, type(function)(inner))
    if getattr(function, TRACED_ATTRIBUTE, False):
        return function
    site = CallSite(function)
    code = getattr(function, "__code__", None)
    if code is not None:
        TRACED_CODES.add(code)
    if inspect.iscoroutinefunction(function):
        wrapper = _async_wrapper(function, site)
    else:
        wrapper = _sync_wrapper(function, site)
    setattr(wrapper, TRACED_ATTRIBUTE, True)
    return cast(F, wrapper)


def _sync_wrapper(function: Callable[..., Any], site: CallSite) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not RUNTIME.active:
            return function(*args, **kwargs)
        cid, parent, trace_id = new_frame_ids()
        if cid is None:
            token = CURRENT_FRAME.set(UNSAMPLED)
            try:
                return function(*args, **kwargs)
            finally:
                CURRENT_FRAME.reset(token)
        state = FrameState(cid, trace_id)
        token = CURRENT_FRAME.set(state)
        try:
            RUNTIME.emit(site.entry(cid, parent, trace_id, site.bind(args, kwargs)))
            started = time.time_ns()
        except Exception:
            started = 0
        try:
            result = function(*args, **kwargs)
        except BaseException as exc:
            _safely(site.exit_error, state, started, exc)
            raise
        finally:
            CURRENT_FRAME.reset(token)
        _safely_emit_exit(site, cid, started, result)
        return result

    return wrapper


def _async_wrapper(function: Callable[..., Any], site: CallSite) -> Callable[..., Any]:
    @functools.wraps(function)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not RUNTIME.active:
            return await function(*args, **kwargs)
        cid, parent, trace_id = new_frame_ids()
        if cid is None:
            token = CURRENT_FRAME.set(UNSAMPLED)
            try:
                return await function(*args, **kwargs)
            finally:
                CURRENT_FRAME.reset(token)
        state = FrameState(cid, trace_id)
        token = CURRENT_FRAME.set(state)
        try:
            RUNTIME.emit(site.entry(cid, parent, trace_id, site.bind(args, kwargs)))
            started = time.time_ns()
        except Exception:
            started = 0
        try:
            result = await function(*args, **kwargs)
        except BaseException as exc:
            _safely(site.exit_error, state, started, exc)
            raise
        finally:
            CURRENT_FRAME.reset(token)
        _safely_emit_exit(site, cid, started, result)
        return result

    return wrapper


def _safely(emit: Callable[[FrameState, int, BaseException], None], state: FrameState,
            started: int, exc: BaseException) -> None:
    try:
        emit(state, started, exc)
    except Exception:  # capture must never replace the application's own exception
        return


def _safely_emit_exit(site: CallSite, cid: str, started: int, result: Any) -> None:
    try:
        RUNTIME.emit(site.exit_ok(cid, started, result))
    except Exception:
        return
