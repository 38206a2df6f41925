"""Scan two halves of the logs at once: a forked child reads the second half.

Finding ids runs at memory speed on one core, and ``bytes.find`` holds the
GIL, so threads would not help: a pass over a large region forks one child,
which scans the second half with the same matcher while this process scans
the first, and writes what it found (hit lines, unusable lines, counts) to a
temporary file this process replays afterwards, in log order. Nothing is
pickled: the child inherits its state from the fork, and its records are
plain bytes.

A child is used only when it is safe and worth it: on a platform with
``fork``, in a process with no other thread, not under ``--strict``, for a
region of at least :data:`SPLIT_MIN_BYTES`. If the child fails for any
reason, this process scans the second half itself.
"""

from __future__ import annotations

import contextlib
import os
import signal
import struct
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Final, cast

from pytest_replay.extract.problems import Kind, Problems
from pytest_replay.extract.segments import position, split_position
from pytest_replay.extract.sources import Source

WORKERS_ENV: Final = "TELEMETRY_REPLAY_EXTRACT_WORKERS"
SPLIT_MIN_BYTES: Final = 32 * 1024 * 1024
"""Below this, a fork costs more than it saves."""
_PROBE: Final = 64 * 1024
_HEAD: Final = struct.Struct("<cqI")

Region = tuple[int, int | None]
"""``[lo, hi)`` in line positions; ``hi`` None is the end of the logs."""


class WorkersError(ValueError):
    """A worker count that is not a whole number."""


def workers_from_env(environ: dict[str, str] | None = None) -> int:
    """``TELEMETRY_REPLAY_EXTRACT_WORKERS``, else 2 (or 1 on a single CPU)."""
    text = (os.environ if environ is None else environ).get(WORKERS_ENV, "").strip()
    if not text:
        return min(2, os.cpu_count() or 1)
    try:
        return max(1, int(text))
    except ValueError:
        raise WorkersError(f"{WORKERS_ENV}={text!r}: not a whole number") from None


def can_fork() -> bool:
    """Whether forking is safe here (a forked child of a threaded process may deadlock)."""
    return hasattr(os, "fork") and threading.active_count() == 1


def split(sources: list[Source], lo: int, hi: int | None, min_bytes: int) -> list[Region]:
    """``[lo, hi)`` as one region, or two of about equal size cut at a line start.

    Compressed logs cannot be entered in the middle: a cut that falls in one
    moves to its end.
    """
    pieces = list(_pieces(sources, lo, hi))
    total = sum(stop - start for _index, start, stop in pieces)
    if total < max(1, min_bytes):
        return [(lo, hi)]
    left = total // 2
    for index, start, stop in pieces:
        size = stop - start
        if left >= size:
            left -= size
            continue
        source = sources[index]
        cut = _line_start(source, start + left) if source.seekable else None
        if cut is None or cut >= stop:
            if index + 1 >= len(sources):
                return [(lo, hi)]  # the cut would leave nothing to the second half
            cut_position = position(index + 1, 0)
        else:
            cut_position = position(index, cut)
        if cut_position <= lo or (hi is not None and cut_position >= hi):
            return [(lo, hi)]
        return [(lo, cut_position), (cut_position, hi)]
    return [(lo, hi)]


def _pieces(sources: list[Source], lo: int, hi: int | None) -> Iterator[tuple[int, int, int]]:
    """``(source index, start, stop)`` byte ranges of the region (compressed: file sizes)."""
    first_source, first_offset = split_position(lo)
    last_source, last_offset = split_position(hi) if hi is not None else (len(sources), 0)
    for index in range(first_source, min(last_source + 1, len(sources))):
        start = first_offset if index == first_source else 0
        stop = last_offset if index == last_source else sources[index].size
        if stop > start:
            yield index, start, stop


def _line_start(source: Source, offset: int) -> int | None:
    """The first line start at or after ``offset`` in a plain file, or None at its end."""
    with open(source.path, "rb") as stream:
        stream.seek(max(0, offset - 1))
        at = max(0, offset - 1)
        while True:
            block = stream.read(_PROBE)
            if not block:
                return None
            newline = block.find(b"\n")
            if newline >= 0:
                return at + newline + 1
            at += len(block)


@dataclass
class Counts:
    """What the child's scan cost, added to this process's counts."""

    bytes_read: int = 0
    lines_parsed: int = 0


class Recorder(Problems):
    """The child's side: hit lines and unusable lines as records in a file."""

    def __init__(self, out: IO[bytes]) -> None:
        super().__init__()
        self.out = out

    def add(self, kind: Kind, position: int, message: str = "") -> None:
        """Record an unusable line for the parent to count."""
        payload = kind.encode() + b"\0" + message.encode("utf-8", "replace")
        self.out.write(_HEAD.pack(b"P", position, len(payload)) + payload)

    def hit(self, where: int, raw: bytes) -> None:
        """Record a candidate line."""
        self.out.write(_HEAD.pack(b"H", where, len(raw)) + raw)

    def finish(self, counts: Counts) -> None:
        """Record the child's counts: the last record."""
        self.out.write(_HEAD.pack(b"C", counts.bytes_read, counts.lines_parsed))


class Child:
    """A forked scan of one region; :meth:`replay` hands its findings over in order."""

    def __init__(self, scan: Callable[[Recorder, Counts], None]) -> None:
        self.out: IO[bytes] = tempfile.TemporaryFile(prefix="extract-traces-part-")  # noqa: SIM115
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - runs in the child, measured by its output
            status = 1
            try:
                recorder = Recorder(self.out)
                counts = Counts()
                scan(recorder, counts)
                recorder.finish(counts)
                self.out.flush()
                status = 0
            except KeyboardInterrupt:
                pass  # the parent was interrupted too, and says so
            except BaseException as exc:
                os.write(2, f"extract-traces: the second scanning process failed "
                            f"({type(exc).__name__}: {exc}); scanning its half again\n".encode())
            finally:
                os._exit(status)

    def join(self) -> bool:
        """Wait for the child; True when it finished its scan (its records are complete)."""
        if self.pid <= 0:
            return False
        _pid, status = os.waitpid(self.pid, 0)
        self.pid = 0
        return os.waitstatus_to_exitcode(status) == 0

    def stop(self) -> None:
        """End the child (this process is leaving early) and remove its file."""
        if self.pid > 0:
            with contextlib.suppress(ProcessLookupError):  # it had finished already
                os.kill(self.pid, signal.SIGTERM)
            os.waitpid(self.pid, 0)
            self.pid = 0
        self.out.close()

    def replay(self, problems: Problems, on_hit: Callable[[int, bytes], None]) -> Counts:
        """Hand the child's records over, in the order it wrote them."""
        self.out.seek(0)
        read = self.out.read
        while True:
            kind, value, size = _HEAD.unpack(read(_HEAD.size))
            if kind == b"C":
                return Counts(value, size)
            payload = read(size)
            if kind == b"H":
                on_hit(value, payload)
            else:
                name, _sep, message = payload.partition(b"\0")
                problems.add(cast(Kind, name.decode()), value, message.decode())
