"""Replay one recorded request against today's code and judge the result.

The engine knows nothing of pytest: the plugin and the command-line tools
are two thin front ends over :class:`ReplayEngine`.
"""

from __future__ import annotations

import asyncio
import inspect
import operator
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pytest_replay.capture.api import request_scope
from pytest_replay.capture.redact import DEFAULT_REDACTION, Redaction
from pytest_replay.capture.runtime import RUNTIME
from pytest_replay.capture.sinks import MemorySink
from pytest_replay.config import ReplayConfig
from pytest_replay.format import events as ev
from pytest_replay.format.decode import DecodeError, decode, find_opaque
from pytest_replay.format.events import Event
from pytest_replay.format.values import Limits
from pytest_replay.model import Root
from pytest_replay.replay.compare import (
    CompareOptions,
    Comparison,
    Divergence,
    compare_steps,
    is_foreign,
    recorded_function_names,
    steps_of,
)
from pytest_replay.replay.external import ServedCalls, UnrecordedCall
from pytest_replay.replay.instrument import observe_targets, wrapper_for
from pytest_replay.replay.sandbox import Server, recorded_moment, sandbox
from pytest_replay.replay.targets import ReplayRefused, ResolvedCall, TargetPolicy
from pytest_replay.replay.watch import watch_variables

_MAX_NOISY_FIELDS = 5
Status = Literal["passed", "fixed", "reproduced", "diverged", "not_replayable"]
ServerFactory = Callable[[Root, Sequence[Event], ReplayConfig, Any], Sequence[Server]]
"""``(root, recorded events, config, HTTP overrides or None) -> servers``."""


class NotReplayable(Exception):
    """The recording cannot be turned into a call (refused target, undecodable args...)."""


@dataclass
class RunOutcome:
    """What one execution of the root did."""

    returned: bool
    value: Any
    error: BaseException | None
    events: list[Event]
    served: list[ServedCalls]
    observed: frozenset[str]
    duration_ns: int
    unobservable: frozenset[tuple[str, str]] = frozenset()
    """Recorded ``(function, variable)`` pairs replay had no way to watch."""

    @property
    def unrecorded(self) -> list[UnrecordedCall]:
        """Outbound calls the recording did not hold (each fails the replay)."""
        return [call for report in self.served for call in report.unrecorded]


@dataclass
class ReplayResult:
    """The verdict for one root, with everything a report needs."""

    root: Root
    status: Status
    message: str
    recorded: list[Event] = field(default_factory=list)
    replayed: list[Event] = field(default_factory=list)
    divergence: Divergence | None = None
    comparison: Comparison | None = None
    not_compared: list[str] = field(default_factory=list)
    noise: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    duration_ns: int = 0
    against_baseline: bool = False

    @property
    def passed(self) -> bool:
        """Whether the item passes (a fixed incident passes)."""
        return self.status in ("passed", "fixed")


def recorded_events(root: Root) -> list[Event]:
    """The root's events with their trace line under ``_line`` (for precise reports)."""
    return [{**item.event, "_line": item.line} for item in root.events]


class ReplayEngine:
    """Replays roots under one configuration; reusable across many roots."""

    def __init__(self, config: ReplayConfig, servers: ServerFactory | None = None) -> None:
        self.config = config
        self.policy = TargetPolicy(config.targets, config.allowed_types)
        self.servers = servers or default_servers
        self.options = CompareOptions(ignore=config.ignore,
                                      float_tolerance=config.float_tolerance)
        # Built once: a Redaction remembers its verdicts, which every replay reuses. The
        # default one is capture's own, which the runtime then need not be switched to.
        self.redaction = (Redaction(keys=config.redact_keys, patterns=config.redact_patterns)
                          if config.redact_keys or config.redact_patterns
                          else DEFAULT_REDACTION)
        self.limits = config.value_limits()

    # -- running ------------------------------------------------------------------------

    def prepare(self, root: Root) -> tuple[ResolvedCall, tuple[Any, ...], dict[str, Any]]:
        """Resolve the root's callable and decode its arguments, or raise NotReplayable."""
        try:
            resolved = self.policy.resolve_call(root.frame.entry.event)
        except ReplayRefused as exc:
            raise NotReplayable(f"refused: {exc}") from None
        args, kwargs = self._arguments(resolved, root)
        return resolved, args, kwargs

    def _arguments(self, resolved: ResolvedCall, root: Root
                   ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        raw = dict(root.frame.entry.event.get("args") or {})
        decoded: dict[str, Any] = {}
        if resolved.class_method and resolved.owner is not None:
            # ``cls`` is recorded by name only: the class it names, if it is the owner or
            # a subclass inside the targets, else the owner itself.
            first = next(iter(inspect.signature(inspect.unwrap(resolved.function)).parameters),
                         None)
            if first is not None and first in raw:
                recorded = raw.pop(first)
                named = recorded.get("name") if isinstance(recorded, dict) else None
                cls = self.policy.resolve_class(str(named)) if named else None
                decoded[first] = cls if isinstance(cls, type) and issubclass(
                    cls, resolved.owner) else resolved.owner
        for name, value in raw.items():
            try:
                decoded[name] = decode(value, self.policy.resolve_class)
            except DecodeError as exc:
                raise NotReplayable(f"line {root.line}: field 'args.{name}': {exc}") from None
            opaque = find_opaque(decoded[name])
            if opaque is not None:
                raise NotReplayable(
                    f"line {root.line}: argument {name!r} holds a recorded {opaque.class_name} "
                    f"that replay may not rebuild ({opaque.reason}); add its class to "
                    "replay_allowed_types or its package to replay_targets"
                )
        return bind_arguments(resolved.function, decoded, resolved.name)

    def run(self, root: Root, *, recorded: Sequence[Event] | None = None,
            call: Callable[[Callable[[], Any]], Any] | None = None,
            overrides: Any | None = None) -> RunOutcome:
        """Execute the root once inside the sandbox and collect what it emitted.

        ``call`` lets a front end wrap the actual invocation (the debugger
        does); ``overrides`` (an ``HttpOverrides``) answers HTTP calls first.
        """
        resolved, args, kwargs = self.prepare(root)
        try:
            moment = recorded_moment(root.timestamp_ns)
        except (OverflowError, OSError, ValueError):
            raise NotReplayable(f"line {root.line}: field 'timestamp_ns': "
                                f"{root.timestamp_ns} is not a representable instant") from None
        recorded = recorded if recorded is not None else recorded_events(root)
        servers = self.servers(root, recorded, self.config, overrides)
        sink = MemorySink()
        watched = _watched_variables(recorded)
        entry = root.frame.entry.event
        returned, value, error = False, None, None
        # Wrapped before time is frozen: a wrapper reads the clock it was made with.
        target = wrapper_for(resolved.function)
        started = time.perf_counter_ns()
        with ExitStack() as stack:
            stack.enter_context(_capturing_into(sink, self.redaction, self.limits))
            observed = stack.enter_context(observe_targets(self.policy))
            try:
                served = stack.enter_context(sandbox(moment, servers))
            except ValueError as exc:  # a recorded call the servers cannot use
                raise NotReplayable(f"bad recording: {exc}") from None

            def invoke() -> Any:
                with request_scope(root.correlation_id,
                                   parent_correlation_id=entry.get("parent_correlation_id")):
                    result = target(*args, **kwargs)
                    if inspect.isawaitable(result):
                        return _run_coroutine(result)
                    return result

            unobservable: set[tuple[str, str]] = set()
            try:
                with watch_variables(watched) as unobservable:
                    value = call(invoke) if call is not None else invoke()
                returned = True
            except Exception as exc:  # the replayed code's own error is the outcome
                error = exc
        duration = time.perf_counter_ns() - started
        return RunOutcome(returned, value, error, sink.events(), served, frozenset(observed),
                          duration, frozenset(unobservable))

    # -- judging ------------------------------------------------------------------------

    def replay(self, root: Root, *, baseline: list[Event] | None = None,
               check_noise: bool = True, overrides: Any | None = None) -> ReplayResult:
        """Replay ``root`` and return the verdict (never raises for the trace's faults)."""
        recorded = recorded_events(root)
        try:
            outcome = self.run(root, recorded=recorded, overrides=overrides)
        except NotReplayable as exc:
            return ReplayResult(root, "not_replayable", str(exc), recorded=recorded)
        expected = baseline if baseline is not None else recorded
        against = baseline is not None
        result = self.judge(root, expected, outcome, against_baseline=against)
        if check_noise and result.status == "diverged" and result.divergence is not None:
            noisy = self._noisy_fields(root, recorded, expected, outcome, overrides)
            if noisy:
                # Fields that differ between two replays of unchanged code say nothing
                # about the code: judge again without them (zero false alarms).
                result = self.judge(root, expected, outcome, against_baseline=against,
                                    extra_ignore=tuple(noisy))
                result.noise = [f"{field} differs between two replays of unchanged code "
                                f"(nondeterminism, not a regression); suggested "
                                f"replay_ignore entry: {field}" for field in noisy]
        return result

    def judge(self, root: Root, expected: list[Event], outcome: RunOutcome, *,
              against_baseline: bool = False, extra_ignore: tuple[str, ...] = ()
              ) -> ReplayResult:
        """Turn one run into a verdict, following the replay rules of the design."""
        observed = outcome.observed
        known = recorded_function_names(expected)
        foreign = is_foreign(expected)
        left, skipped_left = steps_of(expected)
        if outcome.unobservable:
            left = [step for step in left if not (
                step.event_type == ev.VARIABLE_CHANGE
                and (step.function, step.fields.get("variable_name")) in outcome.unobservable)]
            skipped_left.extend(f"SET {name} in {function}: replay cannot observe it (not a "
                                "variable of the current code)"
                                for function, name in sorted(outcome.unobservable))
        right, _skipped = steps_of(outcome.events, observed, known, foreign=foreign)
        comparison = compare_steps(left, right, replace(
            self.options, time_window_ns=_window(root),
            ignore=self.options.ignore + extra_ignore))
        result = ReplayResult(root, "passed", "", recorded=expected, replayed=outcome.events,
                              comparison=comparison, duration_ns=outcome.duration_ns,
                              against_baseline=against_baseline)
        result.not_compared.extend(sorted(set(skipped_left)))
        if outcome.unrecorded:
            first = outcome.unrecorded[0]
            result.status = "diverged"
            result.message = str(first)
            result.details.extend(str(call) for call in outcome.unrecorded[1:])
            result.divergence = comparison.divergence
            return result
        incident = root.incident_error if not against_baseline else None
        if incident is not None:
            return _judge_incident(result, incident.event, outcome, expected)
        if not root.complete and not against_baseline:
            result.not_compared.append(
                f"the recording ends at line {root.events[-1].line} without the exit of "
                f"{root.frame.function_name}; compared what was recorded"
            )
            comparison = _truncate_to_recording(left, right, self.options)
            result.comparison = comparison
        if comparison.divergence is None:
            result.message = f"replay matches the recording ({comparison.compared} events compared)"
            return result
        result.status = "diverged"
        result.divergence = comparison.divergence
        result.message = comparison.divergence.headline()
        return result

    def _noisy_fields(self, root: Root, recorded: list[Event], expected: list[Event],
                      first: RunOutcome, overrides: Any | None) -> list[str]:
        """``function.field`` paths that differ between two replays of the same code."""
        try:
            second = self.run(root, recorded=recorded, overrides=overrides)
        except NotReplayable:
            return []
        observed = first.observed | second.observed
        known = recorded_function_names(expected)
        foreign = is_foreign(expected)
        a, _ = steps_of(first.events, observed, known, foreign=foreign)
        b, _ = steps_of(second.events, observed, known, foreign=foreign)
        noisy: list[str] = []
        for _ in range(_MAX_NOISY_FIELDS):
            again = compare_steps(a, b, replace(self.options,
                                                ignore=self.options.ignore + tuple(noisy)))
            divergence = again.divergence
            if divergence is None or divergence.field is None or not divergence.path:
                break  # identical, or a different call: not a field one can ignore
            noisy.append(f"{divergence.path[-1]}.{divergence.field}")
        return noisy


def _judge_incident(result: ReplayResult, error: Event, outcome: RunOutcome,
                    expected: list[Event]) -> ReplayResult:
    recorded_type = str(error.get("error_type") or "error")
    failing = _function_of_error(error, expected)
    replay_error = _last_error_event(outcome.events)
    if outcome.error is not None:
        now_type = type(outcome.error).__name__
        where = ""
        if replay_error is not None:
            where = f" in {replay_error.get('function_name')}"
            if replay_error.get("lineno"):
                where += f" at line {replay_error['lineno']}"
        if now_type == recorded_type:
            result.status = "reproduced"
            result.message = f"incident reproduces: {recorded_type}{where}"
        else:
            result.status = "diverged"
            result.message = (f"new error: {now_type}: {outcome.error}{where} "
                              f"(the recording ended in {recorded_type})")
        result.divergence = result.comparison.divergence if result.comparison else None
        return result
    new_errors = sorted({str(e.get("error_type")) for e in outcome.events
                         if e.get("event_type") == ev.ERROR}
                        - {str(e.get("error_type")) for e in expected
                           if e.get("event_type") == ev.ERROR})
    if new_errors:
        result.status = "diverged"
        result.message = (f"{recorded_type} no longer ends the request, but a new error "
                          f"appears: {', '.join(new_errors)}")
        return result
    result.status = "fixed"
    result.message = f"fixed: {recorded_type} no longer raised; " + _now_does(
        failing, outcome, result.root.frame.function_name)
    return result


def _now_does(failing: str | None, outcome: RunOutcome, root_name: str) -> str:
    from pytest_replay.replay.describe import short_value

    parts = []
    if failing is not None:
        exit_event = next((e for e in outcome.events if e.get("event_type") == ev.FUNCTION_EXIT
                           and e.get("function_name") == failing), None)
        if exit_event is not None and "return_value" in exit_event:
            parts.append(f"{failing} now returns {short_value(exit_event['return_value'], 60)}")
    root_exit = next((e for e in reversed(outcome.events)
                      if e.get("event_type") == ev.FUNCTION_EXIT
                      and e.get("function_name") == root_name), None)
    if root_exit is not None and "return_value" in root_exit and failing != root_name:
        parts.append(f"{root_name} returns {short_value(root_exit['return_value'], 80)}")
    return "; ".join(parts) or f"{root_name} completes"


def _function_of_error(error: Event, events: Sequence[Event]) -> str | None:
    cid = error.get("correlation_id")
    for event in events:
        if event.get("event_type") == ev.FUNCTION_ENTRY and event.get("correlation_id") == cid:
            return str(event.get("function_name"))
    name = error.get("function_name")
    return str(name) if name else None


def _last_error_event(events: Sequence[Event]) -> Event | None:
    return next((e for e in reversed(events) if e.get("event_type") == ev.ERROR), None)


def _truncate_to_recording(left: list[Any], right: list[Any], options: CompareOptions
                           ) -> Comparison:
    comparison = compare_steps(left, right[: len(left)], options)
    comparison.not_compared.append(
        f"{max(0, len(right) - len(left))} replayed events past the end of the recording"
    )
    return comparison


def _window(root: Root) -> tuple[int, int] | None:
    """When the recorded request ran, in ns (clock readings inside it are not compared)."""
    stamps = [item.event.get("timestamp_ns") for item in root.events]
    ints = [s for s in stamps if isinstance(s, int) and not isinstance(s, bool)]
    return (min(ints), max(ints)) if ints else None


def _watched_variables(recorded: Sequence[Event]) -> dict[str, frozenset[str]]:
    """Variables the recording has but our own capture would not emit (other emitters)."""
    if not is_foreign(recorded):
        return {}
    frames = {e.get("correlation_id"): str(e.get("function_name")) for e in recorded
              if e.get("event_type") == ev.FUNCTION_ENTRY}
    watched: dict[str, set[str]] = {}
    for event in recorded:
        if event.get("event_type") == ev.VARIABLE_CHANGE:
            function = frames.get(event.get("correlation_id"))
            name = event.get("variable_name")
            if function and isinstance(name, str):
                watched.setdefault(function, set()).add(name)
    return {k: frozenset(v) for k, v in watched.items()}


def bind_arguments(function: Callable[..., Any], decoded: dict[str, Any], what: str
                   ) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Turn recorded ``name -> value`` back into a call, as production made it."""
    try:
        signature = _signature(function)
    except (TypeError, ValueError) as exc:
        raise NotReplayable(f"{what}: no signature: {exc}") from None
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    remaining = dict(decoded)
    positional_ok = True
    for name, parameter in signature.parameters.items():
        kind = parameter.kind
        if kind is parameter.VAR_POSITIONAL:
            values = remaining.pop(name, remaining.pop("*args", []))
            args.extend(values if isinstance(values, (list, tuple)) else [values])
            positional_ok = False
            continue
        if kind is parameter.VAR_KEYWORD:
            values = remaining.pop(name, remaining.pop("**kwargs", {}))
            if isinstance(values, dict):
                kwargs.update(values)
            continue
        if name not in remaining:
            if kind is not parameter.KEYWORD_ONLY:
                positional_ok = False
            continue
        value = remaining.pop(name)
        if kind is parameter.KEYWORD_ONLY or (not positional_ok
                                              and kind is not parameter.POSITIONAL_ONLY):
            kwargs[name] = value
        else:
            args.append(value)
    if remaining:
        names = ", ".join(sorted(remaining))
        raise NotReplayable(f"{what}: recorded argument(s) {names} are not parameters of "
                            f"the current code (signature {signature})")
    missing = [name for name, parameter in signature.parameters.items()
               if parameter.default is parameter.empty
               and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
               and name not in decoded]
    if missing and "*args" not in decoded:
        raise NotReplayable(f"{what}: the recording holds no value for required parameter(s) "
                            f"{', '.join(missing)}; it cannot be called as production called it")
    return tuple(args), kwargs


_SIGNATURES: weakref.WeakKeyDictionary[Any, tuple[tuple[Any, ...], inspect.Signature]] = (
    weakref.WeakKeyDictionary())
"""Per plain function: what its signature is made of, and the signature."""


def _signature(function: Callable[..., Any]) -> inspect.Signature:
    """``inspect.signature`` of the unwrapped function, computed again only when it changed.

    A plain function's signature follows from its code, defaults and
    annotations (or an explicit ``__signature__``); while those are the very
    same objects, so is the signature.
    """
    target = inspect.unwrap(function)
    if not inspect.isfunction(target):
        return inspect.signature(target)
    made_of = (target.__code__, target.__defaults__, target.__kwdefaults__,
               target.__annotations__, target.__dict__.get("__signature__"))
    cached = _SIGNATURES.get(target)
    if cached is not None and all(map(operator.is_, cached[0], made_of)):
        return cached[1]
    signature = inspect.signature(target)
    _SIGNATURES[target] = (made_of, signature)
    return signature


def _run_coroutine(awaitable: Any) -> Any:
    async def runner() -> Any:
        return await awaitable

    return asyncio.run(runner())


@contextmanager
def _capturing_into(sink: MemorySink, redaction: Redaction, limits: Limits
                    ) -> Iterator[None]:
    """Point the capture runtime at ``sink`` for one replay, then restore it exactly.

    Values are capped by ``limits``, production's caps (``replay_capture_limits``),
    so a value recorded whole is not cut short today, nor the other way round.

    Settings that already hold the replay's value are left alone: assigning
    any of them but the sink makes each decorated function recompute what it
    precomputed for the configuration.
    """
    changes: list[tuple[str, Any]] = [("sink", sink)]
    if RUNTIME.service is not None:
        changes.append(("service", None))
    if RUNTIME.sample_rate != 1.0:
        changes.append(("sample_rate", 1.0))
    if _caps(RUNTIME.limits) != _caps(limits):
        changes.append(("limits", limits))
    if RUNTIME.redaction is not redaction:
        changes.append(("redaction", redaction))
    saved = [(name, getattr(RUNTIME, name)) for name, _value in changes]
    active = RUNTIME.active
    for name, value in changes:
        setattr(RUNTIME, name, value)
    RUNTIME.active = True
    try:
        yield
    finally:
        for name, value in saved:
            setattr(RUNTIME, name, value)
        RUNTIME.active = active


def _caps(limits: Limits) -> tuple[int, ...]:
    return (limits.max_str, limits.max_items, limits.max_depth, limits.max_repr,
            limits.max_nodes)



def default_servers(root: Root, recorded: Sequence[Event], config: ReplayConfig,
                    overrides: Any | None = None) -> Sequence[Server]:
    """The outside world as the recording saw it: HTTP, databases, and a sealed network."""
    from pytest_replay.replay.servers import servers_for

    return servers_for(recorded, config, seed=root.correlation_id, overrides=overrides)
