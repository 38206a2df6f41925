"""Stream trace events from JSONL files (plain or gzip), one line at a time.

Nothing here reads a whole file into memory. Every problem names the file,
the line, the column where known, and the field; a problem in one line never
loses the other lines. A last line cut short (a crash mid-write) is kept aside
with a warning rather than failing the trace.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final, Literal

import orjson

from pytest_replay.format.events import (
    INT_FIELDS,
    KNOWN_EVENT_TYPES,
    MAPPING_FIELDS,
    STRING_FIELDS,
    Event,
)

_BOM: Final = b"\xef\xbb\xbf"
_LONG_INT: Final = re.compile(rb"\d{20,}")
_GZIP_MAGIC: Final = b"\x1f\x8b"
MAX_LINE_BYTES: Final = 64 * 1024 * 1024

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
        """``file:line[:col]`` in the form editors and terminals link."""
        where = f"{self.path}:{self.line}"
        return f"{where}:{self.column}" if self.column else where

    def __str__(self) -> str:
        what = f"field '{self.field}': " if self.field else ""
        return f"{self.location()}: {what}{self.message}"


class TraceFormatError(ValueError):
    """A trace line that cannot be used; carries the :class:`TraceProblem`."""

    def __init__(self, problem: TraceProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


@dataclass
class LineEvent:
    """An event together with where it came from (for reportinfo and errors)."""

    line: int
    event: Event


@dataclass
class ReadResult:
    """Every good event of a file in order, and every problem met on the way."""

    path: str
    events: list[LineEvent] = field(default_factory=list)
    problems: list[TraceProblem] = field(default_factory=list)

    @property
    def errors(self) -> list[TraceProblem]:
        """Problems that make some of the trace unusable."""
        return [p for p in self.problems if p.severity == "error"]


def open_binary(path: str | Path) -> IO[bytes]:
    """Open a trace for reading, transparently un-gzipping by content, not name."""
    if str(path) == "-":
        return sys.stdin.buffer
    raw = open(path, "rb")  # noqa: SIM115 - handed to the caller, who closes it
    head = raw.peek(2)[:2] if isinstance(raw, io.BufferedReader) else b""
    if head == _GZIP_MAGIC:
        return gzip.GzipFile(fileobj=raw, mode="rb")
    return raw


def iter_raw_lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes, bool]]:
    """Yield ``(line number, bytes, ended with a newline)`` for non-blank lines."""
    for number, raw in enumerate(stream, start=1):
        complete = raw.endswith(b"\n")
        line = raw.rstrip(b"\r\n")
        if number == 1 and line.startswith(_BOM):
            line = line[len(_BOM) :]
        if line.strip():
            yield number, line, complete


def parse_line(line: bytes, path: str, number: int) -> Event:
    """Decode one line into an event, or raise :class:`TraceFormatError`."""
    if len(line) > MAX_LINE_BYTES:
        raise TraceFormatError(
            TraceProblem(path, number, f"line is {len(line)} bytes, over the {MAX_LINE_BYTES} cap")
        )
    try:
        event = _loads_exact(line)
    except (orjson.JSONDecodeError, ValueError, RecursionError) as exc:
        column = getattr(exc, "colno", None)
        message = getattr(exc, "msg", None) or str(exc)
        raise TraceFormatError(
            TraceProblem(path, number, f"not valid JSON: {message}", column=column)
        ) from None
    if not isinstance(event, dict):
        raise TraceFormatError(
            TraceProblem(path, number, f"expected a JSON object, got {type(event).__name__}")
        )
    check_fields(event, path, number)
    return event


def _loads_exact(line: bytes) -> Any:
    # orjson turns integers past 64 bits into floats; such lines go through the
    # exact (slower) standard parser so no value silently changes.
    if _LONG_INT.search(line) is None:
        return orjson.loads(line)
    return json.loads(line, parse_constant=_reject_constant)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (write it as a tagged float)")


def check_fields(event: dict[str, Any], path: str, number: int) -> None:
    """Raise if a known field has the wrong type; unknown fields are kept as they are."""
    kind = event.get("event_type")
    if kind is None:
        raise TraceFormatError(TraceProblem(path, number, "missing", field="event_type"))
    for name in STRING_FIELDS:
        value = event.get(name)
        if value is not None and not isinstance(value, str):
            raise TraceFormatError(
                TraceProblem(path, number, f"must be a string, got {_json_type(value)}", name)
            )
    for name in INT_FIELDS:
        value = event.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise TraceFormatError(
                TraceProblem(path, number, f"must be an integer, got {_json_type(value)}", name)
            )
    for name in MAPPING_FIELDS:
        value = event.get(name)
        if value is not None and not isinstance(value, dict):
            raise TraceFormatError(
                TraceProblem(path, number, f"must be an object, got {_json_type(value)}", name)
            )


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    return {str: "string", int: "integer", float: "number", list: "array", dict: "object"}.get(
        type(value), type(value).__name__
    )


def read_trace(path: str | Path) -> ReadResult:
    """Read every event of one trace file, collecting problems instead of stopping."""
    name = str(path)
    result = ReadResult(name)
    try:
        with open_binary(path) as stream:
            _read_into(stream, name, result)
    except OSError as exc:
        result.problems.append(TraceProblem(name, 0, f"cannot read: {exc}"))
    return result


def read_stream(stream: IO[bytes], name: str) -> ReadResult:
    """Like :func:`read_trace`, for an already open binary stream (stdin)."""
    result = ReadResult(name)
    _read_into(stream, name, result)
    return result


def _read_into(stream: IO[bytes], name: str, result: ReadResult) -> None:
    try:
        for number, line, complete in iter_raw_lines(stream):
            try:
                event = parse_line(line, name, number)
            except TraceFormatError as exc:
                problem = exc.problem
                if not complete:
                    problem = TraceProblem(
                        name, number, "last line is cut short (kept aside)",
                        column=problem.column, severity="warning",
                    )
                result.problems.append(problem)
                continue
            if event["event_type"] not in KNOWN_EVENT_TYPES:
                result.problems.append(TraceProblem(
                    name, number, f"unknown event type {event['event_type']!r} (kept)",
                    field="event_type", severity="warning",
                ))
            result.events.append(LineEvent(number, event))
    except (EOFError, gzip.BadGzipFile, OSError) as exc:
        line = result.events[-1].line + 1 if result.events else 1
        result.problems.append(TraceProblem(name, line, f"compressed stream is corrupt: {exc}"))


def iter_events(paths: Iterable[str | Path]) -> Iterator[tuple[str, LineEvent]]:
    """Yield good events of many files lazily (for tools that stream big logs)."""
    for path in paths:
        name = str(path)
        with open_binary(path) as stream:
            for number, line, _complete in iter_raw_lines(stream):
                try:
                    yield name, LineEvent(number, parse_line(line, name, number))
                except TraceFormatError:
                    continue
