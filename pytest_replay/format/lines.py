"""One trace line to one event: JSON parsing held to the format's rules, and field checks.

Every problem names the file, the line, the column where known, and the
field. :mod:`pytest_replay.format.reader` applies this to whole streams.
"""

from __future__ import annotations

import json
import sys
import threading
from dataclasses import dataclass
from typing import Any, Final, Literal, final

import orjson

from pytest_replay.format.events import FIELD_TYPES, Event

MAX_LINE_BYTES: Final = 64 * 1024 * 1024
"""A line longer than this is an error; the reader skips it without holding it."""

# orjson reads integers past 64 bits as floats. A line that has a run of 20
# digits, or a minus sign and 19, may hold one; it takes the exact parser.
# Mapping every byte to '0' (digit), '-' or ' ' and searching for the runs
# costs a fraction of a regular expression.
DIGIT_MAP: Final = bytes(
    0x30 if 0x30 <= byte <= 0x39 else 0x2D if byte == 0x2D else 0x20 for byte in range(256)
)
LONG_RUN: Final = b"0" * 20
LONG_NEGATIVE: Final = b"-" + b"0" * 19

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class TraceProblem:
    """One thing wrong with a trace, located precisely enough to fix it."""

    path: str
    line: int
    message: str
    field: str | None = None
    column: int | None = None
    severity: Severity = "error"

    def location(self) -> str:
        """``file:line[:col]``, the form editors and terminals link (``file`` for line 0)."""
        if self.line <= 0:
            return self.path
        where = f"{self.path}:{self.line}"
        return f"{where}:{self.column}" if self.column else where

    def __str__(self) -> str:
        what = f"field '{self.field}': " if self.field else ""
        return f"{self.location()}: {what}{self.message}"


@dataclass(frozen=True)
class CutShortLine(TraceProblem):
    """The warning for an unterminated last line that does not parse, with its bytes."""

    raw: bytes = b""


class TraceFormatError(ValueError):
    """A trace line that cannot be used; carries the :class:`TraceProblem`."""

    def __init__(self, problem: TraceProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def parse_line(line: bytes, path: str, number: int) -> Event:
    """Decode one line into an event, or raise :class:`TraceFormatError`."""
    if len(line) > MAX_LINE_BYTES:
        raise TraceFormatError(
            TraceProblem(path, number, f"line is longer than the {MAX_LINE_BYTES}-byte cap")
        )
    try:
        digits = line.translate(DIGIT_MAP)
        if LONG_RUN in digits or LONG_NEGATIVE in digits:
            event = _loads_exact(line)
        else:
            event = orjson.loads(line)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise TraceFormatError(_syntax_problem(exc, line, path, number)) from None
    if type(event) is not dict:
        raise TraceFormatError(
            TraceProblem(path, number, f"expected a JSON object, got {_json_type(event)}")
        )
    check_fields(event, path, number)
    return event


@final
class LineParser:
    """:func:`parse_line` for a stream of lines: same results, less work per line.

    It remembers the field names and value types of events it has already
    checked, so most lines of a log cost one parse and one set lookup.
    ``shapes`` lets it share that memory with the reader's bulk path.
    """

    __slots__ = ("_shapes",)

    def __init__(self, shapes: KnownShapes | None = None) -> None:
        self._shapes = KnownShapes() if shapes is None else shapes

    def __call__(self, line: bytes, path: str, number: int) -> Event:
        """Decode one line (no line ending) into an event, or raise TraceFormatError."""
        if len(line) <= MAX_LINE_BYTES:
            digits = line.translate(DIGIT_MAP)
            if LONG_RUN not in digits and LONG_NEGATIVE not in digits:
                try:
                    event = orjson.loads(line)
                except orjson.JSONDecodeError:
                    event = None
                if type(event) is dict and self._known(event):
                    return event
        return parse_line(line, path, number)

    def _known(self, event: dict[str, Any]) -> bool:
        shapes = self._shapes
        if (*event, *map(type, event.values())) not in shapes.shapes:
            return shapes.check(event)
        version = event.get("v")
        return version is None or version >= 1


def decode_accepted(line: bytes) -> Event:
    """Decode a line :func:`parse_line` accepts, the way it does (big integers exactly).

    For events the reader kept as bytes and decodes on first use; the line
    may still end in ``\\r``.
    """
    digits = line.translate(DIGIT_MAP)
    if LONG_RUN in digits or LONG_NEGATIVE in digits:
        event: Event = _loads_exact(line)
        return event
    decoded: Event = orjson.loads(line)
    return decoded


ORJSON_MAX_DEPTH: Final = 1024
"""How deeply orjson lets arrays and objects nest; the exact parser is given as much room."""
_DEEPER: Final = threading.Lock()
"""Held while the recursion limit is raised, so two threads cannot leave it raised."""


def _loads_exact(line: bytes) -> Any:
    """The standard parser, held to orjson's rules: no NaN, no infinity, no lone surrogates.

    Its nesting is bounded by the interpreter's recursion limit, which the
    caller's own depth eats into, so a line orjson would take could fail
    here: on a RecursionError it tries once more with room for orjson's
    depth. Deeper lines still fail (orjson refuses them too).
    """
    try:
        return _json_exact(line)
    except RecursionError:
        pass
    with _DEEPER:
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(limit + ORJSON_MAX_DEPTH + 64)
        try:
            return _json_exact(line)
        finally:
            sys.setrecursionlimit(limit)


def _json_exact(line: bytes) -> Any:
    value = json.loads(line, parse_constant=_reject_constant, parse_float=_finite_float)
    json.dumps(value, ensure_ascii=False).encode("utf-8")  # raises on a lone surrogate
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (write it as a tagged float)")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text} is out of range (write it as a tagged float)")
    return value


def _syntax_problem(exc: BaseException, line: bytes, path: str, number: int) -> TraceProblem:
    if isinstance(exc, RecursionError):
        return TraceProblem(path, number, "not valid JSON: nested too deeply")
    if isinstance(exc, UnicodeError) or "UTF-8" in str(exc):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as bad:
            return TraceProblem(path, number, f"not valid UTF-8 at byte {bad.start + 1}",
                                column=bad.start + 1)
    column = getattr(exc, "colno", None)
    message = getattr(exc, "msg", None) or str(exc)
    return TraceProblem(path, number, f"not valid JSON: {message}", column=column)


def check_fields(event: dict[str, Any], path: str, number: int) -> None:
    """Raise if a known field has the wrong type; unknown fields are kept as they are."""
    if "event_type" not in event:
        raise TraceFormatError(TraceProblem(path, number, "missing", field="event_type"))
    get = FIELD_TYPES.get
    for name, value in event.items():
        spec = get(name)
        if spec is not None and type(value) not in spec[0]:
            message = f"must be {spec[1]}, got {_json_type(value)}"
            raise TraceFormatError(TraceProblem(path, number, message, field=name))
    version = event.get("v")
    if version is not None and version < 1:
        raise TraceFormatError(
            TraceProblem(path, number, f"must be 1 or more, got {version}", field="v")
        )


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return {str: "string", int: "integer", float: "number", list: "array", dict: "object"}.get(
        type(value), type(value).__name__
    )


@final
class KnownShapes:
    """Field names and value types of events already checked, to skip checking twice.

    A trace has few shapes (one per event type and emitter), so the check of
    most lines is one tuple built in C and one set lookup. Bounded, for
    traces whose every line has different keys.
    """

    __slots__ = ("shapes",)
    MAX_SHAPES: Final = 4096

    def __init__(self) -> None:
        self.shapes: set[tuple[Any, ...]] = set()

    def admit(self, shape: tuple[Any, ...]) -> bool:
        """Whether ``shape`` (field names, then their value types) is well-typed; remembered if so.

        The bulk path's check: the same rules as :func:`check_fields` minus the
        value of ``v``, which the caller checks.
        """
        if shape in self.shapes:
            return True
        half = len(shape) // 2
        names = shape[:half]
        if "event_type" not in names:
            return False
        get = FIELD_TYPES.get
        for name, kind in zip(names, shape[half:]):  # noqa: B905 - halves of one tuple
            spec = get(name)
            if spec is not None and kind not in spec[0]:
                return False
        if len(self.shapes) < self.MAX_SHAPES:
            self.shapes.add(shape)
        return True

    def check(self, event: dict[str, Any]) -> bool:
        """Whether ``event``, of a shape not seen yet, is well-typed (False: see parse_line)."""
        shape = (*event, *map(type, event.values()))
        try:
            check_fields(event, "", 0)
        except TraceFormatError:
            return False
        if len(self.shapes) < self.MAX_SHAPES:
            self.shapes.add(shape)
        return True


def cut_short(problem: TraceProblem, line: bytes) -> TraceProblem:
    """A syntax error on the unterminated last line is a crash mid-write, not bad data."""
    if problem.field is not None or len(line) > MAX_LINE_BYTES:
        return problem
    return CutShortLine(
        problem.path, problem.line, f"last line is cut short (kept aside): {problem.message}",
        column=problem.column, severity="warning", raw=line,
    )
