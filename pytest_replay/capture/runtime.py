"""Capture state: the configured sink and options, and the per-request context.

Which frame an event belongs to lives in context variables, so threads and
asyncio tasks each see their own call stack. The configuration itself is
process-wide by nature (one sink per process) and lives on one
:class:`Runtime` object. A change of what lines look like (service,
redaction, caps, sampling) bumps :attr:`Runtime.generation`: decorated
functions cache what they precompute per generation, so they follow
``configure()`` even when they were decorated before it ran. Every change,
a new sink included, bumps :attr:`Runtime.epoch`: a call that started under
one sink never writes into the next.
"""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Callable
from typing import Any, Final, final

import orjson

from pytest_replay.capture.errors import error_event
from pytest_replay.capture.frames import (
    CURRENT_FRAME,
    CURRENT_SCOPE,
    UNSAMPLED,
    FrameState,
    Scope,
    TraceRef,
    frame_id,
    json_string,
)
from pytest_replay.capture.ids import IDS
from pytest_replay.capture.plain import HUGE, PLAIN, children, shape
from pytest_replay.capture.redact import DEFAULT_REDACTION, MIN_SCANNED, Redaction
from pytest_replay.capture.sinks import Sink
from pytest_replay.capture.stats import SINK_CLOSED, SINK_ERROR, UNENCODABLE, SinkStats
from pytest_replay.capture.textscan import NATIVE as NATIVE_WALK
from pytest_replay.capture.textscan import gate_for
from pytest_replay.format.values import (
    DEFAULT_LIMITS,
    Limits,
    encode,
    encode_mapping,
    redacted,
)

_NEWLINE: Final = orjson.OPT_APPEND_NEWLINE
_INT64: Final = 2**63


_CACHED_TEXT: Final = 64
_CACHED_TEXTS: Final = 8192


def _text_scanner(redaction: Redaction) -> Callable[[str], bool] | None:
    """The value scan every captured string goes through, unless values are not scanned.

    On by default: a Bearer token or an ``api_key=`` in a plain argument is as
    secret as one under a secret name. Strings are checked for cheap literal
    anchors first, so a call with numbers or ordinary words pays almost nothing.
    """
    if not redaction.enabled or not redaction.value_patterns or redaction.everywhere:
        return None  # off, or the whole line is scanned on its way to the sink
    holds = redaction.holds_secret_text
    seen: dict[str, bool] = {}

    def scan(text: str) -> bool:
        # Short strings repeat (names, statuses, ids): remember a bounded number of answers.
        verdict = seen.get(text)
        if verdict is None:
            verdict = holds(text)
            if len(text) <= _CACHED_TEXT and len(seen) < _CACHED_TEXTS:
                seen[text] = verdict
        return verdict

    # In C where built: a string holding no rule's anchor is answered there, the rest here.
    gate: Callable[[str], bool] | None = gate_for(redaction, scan)
    return scan if gate is None else gate


def _scrubbing(write: Callable[[bytes], None], redaction: Redaction, runtime: Runtime
               ) -> Callable[[bytes], None]:
    """``write`` behind a value scan of every line (``Redaction(everywhere=True)``)."""
    holds_secret_text = redaction.holds_secret_text

    def scrub_then_write(line: bytes) -> None:
        text = line.decode("utf-8", "replace")
        if "\\" in text:  # JSON writes a newline as \n: rules that want a space must see one
            text = text.replace("\\n", " ").replace("\\t", " ").replace("\\r", " ")
        if holds_secret_text(text):
            try:
                line = memoryview(orjson.dumps(redaction.scrub_encoded(orjson.loads(line)),
                                               option=_NEWLINE)).tobytes()  # see emit
            except Exception as exc:  # an unreadable line is not written unscrubbed
                runtime.drop(f"cannot scrub a line: {type(exc).__name__}: {exc}", UNENCODABLE)
                return
        write(line)

    return scrub_then_write


_SAMPLER: Final = random.Random()  # noqa: S311 - sampling, not secrecy
"""Our own generator: wrapping ``random``'s module functions (replay does) never sees it."""
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_SAMPLER.seed)


def _bytes_scrubber(redaction: Redaction) -> Callable[[str], str] | None:
    """What scrubs bytes as they are encoded: whenever values are scanned at all (the
    line scan of ``everywhere=True`` cannot see into their base64)."""
    return redaction.scrub if redaction.enabled and redaction.value_patterns else None


def _write_nowhere(line: bytes) -> None:
    """The write target while no sink is configured."""


@final
class Runtime:
    """The process's capture configuration and the single place events are emitted.

    ``sink``, ``service``, ``redaction``, ``limits`` and ``sample_rate`` may be
    set directly (replay does, around one run); each assignment bumps
    :attr:`epoch`, and each but the sink's bumps :attr:`generation` too.
    """

    __slots__ = ("_limits", "_redaction", "_sample_rate", "_service", "_sink", "_small_limits",
                 "active", "epoch", "generation", "is_secret", "last_sink", "max_str",
                 "scrub_bytes", "secret_text", "service_field", "stats", "write")

    def __init__(self) -> None:
        self.active = False
        self.generation = 0
        self.epoch = 0
        self._sink: Sink | None = None
        self.last_sink: Sink | None = None
        self.write: Callable[[bytes], None] = _write_nowhere
        self._service: str | None = None
        self.service_field = b""
        self._redaction: Redaction = DEFAULT_REDACTION
        self.is_secret: Callable[[str], bool] = DEFAULT_REDACTION.is_secret_key
        self.secret_text: Callable[[str], bool] | None = _text_scanner(DEFAULT_REDACTION)
        self.scrub_bytes: Callable[[str], str] | None = _bytes_scrubber(DEFAULT_REDACTION)
        """Whether a string value holds secret-shaped text (None: values are not scanned)."""
        self._limits: Limits = DEFAULT_LIMITS
        self._small_limits: Limits = DEFAULT_LIMITS
        self.max_str = DEFAULT_LIMITS.max_str
        self.limits = DEFAULT_LIMITS  # through the setter: the small caps are derived
        self._sample_rate = 1.0
        self.stats = SinkStats()
        """Drops that happen before a line reaches a sink with counters of its own."""

    # -- configuration (each change invalidates what call sites precomputed) ----------

    @property
    def sink(self) -> Sink | None:
        """Where lines go (None: nowhere)."""
        return self._sink

    @sink.setter
    def sink(self, sink: Sink | None) -> None:
        # Lines do not depend on the sink: call sites keep their templates (replay
        # swaps the sink for every run), only calls in flight must not cross over.
        self._sink = sink
        self._choose_write()
        self.epoch += 1

    def _choose_write(self) -> None:
        """The sink's own ``write``, or one that scrubs values first if redaction says so."""
        sink = self._sink
        if sink is None:
            self.write = _write_nowhere
        elif self._redaction.everywhere:
            self.write = _scrubbing(sink.write, self._redaction, self)
        else:
            self.write = sink.write

    @property
    def service(self) -> str | None:
        """The ``service`` field stamped on every event (distributed traces)."""
        return self._service

    @service.setter
    def service(self, service: str | None) -> None:
        self._service = service
        self.service_field = (b',"service":"' + json_string(service) + b'"'
                              if service is not None else b"")
        self.generation += 1
        self.epoch += 1

    @property
    def redaction(self) -> Redaction:
        """Which names are secret."""
        return self._redaction

    @redaction.setter
    def redaction(self, redaction: Redaction) -> None:
        self._redaction = redaction
        self.is_secret = redaction.is_secret_key
        self.secret_text = _text_scanner(redaction)
        self.scrub_bytes = _bytes_scrubber(redaction)
        self._choose_write()
        self.generation += 1
        self.epoch += 1

    @property
    def limits(self) -> Limits:
        """Caps on each captured value."""
        return self._limits

    @limits.setter
    def limits(self, limits: Limits) -> None:
        self._limits = limits
        self._small_limits = Limits(max_str=limits.max_str, max_items=min(limits.max_items, 10),
                                    max_depth=min(limits.max_depth, 3),
                                    max_repr=limits.max_repr)
        self.max_str = limits.max_str
        self.generation += 1
        self.epoch += 1

    @property
    def sample_rate(self) -> float:
        """Fraction of requests captured (whole requests)."""
        return self._sample_rate

    @sample_rate.setter
    def sample_rate(self, rate: float) -> None:
        self._sample_rate = rate
        self.generation += 1
        self.epoch += 1

    # -- emitting ---------------------------------------------------------------------

    def emit(self, event: dict[str, Any], what: str = "event") -> None:
        """Encode one event dict and hand it to the sink; never raises.

        Its strings are scanned for secret-shaped text first (unless the sink's
        write scans whole lines). orjson hands back its whole output buffer, 4 KB
        however short the line, and a sink holds lines until its writer drains
        them: the line is copied to its own size (about 50 ns) before it goes.
        """
        if self._service is not None:
            event["service"] = self._service
        redaction = self._redaction
        try:
            if redaction.value_patterns and not redaction.everywhere:
                event = redaction.scrub_encoded(event)  # type: ignore[assignment]
            line = orjson.dumps(event, option=_NEWLINE)
        except Exception as exc:  # an encoder gap must cost an event, not the request
            self.drop(f"unencodable {what}: {type(exc).__name__}: {exc}", UNENCODABLE)
            return
        self.send(memoryview(line).tobytes())

    def send(self, line: bytes) -> None:
        """Hand one finished line to the sink; a raising sink costs the line, counted."""
        try:
            self.write(line)
        except Exception as exc:
            self.sink_failed(exc)

    def stale_exit(self) -> None:
        """Count the exit of a call that began before capture was reconfigured.

        Its entry went to the sink of that time; the exit (and error) would be an
        orphan in the new one, so it is written nowhere.
        """
        self.stats.drop(1, "a traced call finished after capture was reconfigured",
                        SINK_CLOSED)

    def sink_failed(self, exc: Exception) -> None:
        """Count the line a raising sink lost."""
        self.drop(f"sink {type(self._sink).__name__}.write raised {type(exc).__name__}: {exc}",
                  SINK_ERROR)

    def drop(self, reason: str, category: str) -> None:
        """Count one event lost before the sink took it (on the sink's counters if it has)."""
        stats = getattr(self._sink, "stats", None)
        (stats if isinstance(stats, SinkStats) else self.stats).drop(1, reason, category)

    # -- sampling, encoding -----------------------------------------------------------

    def sampled(self) -> bool:
        """Decide, once per request, whether it is captured."""
        rate = self._sample_rate
        return rate >= 1.0 or (rate > 0.0 and _SAMPLER.random() < rate)

    def encode(self, value: Any) -> Any:
        """Encode one value with this runtime's caps and redaction."""
        kind = type(value)
        if kind is str:
            if len(value) <= self.max_str and value.isascii():
                scan = self.secret_text
                if scan is None or len(value) < MIN_SCANNED or not scan(value):
                    return value
                return self._redaction.scrub(value)
        elif kind is int:
            if -_INT64 <= value < _INT64:
                return value
        elif kind is float:
            if value - value == 0.0:  # false for nan and the infinities, which get tags
                return value
        elif kind is bool or value is None:
            return value
        verdict = self._shape(value)
        if verdict == PLAIN:
            return value
        limits = self._small_limits if verdict == HUGE else self._limits
        encoded = encode(value, limits, self.is_secret, self.scrub_bytes)
        if self.secret_text is None:
            return encoded
        return self._redaction.scrub_encoded(encoded)

    def _shape(self, value: Any) -> int:
        limits = self._limits
        try:
            redaction = self._redaction
            if NATIVE_WALK is not None:
                return int(NATIVE_WALK.shape(value, limits.max_str, limits.max_items,
                                             limits.max_depth, self.is_secret,
                                             redaction.verdicts, redaction.plain_keys,
                                             self.secret_text, children, MIN_SCANNED))
            return shape(value, limits.max_str, limits.max_items, limits.max_depth,
                         self.is_secret, redaction.verdicts, redaction.plain_keys,
                         self.secret_text)
        except Exception:  # a container another thread resized mid-look: be careful
            return HUGE

    def _encode_mapping(self, values: dict[str, Any]) -> dict[str, Any]:
        """The general path of :meth:`encode_named` (a non-ASCII name), scanned as well."""
        encoded = encode_mapping(values, self._limits, self.is_secret, self.scrub_bytes)
        if self.secret_text is None:
            return encoded
        scrubbed: dict[str, Any] = self._redaction.scrub_encoded(encoded)  # type: ignore[assignment]
        return scrubbed

    def encode_named(self, values: dict[str, Any]) -> dict[str, Any]:
        """Encode a name -> value mapping (args, locals, context), redacting secret names."""
        is_secret = self.is_secret
        out: dict[str, Any] = {}
        for name, value in values.items():
            if type(name) is not str or not name.isascii():
                return self._encode_mapping(values)
            out[name] = redacted() if is_secret(name) else self.encode(value)
        return out

    def error_event(self, exc: BaseException, correlation_id: str | None) -> dict[str, Any]:
        """An ``error`` event for ``exc`` at the innermost frame it passed through."""
        return error_event(exc, correlation_id, self)

    # -- frames -----------------------------------------------------------------------

    def open_root(self) -> tuple[FrameState, bytes]:
        """Frame and entry-line reference part for a top-level call (UNSAMPLED if not captured)."""
        scope = CURRENT_SCOPE.get()
        if scope is None:
            if self._sample_rate < 1.0 and not self.sampled():
                return UNSAMPLED, b""
            cid_b = next(IDS.ids)
            return (cid_b, TraceRef(cid_b.decode("ascii"))), b""
        if not scope.sampled:
            return UNSAMPLED, b""
        cid = scope.take_root_id()
        ref = scope.parent_ref + (scope.trace.field if cid != scope.trace_id else b"")
        return (json_string(cid), scope.trace), ref


RUNTIME: Final = Runtime()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=RUNTIME.stats.reset_after_fork)


def current_ids() -> tuple[str | None, str | None]:
    """``(correlation_id, trace_id)`` events emitted right now belong to."""
    frame = CURRENT_FRAME.get()
    if frame is not None:
        trace = frame[1]
        return frame_id(frame), trace.trace_id if trace is not None else None
    scope = CURRENT_SCOPE.get()
    if scope is not None:
        return (scope.request_id, scope.trace_id) if scope.sampled else (None, None)
    return None, None


def new_frame_ids() -> tuple[str | None, str | None, str | None]:
    """``(correlation_id, parent_id, trace_id)`` for a call starting now.

    ``correlation_id`` is None when the request is not sampled. Low-level
    emitters use this; ``@traced`` does the same inline.
    """
    parent = CURRENT_FRAME.get()
    if parent is not None:
        trace = parent[1]
        if parent[0] is None or trace is None:
            return None, None, None
        return IDS.next(), frame_id(parent), trace.trace_id
    frame, _ref = RUNTIME.open_root()
    trace = frame[1]
    if frame[0] is None or trace is None:
        return None, None, None
    scope = CURRENT_SCOPE.get()
    parent_id = scope.parent_correlation_id if scope is not None else None
    return frame_id(frame), parent_id, trace.trace_id


def python_version() -> str:
    """The interpreter version, for context events."""
    return ".".join(map(str, sys.version_info[:3]))


__all__ = [
    "CURRENT_FRAME",
    "CURRENT_SCOPE",
    "RUNTIME",
    "UNSAMPLED",
    "FrameState",
    "Runtime",
    "Scope",
    "TraceRef",
    "current_ids",
    "frame_id",
    "json_string",
    "new_frame_ids",
    "python_version",
]
