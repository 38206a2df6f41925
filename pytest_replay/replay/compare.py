"""Compare a recorded event stream with a replayed one and find the first divergence.

Both streams are reduced to *steps*: what the design says is compared (calls
with their arguments and outcomes, variable changes, loop iterations, errors,
external calls), without timestamps, durations or ids. Values are compared
in their encoded form: sets unordered, floats within a relative tolerance,
objects by class and attributes (never by a ``repr``). Every mismatch
explains itself, as ``responses`` matchers do: ``(equal, reason, path)``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import fnmatch
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from pytest_replay.format import events as ev
from pytest_replay.format.events import Event
from pytest_replay.format.isotime import parse_datetime
from pytest_replay.format.values import TAG

NEVER_COMPARED: Final = frozenset({
    "timestamp_ns", "duration_ns", "correlation_id", "parent_correlation_id", "trace_id",
    "service", "v", "observed", "_line", "module", "qualname",
})
ERROR_FIELDS: Final = ("error_type", "message", "function_name")
NOT_COMPARED_TYPES: Final = frozenset({ev.CONTEXT, ev.NONDETERMINISM})


@dataclass(frozen=True)
class Step:
    """One comparable event: what it is, where it sits, and the fields compared."""

    index: int
    event_type: str
    function: str
    path: tuple[str, ...]
    fields: dict[str, Any]
    event: Event

    @property
    def line(self) -> int | None:
        """The trace line this step came from, when it came from a file."""
        value = self.event.get("_line")
        return value if isinstance(value, int) else None

    def describe(self) -> str:
        """A one-line human description (``EXIT calculate_tax -> 8.0``)."""
        from pytest_replay.replay.describe import describe_event

        return describe_event(self.event)


@dataclass(frozen=True)
class Divergence:
    """The first place where today's code and the recording part ways."""

    index: int
    path: tuple[str, ...]
    reason: str
    field: str | None
    recorded: Step | None
    replayed: Step | None
    context: tuple[Step, ...]
    """Steps that matched just before the divergence (oldest first)."""

    @property
    def where(self) -> str:
        """``process_order > calculate_tax`` (the call path of the divergent event)."""
        return " > ".join(self.path) if self.path else "(top level)"

    def headline(self) -> str:
        """One line for summaries and JUnit messages."""
        return f"first divergent event #{self.index + 1} at {self.where}: {self.reason}"


@dataclass
class Comparison:
    """The outcome of comparing two streams."""

    divergence: Divergence | None
    compared: int
    not_compared: list[str] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        """Whether nothing diverged."""
        return self.divergence is None


@dataclass(frozen=True)
class CompareOptions:
    """User settings: fields never compared and the float tolerance."""

    ignore: tuple[str, ...] = ()
    float_tolerance: float = 1e-9
    context: int = 3
    time_window_ns: tuple[int, int] | None = None
    """When the recorded request ran: clock readings inside it on both sides are equal.

    Replay freezes the wall clock at the request's start, while production
    read it microseconds later; a timestamp the code produced is therefore
    normalized, not compared to the microsecond.
    """

# -- building steps -------------------------------------------------------------------------


def steps_of(events: Sequence[Event], observed: frozenset[str] = frozenset(),
             recorded_functions: frozenset[str] | None = None, *,
             foreign: bool = False) -> tuple[list[Step], list[str]]:
    """Reduce events to comparable steps; also return what could not be compared.

    ``observed`` names (``module:qualname``) are functions replay wrapped on
    its own; their calls count only when the recording knows the function
    (``recorded_functions``), otherwise they are transparent. A ``foreign``
    recording (written by another emitter) makes every call it does not know
    transparent: it never said what those functions did.
    """
    explicit: set[tuple[Any, Any, bytes]] | None = None  # made when a watched value needs it
    steps: list[Step] = []
    skipped: list[str] = []
    stack: list[str] = []
    hidden: set[str] = set()
    frame_function: dict[str, str] = {}
    for event in events:
        kind = str(event.get("event_type"))
        cid = str(event.get("correlation_id"))
        if kind == ev.FUNCTION_ENTRY:
            name = str(event.get("function_name") or event.get("qualname") or "?")
            frame_function[cid] = name
            if _transparent(event, observed, recorded_functions, foreign):
                hidden.add(cid)
                continue
            stack.append(name)
            steps.append(_step(len(steps), kind, name, stack, _entry_fields(event), event))
            continue
        if cid in hidden:
            continue
        if kind == ev.FUNCTION_EXIT:
            name = str(event.get("function_name") or frame_function.get(cid, "?"))
            steps.append(_step(len(steps), kind, name, stack, _exit_fields(event), event))
            if stack:
                stack.pop()
            continue
        if kind in NOT_COMPARED_TYPES:
            continue
        function = frame_function.get(cid, stack[-1] if stack else "?")
        if kind == ev.VARIABLE_CHANGE:
            if event.get("observed"):
                if explicit is None:
                    explicit = _reported_variables(events)
                if (event.get("correlation_id"), event.get("variable_name"),
                        _canonical(event.get("value"))) in explicit:
                    continue  # the code reported it itself; the watcher only saw it too
            fields = {"variable_name": event.get("variable_name"), "value": event.get("value")}
        elif kind == ev.LOOP_ITERATION:
            fields = {k: event.get(k) for k in ("loop_name", "iteration", "value", "iterations")
                      if k in event}
        elif kind == ev.ERROR:
            fields = {k: event[k] for k in ERROR_FIELDS if k in event}
        elif kind in (ev.HTTP_CALL, ev.DB_CALL):
            fields = {k: v for k, v in event.items() if k not in NEVER_COMPARED}
        else:
            skipped.append(f"event type {kind!r} is not compared")
            continue
        steps.append(_step(len(steps), kind, function, stack, fields, event))
    return steps, skipped


def _reported_variables(events: Sequence[Event]) -> set[tuple[Any, Any, bytes]]:
    """``(frame, name, value)`` of the variable changes the code reported itself."""
    return {(e.get("correlation_id"), e.get("variable_name"), _canonical(e.get("value")))
            for e in events
            if e.get("event_type") == ev.VARIABLE_CHANGE and not e.get("observed")}


def _transparent(event: Event, observed: frozenset[str],
                 recorded_functions: frozenset[str] | None, foreign: bool) -> bool:
    if recorded_functions is None:
        return False
    if str(event.get("function_name")) in recorded_functions:
        return False
    return foreign or f"{event.get('module')}:{event.get('qualname')}" in observed


def is_foreign(events: Iterable[Event]) -> bool:
    """Whether a recording was written by another emitter (its entries carry no ``v``)."""
    entries = [e for e in events if e.get("event_type") == ev.FUNCTION_ENTRY]
    return bool(entries) and not any(e.get("v") for e in entries)


def _step(index: int, kind: str, function: str, stack: list[str], fields: dict[str, Any],
          event: Event) -> Step:
    # What Step(...) makes, without the frozen dataclass's one __setattr__ call per field:
    # a replay builds a few dozen steps on each side, and that was half their cost.
    step = _new_step(Step)
    step.__dict__.update(index=index, event_type=kind, function=function, path=tuple(stack),
                         fields=fields, event=event)
    return step


_new_step: Final = object.__new__
if "__slots__" in vars(Step) or tuple(f.name for f in dataclasses.fields(Step)) != (
        "index", "event_type", "function", "path", "fields", "event"):  # pragma: no cover
    raise AssertionError("compare._step fills Step's __dict__ by field name: update it with Step")


def _entry_fields(event: Event) -> dict[str, Any]:
    fields = {"function_name": event.get("function_name") or event.get("qualname")}
    if "args" in event:
        fields["args"] = event["args"]
    return fields


def _exit_fields(event: Event) -> dict[str, Any]:
    # A field a recording lacks (other emitters write less) is not compared;
    # a field it has and the replay lacks is a divergence.
    if event.get("error"):
        fields: dict[str, Any] = {"error": True}
        fields.update({k: event[k] for k in ("error_type", "message") if k in event})
        return fields
    fields = {"error": False}
    if "return_value" in event:
        fields["return_value"] = event["return_value"]
    return fields


def recorded_function_names(events: Iterable[Event]) -> frozenset[str]:
    """Function names a recording holds calls of."""
    return frozenset(str(e.get("function_name")) for e in events
                     if e.get("event_type") == ev.FUNCTION_ENTRY)


# -- comparing ------------------------------------------------------------------------------


def compare_steps(recorded: Sequence[Step], replayed: Sequence[Step],
                  options: CompareOptions) -> Comparison:
    """The first divergence between two step lists, or none."""
    for index in range(min(len(recorded), len(replayed))):
        left, right = recorded[index], replayed[index]
        equal, reason, where = _compare_step(left, right, options)
        if not equal:
            return Comparison(_divergence(index, left, right, reason, where, recorded, options),
                              index)
    if len(replayed) < len(recorded):
        missing = recorded[len(replayed)]
        reason = f"replay ended early: recorded {missing.describe()} never happened"
        return Comparison(_divergence(len(replayed), missing, None, reason, None, recorded,
                                      options), len(replayed))
    if len(replayed) > len(recorded):
        extra = replayed[len(recorded)]
        reason = f"replay did more than the recording: {extra.describe()}"
        return Comparison(_divergence(len(recorded), None, extra, reason, None, recorded,
                                      options), len(recorded))
    return Comparison(None, len(recorded))


def _divergence(index: int, left: Step | None, right: Step | None, reason: str,
                where: str | None, recorded: Sequence[Step], options: CompareOptions
                ) -> Divergence:
    anchor = left or right
    path = anchor.path if anchor is not None else ()
    start = max(0, index - options.context)
    return Divergence(index, path, reason, where, left, right, tuple(recorded[start:index]))


def _compare_step(left: Step, right: Step, options: CompareOptions) -> tuple[bool, str, str | None]:
    if left.event_type != right.event_type or left.function != right.function:
        return False, (f"expected {left.describe()}, got {right.describe()}"), None
    if identical(left.fields, right.fields):
        return True, "", None  # nothing can differ, whatever is ignored or tolerated
    ignore = _Ignore(options.ignore, left.event_type, left.function)
    for key in sorted(set(left.fields) | set(right.fields)):
        if ignore.matches(key):
            continue
        if key not in left.fields:
            continue  # the recording does not say: not compared
        if key not in right.fields:
            return False, f"{key} missing in replay", key
        equal, reason, where = values_equal(left.fields[key], right.fields[key], key,
                                            options.float_tolerance, ignore,
                                            window=options.time_window_ns)
        if not equal:
            return False, reason, where
    return True, "", None


class _Ignore:
    __slots__ = ("event_type", "function", "patterns")

    def __init__(self, patterns: tuple[str, ...], event_type: str, function: str) -> None:
        self.patterns = patterns
        self.event_type = event_type
        self.function = function

    def matches(self, path: str) -> bool:
        if not self.patterns:
            return False
        last = path.rsplit(".", 1)[-1]
        candidates = (path, f"{self.function}.{path}", f"{self.event_type}.{path}", last)
        return any(
            fnmatch.fnmatchcase(candidate, pattern) or fnmatch.fnmatchcase(candidate,
                                                                           f"{pattern}.*")
            for pattern in self.patterns for candidate in candidates
        )


def identical(left: Any, right: Any) -> bool:
    """The same value, type for type (``1`` is not ``True``, nor ``1.0``; NaN is not NaN).

    Identical values compare equal under every option, so this cheap check
    lets most steps of a passing replay skip the field-by-field comparison.
    """
    kind = type(left)
    if kind is not type(right):
        return False
    if kind is dict:
        if len(left) != len(right):
            return False
        for key, value in left.items():
            other = right.get(key, _ABSENT)
            if other is _ABSENT or not identical(value, other):
                return False
        return True
    if kind is list:
        return len(left) == len(right) and all(map(identical, left, right))
    return kind in _SCALARS and bool(left == right)


_ABSENT: Final = object()
_SCALARS: Final = frozenset({str, int, float, bool, type(None)})


def values_equal(left: Any, right: Any, path: str, tolerance: float,
                 ignore: _Ignore | None = None, *,
                 window: tuple[int, int] | None = None) -> tuple[bool, str, str | None]:
    """Compare two encoded values; on a difference say what and where."""
    if ignore is not None and ignore.matches(path):
        return True, "", None
    if window is not None and left != right and clock_readings_in(window, left, right):
        return True, "", None
    if _is_number(left) and _is_number(right):
        floats = isinstance(left, float) or isinstance(right, float)
        if left == right or (floats and math.isclose(left, right, rel_tol=tolerance,
                                                     abs_tol=0.0)):
            return True, "", None
        return False, f"{path}: recorded {left!r}, now {right!r}", path
    if isinstance(left, dict) and isinstance(right, dict):
        return _dicts_equal(left, right, path, tolerance, ignore, window)
    if isinstance(left, list) and isinstance(right, list):
        if len(left) != len(right):
            return False, (f"{path}: recorded {len(left)} items, now {len(right)}"), path
        for index, (a, b) in enumerate(zip(left, right, strict=True)):
            equal, reason, where = values_equal(a, b, f"{path}[{index}]", tolerance, ignore,
                                                window=window)
            if not equal:
                return equal, reason, where
        return True, "", None
    if left == right and type(left) is type(right):
        return True, "", None
    if isinstance(left, str) and isinstance(right, str) and _token_matches(left, right):
        return True, "", None
    return False, f"{path}: recorded {_short(left)}, now {_short(right)}", path


def _dicts_equal(left: dict[str, Any], right: dict[str, Any], path: str, tolerance: float,
                 ignore: _Ignore | None, window: tuple[int, int] | None
                 ) -> tuple[bool, str, str | None]:
    tag = left.get(TAG)
    if tag != right.get(TAG):
        return False, f"{path}: recorded {_short(left)}, now {_short(right)}", path
    if tag in ("set", "frozenset"):
        a, b = sorted(map(_canonical, left.get("items", []))), sorted(
            map(_canonical, right.get("items", [])))
        if a != b:
            return False, f"{path}: recorded {_short(left)}, now {_short(right)}", path
        return True, "", None
    skip = {"repr", "repr_error"} if tag in ("object", "dataclass") else set()
    for key in sorted((set(left) | set(right)) - skip):
        sub = f"{path}.{key}"
        if ignore is not None and ignore.matches(sub):
            continue
        if key not in left or key not in right:
            side = "replay" if key not in right else "recording"
            return False, f"{sub}: missing in the {side}", sub
        equal, reason, where = values_equal(left[key], right[key], sub, tolerance, ignore,
                                            window=window)
        if not equal:
            return equal, reason, where
    return True, "", None


def _canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _short(value: Any, limit: int = 120) -> str:
    from pytest_replay.replay.describe import short_value

    return short_value(value, limit)


_ISO_TIME: Final = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
_SLACK_NS: Final = 1_000_000_000


def clock_readings_in(window: tuple[int, int], left: Any, right: Any) -> bool:
    """Whether both values read the wall clock while the recorded request ran.

    Understands ISO strings, tagged datetimes and epoch seconds; a naive
    datetime may be UTC or local time (production servers differ).
    """
    start, end = window[0] - _SLACK_NS, window[1] + _SLACK_NS
    return all(any(start <= c <= end for c in _instants(v)) for v in (left, right))


def _instants(value: Any) -> list[int]:
    if isinstance(value, dict) and value.get(TAG) == "datetime":
        value = value.get("value")
    if isinstance(value, float) and 1e8 < value < 1e11:
        return [int(value * 1e9)]
    if not isinstance(value, str) or not _ISO_TIME.match(value) or len(value) > 40:
        return []
    try:
        moment = parse_datetime(value)
    except ValueError:
        return []
    if moment.tzinfo is not None:
        return [int(moment.timestamp() * 1e9)]
    as_utc = moment.replace(tzinfo=_dt.timezone.utc)
    return [int(as_utc.timestamp() * 1e9), int(moment.timestamp() * 1e9)]


def _token_matches(recorded: str, live: str) -> bool:
    """Whether a recording redacted by ``extract-traces`` (``<email:3f2a...>`` tokens)
    agrees with a live value: each token stands for whatever value was there."""
    if "<" not in recorded and "%3C" not in recorded and "%3c" not in recorded:
        return False
    from pytest_replay.redaction import matches

    return matches(recorded, live)
