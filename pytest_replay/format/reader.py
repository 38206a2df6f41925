"""Stream trace events from JSONL files (plain or gzip), a chunk of lines at a time.

Nothing here reads a whole file into memory, and no line is held past a cap.
Every problem names the file, the line, the column where known, and the
field; a problem in one line never loses the other lines. A last line cut
short (a crash mid-write) is kept aside with a warning rather than failing
the trace. The rules are written down in docs/trace-format.md.

Blocks of lines go through :mod:`pytest_replay.format.bulk` first; a block
it does not take is read line by line with :class:`LineParser`, which says
what is wrong with each line.
"""

from __future__ import annotations

import contextlib
import gc
import gzip
import io
import os
import stat
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final, cast

from pytest_replay.format import lines as _lines
from pytest_replay.format.bulk import Seen, block_events
from pytest_replay.format.events import FORMAT_VERSION, Event
from pytest_replay.format.line_event import LineEvent
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
from pytest_replay.format.native import NATIVE_REGION, ids_for_size

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
_CHUNK: Final = 64 * 1024
"""Bytes asked of the stream at a time: a block of a few hundred lines, small enough
that their decoded events are still in the CPU cache when they are checked."""


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

    Each event and frame is a container object that lives as long as the
    trace. The collector would re-walk all of them every time its young
    generation fills, which doubles the read time; nothing built here is
    garbage that needs it. On the way out, what is young (the trace, mostly)
    is filed straight into the oldest generation with ``freeze`` and
    ``unfreeze``, both a constant-time list splice: otherwise the first
    collection after the read walks every new object once more, which costs
    a sixth of reading and modelling. Young garbage filed with it is still
    collected, by the next full collection. Skipped when the program froze objects itself
    (``unfreeze`` would thaw them too). The enabled state is restored.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            if not gc.get_freeze_count():
                gc.freeze()
                gc.unfreeze()
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


class _Scan:
    """What one pass over a stream has seen and said, and where its events go."""

    def __init__(self, name: str, events: list[LineEvent],
                 decoded: dict[int, Event] | None) -> None:
        self.name = name
        self.events = events
        self.decoded = decoded
        self.seen = Seen()
        self.parse = LineParser(self.seen.shapes)
        self.pending: list[TraceProblem] = []
        """Problems found by :meth:`region`, to be yielded in file order."""

    def block(self, lines: list[bytes], first: int, bulk: bool = True
              ) -> Iterator[TraceProblem]:
        """Keep the events of complete ``lines`` (numbered from ``first``); yield problems."""
        if bulk:
            made = block_events(lines, first, self.seen, self.decoded)
            if made is not None:
                self.events += made
                return
        for number, line in enumerate(lines, first):
            yield from self.line(line, number, complete=True)

    def region(self, data: bytes, start: int, stop: int, first: int) -> int:
        """Keep the events of the lines of ``data[start:stop]`` (numbered from ``first``);
        return how many lines that was. Problems go to ``self.pending``.

        The C reader takes the region where it can (the events then keep ``data``
        itself, no copy of each line); else it is split and read as a block.
        """
        assert NATIVE_REGION is not None and self.decoded is not None
        seen = self.seen
        made = NATIVE_REGION(data, start, stop, first, seen.kinds, seen.versions, seen.ids,
                             self.decoded)
        if made is not None:
            self.events += made
            return len(made)  # every line is an event: C declines blank ones
        lines = data[start:stop].split(b"\n")
        self.pending += self.block(lines, first)
        return len(lines)

    def line(self, raw: bytes, number: int, complete: bool) -> Iterator[TraceProblem]:
        """Keep the event of one line, or yield what is wrong with it.

        An unknown event type and a newer format version are reported once.
        """
        line = raw.rstrip(b"\r\n")
        if not line or line.isspace():
            return
        try:
            event = self.parse(line, self.name, number)
        except TraceFormatError as exc:
            yield exc.problem if complete else cut_short(exc.problem, line)
            return
        seen = self.seen
        kind = event["event_type"]
        if kind not in seen.kinds:
            seen.kinds.add(kind)
            yield TraceProblem(
                self.name, number, f"unknown event type {kind!r} (kept and shown; "
                "later lines of this type are not reported again)",
                field="event_type", severity="warning",
            )
        version = event.get("v")
        if version not in seen.versions:  # above FORMAT_VERSION: the parser refuses below 1
            if len(seen.versions) == 2:
                yield TraceProblem(
                    self.name, number, f"written by format version {version}; this reader "
                    f"knows {FORMAT_VERSION} (fields it does not know are kept, not "
                    "interpreted)", field="v", severity="warning",
                )
            seen.versions.add(version)
        self.events.append(LineEvent(number, event))


def _size_of(stream: IO[bytes]) -> int | None:
    """The size of the plain file under ``stream``, or None (a pipe, a gzip stream)."""
    if isinstance(stream, gzip.GzipFile):
        return None  # its file's size is the compressed one
    try:
        info = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):  # no file under it, or closed
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def _without_bom(first_line: bytes) -> bytes:
    """The file's first line without the UTF-8 byte order mark some editors write."""
    return first_line[len(_BOM) :] if first_line.startswith(_BOM) else first_line


def _scan(stream: IO[bytes], name: str, events: list[LineEvent],
          decoded: dict[int, Event] | None) -> Iterator[TraceProblem | None]:
    """Append every good event of ``stream`` to ``events``; yield every problem.

    Problems come in file order relative to the events appended before them.
    ``None`` is yielded after each block of lines so a streaming consumer can
    hand on and clear ``events``. ``stream`` must already be decompressed
    (see :func:`gunzip_if_compressed`). ``decoded``: see :func:`block_events`.
    The stream is read a chunk at a time (``read1``, so a gzip stream that
    ends early loses no more than before); a line still unfinished at the
    end of a chunk waits, in pieces, for the next.
    """
    scan = _Scan(name, events, decoded)
    if NATIVE_REGION is not None and decoded is not None:
        scan.seen.ids = ids_for_size(_size_of(stream))
    read: Callable[[int], bytes] = getattr(stream, "read1", stream.read)
    cap = _lines.MAX_LINE_BYTES  # read at call time, so tests can lower the cap
    pieces: list[bytes] = []  # the unfinished line
    held = 0  # its length so far
    skipping = False  # inside a line over the cap, which is dropped as it comes
    number = 0  # lines finished so far
    native = NATIVE_REGION is not None and decoded is not None
    try:
        while chunk := read(_CHUNK):
            if native and not skipping and held + len(chunk) <= cap:
                # The C reader's way: the complete lines stay in the chunk they came in.
                end = chunk.rfind(b"\n")
                if end < 0:
                    pieces.append(chunk)
                    held += len(chunk)
                    continue
                start = 0
                if pieces:  # the line begun in earlier chunks ends here
                    start = chunk.find(b"\n") + 1
                    pieces.append(chunk[: start - 1])
                    head = b"".join(pieces)
                    pieces.clear()
                    if number == 0:
                        head = _without_bom(head)
                    number += scan.region(head, 0, len(head), number + 1)
                elif number == 0 and chunk.startswith(_BOM):
                    start = len(_BOM)
                if start <= end:
                    number += scan.region(chunk, start, end, number + 1)
                if scan.pending:
                    yield from scan.pending
                    scan.pending.clear()
                held = 0
                yield None
                tail = chunk[end + 1 :]
                if tail:
                    pieces.append(tail)
                    held = len(tail)
                continue
            if skipping:
                end = chunk.find(b"\n")
                if end < 0:
                    continue
                chunk = chunk[end + 1 :]
                number += 1
                skipping = False
            lines = chunk.split(b"\n")
            tail = lines.pop()
            if lines:
                longest = held + len(chunk)  # an upper bound, cheap to know
                if pieces:
                    pieces.append(lines[0])
                    lines[0] = b"".join(pieces)
                    pieces.clear()
                if number == 0:
                    lines[0] = _without_bom(lines[0])
                bulk = longest <= cap or max(map(len, lines)) <= cap
                yield from scan.block(lines, number + 1, bulk)
                number += len(lines)
                held = 0
                yield None
            if tail:
                pieces.append(tail)
                held += len(tail)
                if held > cap:
                    yield TraceProblem(name, number + 1,
                                       f"line is longer than the {cap}-byte cap")
                    pieces.clear()
                    held = 0
                    skipping = True
        if pieces:
            last = b"".join(pieces)
            if number == 0:
                last = _without_bom(last)
            yield from scan.line(last, number + 1, complete=False)
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
        for problem in _scan(stream, name, result.events, {}):
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
            for problem in _scan(stream, name, buffer, None):
                for item in buffer:
                    yield name, item
                buffer.clear()
                if problem is not None and on_problem is not None:
                    on_problem(problem)
            for item in buffer:
                yield name, item
