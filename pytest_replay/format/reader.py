"""Stream trace events from JSONL files (plain or gzip), one line at a time.

Nothing here reads a whole file into memory, and no line is held past a cap.
Every problem names the file, the line, the column where known, and the
field; a problem in one line never loses the other lines. A last line cut
short (a crash mid-write) is kept aside with a warning rather than failing
the trace. The rules are written down in docs/trace-format.md.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import gzip
import io
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final, cast

import orjson

from pytest_replay.format import lines as _lines
from pytest_replay.format.events import FORMAT_VERSION, KNOWN_EVENT_TYPES, Event
from pytest_replay.format.lines import (
    MAX_LINE_BYTES,
    CutShortLine,
    LineParser,
    Severity,
    TraceFormatError,
    TraceProblem,
    check_fields,
    cut_short,
    parse_line,
)

__all__ = [
    "MAX_LINE_BYTES",
    "CutShortLine",
    "LineEvent",
    "LineParser",
    "ReadResult",
    "Severity",
    "TraceFormatError",
    "TraceProblem",
    "check_fields",
    "gunzip_if_compressed",
    "iter_events",
    "open_binary",
    "parse_line",
    "paused_gc",
    "read_stream",
    "read_trace",
]

_BOM: Final = b"\xef\xbb\xbf"
_GZIP_MAGIC: Final = b"\x1f\x8b"
_DRAIN_CHUNK: Final = 1024 * 1024
_FLUSH_EVERY: Final = 1024


@dataclass(slots=True)
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
    cut_short: bytes | None = None
    """The unterminated last line that did not parse (a crash mid-write), as read."""

    @property
    def errors(self) -> list[TraceProblem]:
        """Problems that make some of the trace unusable."""
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[TraceProblem]:
        """Problems that lost nothing important (unknown types, a cut last line...)."""
        return [p for p in self.problems if p.severity == "warning"]


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while a trace is read and modelled.

    Each parsed event is a few container objects that live until the end of
    the read. The collector would re-walk all of them every time its young
    generation fills, which doubles the read time; nothing built here is
    garbage that needs it. The previous state is restored on the way out.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def open_binary(path: str | Path) -> IO[bytes]:
    """Open a trace for reading (``-`` is stdin), un-gzipping by content, not name."""
    if str(path) == "-":
        return gunzip_if_compressed(sys.stdin.buffer)
    raw = open(path, "rb")  # noqa: SIM115 - handed to the caller, who closes it
    try:
        compressed = raw.peek(2)[:2] == _GZIP_MAGIC
    except BaseException:
        raw.close()
        raise
    if not compressed:
        return raw
    raw.close()
    return cast(IO[bytes], gzip.open(path, "rb"))  # owns (and closes) its own file


def gunzip_if_compressed(stream: IO[bytes]) -> IO[bytes]:
    """``stream`` itself, or a decompressing view of it when it starts with the gzip magic."""
    peekable: Any = stream
    if not callable(getattr(stream, "peek", None)):
        if not isinstance(stream, (io.RawIOBase, io.BytesIO)):
            return stream
        peekable = io.BufferedReader(cast(Any, stream))
    if bytes(peekable.peek(2)[:2]) == _GZIP_MAGIC:
        return cast(IO[bytes], gzip.GzipFile(fileobj=peekable, mode="rb"))
    return cast(IO[bytes], peekable)


def _skip_rest_of_line(readline: Callable[[int], bytes]) -> bool:
    while True:
        chunk = readline(_DRAIN_CHUNK)
        if not chunk:
            return False
        if chunk.endswith(b"\n"):
            return True


def _scan(stream: IO[bytes], name: str, events: list[LineEvent]
          ) -> Iterator[TraceProblem | None]:
    """Append every good event of ``stream`` to ``events``; yield every problem.

    Problems come in file order relative to the events appended before them.
    ``None`` is yielded every :data:`_FLUSH_EVERY` lines so a streaming
    consumer can hand on and clear ``events``. ``stream`` must already be
    decompressed (see :func:`gunzip_if_compressed`). Each unknown event type
    and a newer format version are reported once. The common case runs
    inline, without a Python call per line; a line that does not pass it goes
    through :func:`parse_line`, which says what is wrong with it.
    """
    readline = stream.readline
    limit = _lines.MAX_LINE_BYTES + 1  # read at call time, so tests can lower the cap
    loads = orjson.loads
    append = events.append
    digit_map, long_run, long_negative = _lines.DIGIT_MAP, _lines.LONG_RUN, _lines.LONG_NEGATIVE
    known_shapes = _lines.KnownShapes()
    shapes = known_shapes.shapes
    unknown: set[str] = set()
    newer = False
    number = 0
    try:
        for raw in iter(functools.partial(readline, limit), b""):
            number += 1
            if not number % _FLUSH_EVERY:
                yield None
            event: Any = None
            if raw[-1] == 0x0A:  # orjson skips the line ending itself: no copy to strip it
                digits = raw.translate(digit_map)
                if long_run not in digits and long_negative not in digits:
                    try:
                        event = loads(raw)
                    except orjson.JSONDecodeError:
                        event = None
            if (
                type(event) is not dict
                or (
                    (*event, *map(type, event.values())) not in shapes
                    and not known_shapes.check(event)
                )
            ):
                # The slow path: a BOM, a blank or unterminated line, a long
                # integer, a line over the cap, or something wrong to report.
                complete = raw.endswith(b"\n")
                if not complete and len(raw) >= limit:
                    complete = _skip_rest_of_line(readline)
                    line = raw
                else:
                    line = raw.rstrip(b"\r\n")
                    if number == 1 and line.startswith(_BOM):
                        line = line[len(_BOM) :]
                    if not line or line.isspace():
                        continue
                try:
                    event = parse_line(line, name, number)
                except TraceFormatError as exc:
                    yield exc.problem if complete else cut_short(exc.problem, line)
                    continue
            kind = event["event_type"]
            if kind not in KNOWN_EVENT_TYPES and kind not in unknown:
                unknown.add(kind)
                yield TraceProblem(
                    name, number, f"unknown event type {kind!r} (kept and shown; "
                    "later lines of this type are not reported again)",
                    field="event_type", severity="warning",
                )
            version = event.get("v")
            if version is not None and version != FORMAT_VERSION:
                if version < 1:
                    yield TraceProblem(name, number, f"must be 1 or more, got {version}",
                                       field="v")
                    continue
                if not newer:
                    newer = True
                    yield TraceProblem(
                        name, number, f"written by format version {version}; this reader "
                        f"knows {FORMAT_VERSION} (fields it does not know are kept, not "
                        "interpreted)", field="v", severity="warning",
                    )
            append(LineEvent(number, event))
    except EOFError as exc:
        yield TraceProblem(name, number + 1, f"compressed stream ends early ({exc}); "
                           "the lines before are kept", severity="warning")
    except (gzip.BadGzipFile, zlib.error) as exc:
        yield TraceProblem(name, number + 1, f"compressed stream is corrupt: {exc}")
    except OSError as exc:
        yield TraceProblem(name, number + 1, f"cannot read: {exc}")


def read_trace(path: str | Path) -> ReadResult:
    """Read every event of one trace file, collecting problems instead of stopping."""
    name = str(path)
    try:
        stream = open_binary(path)
    except OSError as exc:
        return ReadResult(name, problems=[TraceProblem(name, 0, f"cannot read: {exc}")])
    with stream:
        return _read(stream, name)


def read_stream(stream: IO[bytes], name: str = "-") -> ReadResult:
    """Like :func:`read_trace`, for an already open binary stream (stdin); gzip is detected."""
    try:
        opened = gunzip_if_compressed(stream)
    except OSError as exc:
        return ReadResult(name, problems=[TraceProblem(name, 0, f"cannot read: {exc}")])
    return _read(opened, name)


def _read(stream: IO[bytes], name: str) -> ReadResult:
    result = ReadResult(name)
    with paused_gc():
        for problem in _scan(stream, name, result.events):
            if problem is None:
                continue
            result.problems.append(problem)
            if isinstance(problem, CutShortLine):
                result.cut_short = problem.raw
    return result


def iter_events(
    paths: Iterable[str | Path],
    on_problem: Callable[[TraceProblem], None] | None = None,
) -> Iterator[tuple[str, LineEvent]]:
    """Yield good events of many files lazily (for tools that stream big logs).

    Bad lines and unreadable files are skipped; ``on_problem`` hears about
    each one (``extract-traces`` counts them), so nothing is lost silently.
    """
    for path in paths:
        name = str(path)
        try:
            stream = open_binary(path)
        except OSError as exc:
            if on_problem is not None:
                on_problem(TraceProblem(name, 0, f"cannot read: {exc}"))
            continue
        buffer: list[LineEvent] = []
        with stream:
            for problem in _scan(stream, name, buffer):
                for item in buffer:
                    yield name, item
                buffer.clear()
                if problem is not None and on_problem is not None:
                    on_problem(problem)
            for item in buffer:
                yield name, item
