"""The capture API applications call: configure, request scopes, variables, loops, context."""

from __future__ import annotations

import atexit
import contextlib
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar

from pytest_replay.capture.redact import DEFAULT_REDACTION, Redaction
from pytest_replay.capture.runtime import (
    CURRENT_FRAME,
    CURRENT_SCOPE,
    RUNTIME,
    RUNTIME_DROPS,
    FrameState,
    Runtime,
    Scope,
    current_ids,
)
from pytest_replay.capture.sinks import FileSink, Sink
from pytest_replay.format import events as ev
from pytest_replay.format.values import Limits

T = TypeVar("T")
MAX_LOOP_EVENTS = 100


def configure(
    path: str | os.PathLike[str] | None = None,
    *,
    sink: Sink | None = None,
    service: str | None = None,
    redact: bool | Redaction = True,
    sample_rate: float = 1.0,
    limits: Limits | None = None,
) -> Sink:
    """Start capturing to ``path`` (a rotating JSONL file) or to ``sink``.

    Redaction is on unless ``redact=False`` is said explicitly; pass a
    :class:`Redaction` to add keys or patterns. ``sample_rate`` captures that
    fraction of requests (whole requests, never half of one).
    """
    if (path is None) == (sink is None):
        raise ValueError("configure() takes exactly one of path= or sink=")
    if not 0.0 <= sample_rate <= 1.0:
        raise ValueError(f"sample_rate must be between 0 and 1, got {sample_rate!r}")
    shutdown()
    chosen: Sink = sink if sink is not None else FileSink(path)  # type: ignore[arg-type]
    if isinstance(redact, Redaction):
        RUNTIME.redaction = redact
    else:
        RUNTIME.redaction = DEFAULT_REDACTION if redact else Redaction.off()
    RUNTIME.service = service
    RUNTIME.sample_rate = sample_rate
    RUNTIME.limits = limits or Limits()
    RUNTIME.sink = chosen
    RUNTIME.active = True
    return chosen


def shutdown() -> None:
    """Flush and close the sink and stop capturing (also runs at interpreter exit)."""
    sink = RUNTIME.sink
    RUNTIME.active = False
    RUNTIME.sink = None
    if sink is not None:
        with contextlib.suppress(Exception):
            sink.close()


atexit.register(shutdown)


def stats() -> dict[str, Any]:
    """Counters of the active sink: events written, dropped, errors, last error."""
    sink = RUNTIME.sink
    sink_stats = getattr(sink, "stats", None)
    out: dict[str, Any] = sink_stats.as_dict() if sink_stats is not None else {}
    out["unreported_drops"] = RUNTIME_DROPS.count
    return out


@contextlib.contextmanager
def request_scope(
    correlation_id: str | None = None,
    *,
    trace_id: str | None = None,
    parent_correlation_id: str | None = None,
    **fields: Any,
) -> Iterator[str | None]:
    """One request: the first traced call inside becomes a root with ``correlation_id``.

    ``trace_id`` and ``parent_correlation_id`` join a request that started in
    another service; extra keyword fields (``user_id=...``) are written as a
    ``context`` event so extraction can filter on them. Yields the request id
    (None when the request is not sampled).
    """
    from pytest_replay.capture.ids import IDS

    request_id = correlation_id or f"req_{IDS.next()}"
    sampled = RUNTIME.active and RUNTIME.sampled()
    scope = Scope(request_id, trace_id or request_id, sampled, parent_correlation_id)
    scope_token = CURRENT_SCOPE.set(scope)
    frame_token = CURRENT_FRAME.set(None)
    try:
        if sampled and fields:
            context(**fields)
        yield request_id if sampled else None
    finally:
        CURRENT_FRAME.reset(frame_token)
        CURRENT_SCOPE.reset(scope_token)


def _emit_here(event: dict[str, Any]) -> None:
    cid, trace_id = current_ids()
    if cid is None:
        return
    event["correlation_id"] = cid
    if trace_id is not None and trace_id != cid:
        event["trace_id"] = trace_id
    RUNTIME.emit(event)


def variable(name: str, value: Any) -> None:
    """Record that a variable took a value (``SET name = value`` in the timeline)."""
    if not RUNTIME.active:
        return
    try:
        encoded = RUNTIME.encode_named({name: value})[name]
        _emit_here({"event_type": ev.VARIABLE_CHANGE, "timestamp_ns": time.time_ns(),
                    "variable_name": name, "value": encoded})
    except Exception:
        return


def loop(items: Iterable[T], name: str = "loop") -> Iterator[T]:
    """Iterate ``items``, recording each iteration (the first 100, then a count)."""
    if not RUNTIME.active:
        yield from items
        return
    count = 0
    for count, item in enumerate(items, start=1):  # noqa: B007 - count is read after
        if count <= MAX_LOOP_EVENTS:
            _loop_event(name, count - 1, item)
        yield item
    if count > MAX_LOOP_EVENTS:
        with contextlib.suppress(Exception):
            _emit_here({"event_type": ev.LOOP_ITERATION, "timestamp_ns": time.time_ns(),
                        "loop_name": name, "iterations": count, "truncated": True})


def _loop_event(name: str, index: int, item: Any) -> None:
    try:
        _emit_here({"event_type": ev.LOOP_ITERATION, "timestamp_ns": time.time_ns(),
                    "loop_name": name, "iteration": index, "value": RUNTIME.encode(item)})
    except Exception:
        return


def context(values: Mapping[str, Any] | None = None, /, **fields: Any) -> None:
    """Record environment or request metadata (``environment="production"``, ``variant="B"``)."""
    if not RUNTIME.active:
        return
    merged = {**(values or {}), **fields}
    try:
        _emit_here({"event_type": ev.CONTEXT, "timestamp_ns": time.time_ns(),
                    "context": RUNTIME.encode_named(merged)})
    except Exception:
        return


class Telemetry:
    """A low-level emitter for code that cannot use ``@traced`` (the seed's ``tel``).

    It writes through the configured sink (or its own ``sink=``), with the
    same encoding and redaction as the decorator.
    """

    def __init__(self, sink: Sink | None = None, service: str | None = None) -> None:
        self._runtime: Runtime | None = None
        if sink is not None:
            self._runtime = Runtime()
            self._runtime.sink, self._runtime.service = sink, service
            self._runtime.active = True

    def _emit(self, event: dict[str, Any]) -> None:
        runtime = self._runtime or RUNTIME
        if runtime.active:
            event.setdefault("timestamp_ns", time.time_ns())
            runtime.emit(event)

    def _ids(self, correlation_id: str | None) -> tuple[str | None, str | None]:
        if correlation_id is not None:
            return correlation_id, None
        return current_ids()

    def function_entry(
        self,
        function_name: str,
        args: Mapping[str, Any] | None = None,
        *,
        correlation_id: str | None = None,
        parent_correlation_id: str | None = None,
        module: str | None = None,
        qualname: str | None = None,
    ) -> str:
        """Record a call starting; returns its correlation id (generated if not given)."""
        from pytest_replay.capture.ids import IDS

        cid = correlation_id or IDS.next()
        parent = parent_correlation_id
        if parent is None:
            current = CURRENT_FRAME.get()
            parent = current.correlation_id if current is not None else None
        event: dict[str, Any] = {"event_type": ev.FUNCTION_ENTRY, "correlation_id": cid,
                                 "function_name": function_name,
                                 "args": RUNTIME.encode_named(dict(args or {})),
                                 "v": ev.FORMAT_VERSION}
        if parent is not None and parent != cid:
            event["parent_correlation_id"] = parent
        if module is not None:
            event["module"] = module
        if qualname is not None:
            event["qualname"] = qualname
        self._emit(event)
        return cid

    def function_exit(
        self,
        function_name: str,
        *,
        correlation_id: str,
        return_value: Any = None,
        error: bool = False,
        duration_ns: int | None = None,
    ) -> None:
        """Record a call ending, with its result or ``error=True``."""
        event: dict[str, Any] = {"event_type": ev.FUNCTION_EXIT, "correlation_id": correlation_id,
                                 "function_name": function_name}
        if error:
            event["error"] = True
        else:
            event["return_value"] = RUNTIME.encode(return_value)
        if duration_ns is not None:
            event["duration_ns"] = duration_ns
        self._emit(event)

    def error(
        self,
        error: BaseException | str,
        message: str | None = None,
        *,
        correlation_id: str | None = None,
    ) -> None:
        """Record an error: an exception (with its failing frame) or a type name and message."""
        cid, _trace = self._ids(correlation_id)
        if isinstance(error, BaseException):
            event = RUNTIME.error_event(error, cid)
        else:
            event = {"event_type": ev.ERROR, "correlation_id": cid, "error_type": error,
                     "message": message or ""}
        self._emit(event)

    def variable(self, name: str, value: Any, *, correlation_id: str | None = None) -> None:
        """Record a variable change."""
        cid, _trace = self._ids(correlation_id)
        self._emit({"event_type": ev.VARIABLE_CHANGE, "correlation_id": cid,
                    "variable_name": name, "value": RUNTIME.encode_named({name: value})[name]})

    def context(self, values: Mapping[str, Any], *, correlation_id: str | None = None) -> None:
        """Record context metadata (``tel.context({"environment": "production"})``)."""
        cid, _trace = self._ids(correlation_id)
        self._emit({"event_type": ev.CONTEXT, "correlation_id": cid,
                    "context": RUNTIME.encode_named(dict(values))})


__all__ = [
    "FrameState",
    "Telemetry",
    "configure",
    "context",
    "loop",
    "request_scope",
    "shutdown",
    "stats",
    "variable",
]
