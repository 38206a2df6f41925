"""``Telemetry``: the low-level emitter, for code that cannot use ``@traced``.

It matches the seed document's ``tel.function_entry("process_order",
correlation_id=request_id)`` and ``tel.context({"environment": ...})``. An
entry opens a frame in the current context (thread or task), so the
``context``/``variable``/``error`` calls that follow, and ``@traced`` calls
made inside, land under it without passing ids around; the matching exit
closes it. Encoding, redaction, sampling and drop counting are the
decorator's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_replay.capture.clock import wall_ns
from pytest_replay.capture.ids import IDS
from pytest_replay.capture.redact import DEFAULT_REDACTION, Redaction
from pytest_replay.capture.runtime import (
    CURRENT_FRAME,
    CURRENT_SCOPE,
    RUNTIME,
    FrameState,
    Runtime,
    TraceRef,
    frame_id,
    json_string,
)
from pytest_replay.capture.sinks import Sink, adopt
from pytest_replay.capture.stats import UNENCODABLE
from pytest_replay.format import events as ev
from pytest_replay.format.values import redacted


class Telemetry:
    """A low-level emitter writing through the configured sink, or its own ``sink=``."""

    def __init__(self, sink: Sink | None = None, *, service: str | None = None,
                 redact: bool | Redaction = True) -> None:
        self._own: Runtime | None = None
        self._open: dict[str, FrameState | None] = {}
        if sink is not None:
            own = Runtime()
            own.sink = adopt(sink)
            own.service = service
            if isinstance(redact, Redaction):
                own.redaction = redact
            else:
                own.redaction = DEFAULT_REDACTION if redact else Redaction.off()
            own.active = True
            self._own = own

    @property
    def runtime(self) -> Runtime:
        """The runtime events go through (this emitter's own, or the process's)."""
        return self._own or RUNTIME

    def close(self) -> None:
        """Close this emitter's own sink (the process's sink is closed by ``shutdown``)."""
        if self._own is not None and self._own.sink is not None:
            sink, self._own.sink, self._own.active = self._own.sink, None, False
            sink.close()

    # -- helpers ----------------------------------------------------------------------

    def _emit(self, event: dict[str, Any], timestamp_ns: int | None) -> None:
        runtime = self.runtime
        if not runtime.active:
            return
        event["timestamp_ns"] = timestamp_ns if timestamp_ns is not None else wall_ns()
        if event.get("correlation_id") is None:
            event.pop("correlation_id", None)  # outside any call or request: a loose event
        runtime.emit(event)

    @staticmethod
    def _sampled_out() -> bool:
        frame = CURRENT_FRAME.get()
        if frame is not None:
            return frame[0] is None
        scope = CURRENT_SCOPE.get()
        return scope is not None and not scope.sampled

    @staticmethod
    def _here(correlation_id: str | None) -> str | None:
        if correlation_id is not None:
            return correlation_id
        frame = CURRENT_FRAME.get()
        if frame is not None:
            return frame_id(frame)
        scope = CURRENT_SCOPE.get()
        return scope.request_id if scope is not None and scope.sampled else None

    def _guarded(self, what: str, exc: Exception) -> None:
        self.runtime.drop(f"Telemetry.{what}: {type(exc).__name__}: {exc}", UNENCODABLE)

    # -- the events -------------------------------------------------------------------

    def function_entry(
        self,
        function_name: str,
        args: Mapping[str, Any] | None = None,
        *,
        correlation_id: str | None = None,
        parent_correlation_id: str | None = None,
        trace_id: str | None = None,
        module: str | None = None,
        qualname: str | None = None,
        timestamp_ns: int | None = None,
    ) -> str:
        """Record a call starting and make it the current frame; returns its id.

        Like ``@traced``: the first top-level call of a request scope takes the
        request's id, later ones ``<id>.2``...; nested calls get fresh ids.
        """
        if self._sampled_out():
            return correlation_id or IDS.next()
        parent_state = CURRENT_FRAME.get()
        scope = CURRENT_SCOPE.get()
        if correlation_id is not None:
            cid = correlation_id
        elif parent_state is None and scope is not None:
            cid = scope.take_root_id()
        else:
            cid = IDS.next()
        try:
            parent = parent_correlation_id
            if parent is None and parent_state is not None:
                parent = frame_id(parent_state)
            if parent is None and parent_state is None and scope is not None:
                parent = scope.parent_correlation_id
            if trace_id is None and parent_state is not None and parent_state[1] is not None:
                trace_id = parent_state[1].trace_id
            if trace_id is None:
                trace_id = scope.trace_id if scope is not None else cid
            event: dict[str, Any] = {
                "event_type": ev.FUNCTION_ENTRY, "correlation_id": cid,
                "function_name": function_name,
                "args": self.runtime.encode_named(dict(args or {})), "v": ev.FORMAT_VERSION}
            if parent is not None and parent != cid:
                event["parent_correlation_id"] = parent
            if trace_id != cid:
                event["trace_id"] = trace_id
            if module is not None:
                event["module"] = module
            if qualname is not None:
                event["qualname"] = qualname
            self._emit(event, timestamp_ns)
            self._open[cid] = parent_state
            CURRENT_FRAME.set((json_string(cid), TraceRef(trace_id)))
        except Exception as exc:
            self._guarded("function_entry", exc)
        return cid

    def function_exit(
        self,
        function_name: str,
        *,
        correlation_id: str | None = None,
        return_value: Any = None,
        error: bool = False,
        duration_ns: int | None = None,
        timestamp_ns: int | None = None,
    ) -> None:
        """Record a call ending, with its result or ``error=True``; closes its frame."""
        cid = self._here(correlation_id)
        if cid is None or self._sampled_out():
            return
        try:
            event: dict[str, Any] = {"event_type": ev.FUNCTION_EXIT, "correlation_id": cid,
                                     "function_name": function_name}
            if error:
                event["error"] = True
            elif self.runtime.is_secret(function_name):  # as @traced does: get_api_key()
                event["return_value"] = redacted()
            else:
                event["return_value"] = self.runtime.encode(return_value)
            if duration_ns is not None:
                event["duration_ns"] = duration_ns
            self._emit(event, timestamp_ns)
            if cid in self._open:
                previous = self._open.pop(cid)
                current = CURRENT_FRAME.get()
                if current is not None and frame_id(current) == cid:
                    CURRENT_FRAME.set(previous)
        except Exception as exc:
            self._guarded("function_exit", exc)

    def error(
        self,
        error: BaseException | str,
        message: str | None = None,
        *,
        correlation_id: str | None = None,
        timestamp_ns: int | None = None,
    ) -> None:
        """Record an error: an exception (with its failing frame) or a type name and message."""
        cid = self._here(correlation_id)
        if self._sampled_out() and correlation_id is None:
            return
        try:
            if isinstance(error, BaseException):
                event = self.runtime.error_event(error, cid)
            else:
                event = {"event_type": ev.ERROR, "correlation_id": cid, "error_type": error,
                         "message": message or ""}
            self._emit(event, timestamp_ns)
        except Exception as exc:
            self._guarded("error", exc)

    def variable(self, name: str, value: Any, *, correlation_id: str | None = None,
                 timestamp_ns: int | None = None) -> None:
        """Record a variable change (redacted when ``name`` looks secret)."""
        cid = self._here(correlation_id)
        if self._sampled_out() and correlation_id is None:
            return
        try:
            self._emit({"event_type": ev.VARIABLE_CHANGE, "correlation_id": cid,
                        "variable_name": name,
                        "value": self.runtime.encode_named({name: value})[name]}, timestamp_ns)
        except Exception as exc:
            self._guarded("variable", exc)

    def context(self, values: Mapping[str, Any] | None = None, /, *,
                correlation_id: str | None = None, timestamp_ns: int | None = None,
                **fields: Any) -> None:
        """Record context metadata (``tel.context({"environment": "production"})``)."""
        cid = self._here(correlation_id)
        if self._sampled_out() and correlation_id is None:
            return
        try:
            merged = {**(values or {}), **fields}
            self._emit({"event_type": ev.CONTEXT, "correlation_id": cid,
                        "context": self.runtime.encode_named(merged)}, timestamp_ns)
        except Exception as exc:
            self._guarded("context", exc)
