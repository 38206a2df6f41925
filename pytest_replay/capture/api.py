"""The capture API applications call: configure, request scopes, variables, loops, context."""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar, Token
from typing import Any, TypeVar, final

from pytest_replay.capture.buffered import BufferedSink
from pytest_replay.capture.clock import wall_ns
from pytest_replay.capture.ids import IDS
from pytest_replay.capture.redact import DEFAULT_REDACTION, Redaction
from pytest_replay.capture.runtime import (
    CURRENT_FRAME,
    CURRENT_SCOPE,
    RUNTIME,
    Runtime,
    Scope,
    current_ids,
)
from pytest_replay.capture.sinks import FileSink, Sink, adopt
from pytest_replay.capture.stats import LOG, UNENCODABLE
from pytest_replay.capture.telemetry import Telemetry
from pytest_replay.format import events as ev
from pytest_replay.format.values import Limits, redacted

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
    capture_http: bool = True,
    capture_db: bool = True,
    capture_chance: bool = True,
) -> Sink:
    """Start capturing to ``path`` (a rotating JSONL :class:`FileSink`) or to ``sink``.

    Redaction is on unless ``redact=False`` is said explicitly; pass a
    :class:`Redaction` to add keys or patterns. ``sample_rate`` captures that
    fraction of requests (whole requests, never half of one). A sink that is
    not one of ours runs behind a :class:`BackgroundSink`, so it can never
    slow or break a request. Returns the sink events now go to.

    ``capture_http``, ``capture_db`` and ``capture_chance`` install the HTTP,
    database/Redis and randomness/environment recorders (all on by default:
    a replay can only serve what was recorded). Each costs one flag check per
    call outside a sampled request.
    """
    if (path is None) == (sink is None):
        raise ValueError("configure() takes exactly one of path= or sink=")
    if not 0.0 <= sample_rate <= 1.0:
        raise ValueError(f"sample_rate must be between 0 and 1, got {sample_rate!r}")
    if not isinstance(redact, (bool, Redaction)):
        raise TypeError(f"redact must be True, False or a Redaction, got {redact!r}")
    shutdown()
    chosen = adopt(sink) if sink is not None else FileSink(path)  # type: ignore[arg-type]
    if isinstance(redact, Redaction):
        RUNTIME.redaction = redact
    else:
        RUNTIME.redaction = DEFAULT_REDACTION if redact else Redaction.off()
    RUNTIME.service = service
    RUNTIME.sample_rate = sample_rate
    RUNTIME.limits = limits or Limits()
    RUNTIME.stats.reset()  # fresh counters for a fresh configuration
    RUNTIME.sink = chosen
    RUNTIME.last_sink = chosen
    RUNTIME.active = True
    _install_recorders(capture_http, capture_db, capture_chance)
    return chosen


def _install_recorders(http: bool, database: bool, chance: bool) -> None:
    """Install the outside-call recorders asked for (each idempotent, each lazy)."""
    if http:
        from pytest_replay.capture.http import install_http_capture

        install_http_capture()
    if database:
        from pytest_replay.capture.db import install_db_capture

        install_db_capture()
    if chance:
        from pytest_replay.capture.nondeterminism import install_nondeterminism_capture

        install_nondeterminism_capture()


def shutdown(timeout: float | None = None) -> None:
    """Flush and close the sink and stop capturing (also runs at interpreter exit).

    Waits at most ``timeout`` seconds (the sink's own default, 5 s, if None)
    for a slow destination; what cannot be written by then is counted as
    dropped, so a stalled disk never hangs the application's exit.
    """
    sink = RUNTIME.sink
    RUNTIME.active = False
    RUNTIME.sink = None
    if sink is None:
        return
    try:
        if timeout is not None and isinstance(sink, BufferedSink):
            sink.close(timeout)
        else:
            sink.close()
    except Exception as exc:  # closing is best effort; the counters say what was lost
        LOG.warning("telemetry-replay: closing %r failed: %s: %s", sink, type(exc).__name__, exc)


atexit.register(shutdown)


def stats() -> dict[str, Any]:
    """Counters of the current sink (or the last one, after ``shutdown``).

    ``written`` and ``dropped`` count events; ``dropped_by_reason`` splits
    the drops (``buffer_full``, ``io_error``, ``sink_error``, ``sink_closed``,
    ``stalled_at_close``, ``unencodable``); ``buffered`` is what is still
    queued; ``last_error`` says what went wrong last.
    """
    sink = RUNTIME.sink or RUNTIME.last_sink
    snapshot = getattr(sink, "snapshot", None)
    out: dict[str, Any] = dict(snapshot()) if callable(snapshot) else {
        "written": None, "dropped": 0, "dropped_by_reason": {}, "errors": 0, "recoveries": 0,
        "last_error": None, "buffered": 0, "sink": type(sink).__name__ if sink else None}
    local: dict[str, Any] = RUNTIME.stats.as_dict()
    if local["dropped"]:
        out["dropped"] = int(out["dropped"]) + int(local["dropped"])
        reasons: dict[str, int] = dict(out["dropped_by_reason"])
        for key, count in local["dropped_by_reason"].items():
            reasons[key] = reasons.get(key, 0) + count
        out["dropped_by_reason"] = reasons
        out["last_error"] = out["last_error"] or local["last_error"]
    out["active"] = RUNTIME.active
    return out


def request_scope(
    correlation_id: str | None = None,
    *,
    trace_id: str | None = None,
    parent_correlation_id: str | None = None,
    **fields: Any,
) -> RequestScope:
    """One request: the first traced call inside becomes a root with ``correlation_id``.

    ``trace_id`` and ``parent_correlation_id`` join a request that started in
    another service; extra keyword fields (``user_id=...``) are written as a
    ``context`` event so extraction can filter on them. The sampling decision
    is taken here, once for the whole request. ``with`` yields the request id
    (None when the request is not sampled).
    """
    return RequestScope(correlation_id, trace_id, parent_correlation_id, fields)


@final
class RequestScope:
    """The context manager :func:`request_scope` returns (a class: it runs once per request)."""

    __slots__ = ("_fields", "_frame_token", "_scope", "_scope_token")

    def __init__(self, correlation_id: str | None, trace_id: str | None,
                 parent_correlation_id: str | None, fields: dict[str, Any]) -> None:
        request_id = correlation_id or f"req_{IDS.next()}"
        sampled = RUNTIME.active and RUNTIME.sampled()
        self._scope = Scope(request_id, trace_id or request_id, sampled, parent_correlation_id)
        self._fields = fields

    def __enter__(self) -> str | None:
        scope = self._scope
        self._scope_token = CURRENT_SCOPE.set(scope)
        self._frame_token = CURRENT_FRAME.set(None)
        if scope.sampled and self._fields:
            context(**self._fields)
        return scope.request_id if scope.sampled else None

    def __exit__(self, *exc_info: object) -> None:
        _restore(CURRENT_FRAME, self._frame_token)
        _restore(CURRENT_SCOPE, self._scope_token)


def _restore(variable: ContextVar[Any], token: Token[Any]) -> None:
    """Put back what ``token`` replaced, also where the scope is left in another Context.

    FastAPI runs each half of a sync yield-dependency in its own thread, with
    a copy of the context: ``reset`` then refuses the token (``ValueError``),
    and the request must go on as it would without capture.
    """
    try:
        variable.reset(token)
    except ValueError:
        old = token.old_value
        variable.set(None if old is Token.MISSING else old)


def _emit_here(event: dict[str, Any]) -> None:
    """Emit ``event`` for the current call or request; outside of both there is nothing to join."""
    cid, trace_id = current_ids()
    if cid is None:
        return
    event["correlation_id"] = cid
    if trace_id is not None and trace_id != cid:
        event["trace_id"] = trace_id
    RUNTIME.emit(event)


def variable(name: str, value: Any) -> None:
    """Record that a variable took a value (``SET name = value`` in the timeline).

    A secret-looking ``name`` gets its value redacted.
    """
    if not RUNTIME.active:
        return
    try:
        encoded = RUNTIME.encode_named({name: value})[name]
        _emit_here({"event_type": ev.VARIABLE_CHANGE, "timestamp_ns": wall_ns(),
                    "variable_name": name, "value": encoded})
    except Exception as exc:
        RUNTIME.drop(f"variable {name!r}: {type(exc).__name__}: {exc}", UNENCODABLE)


def loop(items: Iterable[T], name: str = "loop") -> Iterator[T]:
    """Iterate ``items``, recording each iteration (the first 100, then a count).

    A secret-looking ``name`` (``"api_tokens"``) records the iterations with
    their values redacted.
    """
    if not RUNTIME.active:
        yield from items
        return
    count = 0
    for count, item in enumerate(items, start=1):
        if count <= MAX_LOOP_EVENTS:
            _loop_event(name, count - 1, item)
        yield item
    if count > MAX_LOOP_EVENTS:
        try:
            _emit_here({"event_type": ev.LOOP_ITERATION, "timestamp_ns": wall_ns(),
                        "loop_name": name, "iterations": count, "truncated": True})
        except Exception as exc:
            RUNTIME.drop(f"loop {name!r}: {type(exc).__name__}: {exc}", UNENCODABLE)


def _loop_event(name: str, index: int, item: Any) -> None:
    try:
        value = redacted() if RUNTIME.is_secret(name) else RUNTIME.encode(item)
        _emit_here({"event_type": ev.LOOP_ITERATION, "timestamp_ns": wall_ns(),
                    "loop_name": name, "iteration": index, "value": value})
    except Exception as exc:
        RUNTIME.drop(f"loop {name!r}: {type(exc).__name__}: {exc}", UNENCODABLE)


def context(values: Mapping[str, Any] | None = None, /, **fields: Any) -> None:
    """Record environment or request metadata (``environment="production"``, ``variant="B"``).

    Takes a mapping (the seed's ``tel.context({...})`` form), keywords, or both.
    """
    if not RUNTIME.active:
        return
    try:
        merged = {**(values or {}), **fields}
        _emit_here({"event_type": ev.CONTEXT, "timestamp_ns": wall_ns(),
                    "context": RUNTIME.encode_named(merged)})
    except Exception as exc:
        RUNTIME.drop(f"context: {type(exc).__name__}: {exc}", UNENCODABLE)


__all__ = [
    "RequestScope",
    "Runtime",
    "Telemetry",
    "adopt",
    "configure",
    "context",
    "loop",
    "request_scope",
    "shutdown",
    "stats",
    "variable",
]
