"""Read a source in large blocks cut at line boundaries, without splitting lines.

Scanning works on whole blocks (``bytes.find`` and compiled regular
expressions run at memory speed over a megabyte), so nothing here looks at a
line unless asked. A line is identified by its *position*: the source index
and the byte offset of its first byte packed into one int, which orders lines
across all sources the way they were given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Final

from pytest_replay.extract.sources import Source

CHUNK_SIZE: Final = 1024 * 1024
MAX_LINE_BYTES: Final = 64 * 1024 * 1024
POSITION_SHIFT: Final = 40
_OFFSET_MASK: Final = (1 << POSITION_SHIFT) - 1
BOM: Final = b"\xef\xbb\xbf"

LongLine = Callable[[int], None]
"""Called with the position of a line that is over the length cap (and skipped)."""


def position(source_index: int, offset: int) -> int:
    """Pack a source index and a byte offset into one sortable int."""
    return (source_index << POSITION_SHIFT) | offset


def split_position(value: int) -> tuple[int, int]:
    """``(source index, byte offset)`` of a packed position."""
    return value >> POSITION_SHIFT, value & _OFFSET_MASK


@dataclass
class Segment:
    """Whole lines ``data[start:end]`` of one source; ``base`` is the offset of ``data[0]``."""

    data: bytes
    start: int
    end: int
    base: int
    source: int

    def position(self, index: int) -> int:
        """The packed position of ``data[index]``."""
        return ((self.source) << POSITION_SHIFT) | (self.base + index)

    def line_bounds(self, index: int) -> tuple[int, int]:
        """``(first, end)`` of the line holding ``data[index]``, newline excluded."""
        data = self.data
        first = data.rfind(b"\n", self.start, index) + 1
        if first <= 0:
            first = self.start
        end = data.find(b"\n", index, self.end)
        if end < 0:
            end = self.end
        return first, end

    def line(self, first: int, end: int) -> bytes:
        """The clean bytes of a line: no carriage return, no byte-order mark."""
        raw = self.data[first:end]
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if raw.startswith(BOM):
            raw = raw[len(BOM) :]
        return raw

    def lines(self) -> Iterator[tuple[int, bytes]]:
        """Every non-blank line as ``(index of its first byte, clean bytes)``."""
        data, index, end = self.data, self.start, self.end
        while index < end:
            stop = data.find(b"\n", index, end)
            if stop < 0:
                stop = end
            raw = self.line(index, stop)
            if raw.strip():
                yield index, raw
            index = stop + 1


def iter_segments(
    source: Source,
    source_index: int,
    *,
    start: int = 0,
    stop: int | None = None,
    chunk_size: int = CHUNK_SIZE,
    on_long_line: LongLine | None = None,
    max_line: int = MAX_LINE_BYTES,
) -> Iterator[Segment]:
    """Blocks of whole lines of ``source`` whose first byte lies in ``[start, stop)``.

    ``start`` and ``stop`` must be line starts (positions found by a scan).
    A line longer than ``max_line`` is skipped, never held whole, and
    reported through ``on_long_line``.
    """
    reader = _Reader(source, source_index, chunk_size, on_long_line, max_line)
    for segment in reader.segments(start):
        if stop is not None:
            if segment.base + segment.start >= stop:
                return
            if segment.base + segment.end > stop:
                segment.end = stop - segment.base
                yield segment
                return
        yield segment


class _Reader:
    def __init__(self, source: Source, index: int, chunk_size: int,
                 on_long_line: LongLine | None, max_line: int) -> None:
        self.max_line = max_line
        self.source = source
        self.index = index
        self.chunk_size = chunk_size
        self.on_long_line = on_long_line

    def segments(self, start: int) -> Iterator[Segment]:
        with self.source.open() as stream:
            offset = self._skip_to(stream, start)
            parts: list[bytes] = []  # the unfinished last line, in pieces
            parts_base = offset
            parts_size = 0
            skipping = False  # inside an over-long line: drop bytes up to its newline
            while True:
                block = stream.read(self.chunk_size)
                if not block:
                    break
                block_base = offset
                offset += len(block)
                first = 0
                if block_base == 0 and block.startswith(BOM):
                    first = len(BOM)
                if skipping or parts:
                    newline = block.find(b"\n", first)
                    if newline < 0:
                        if not skipping:
                            parts.append(block[first:])
                            parts_size += len(block) - first
                            if parts_size > self.max_line:
                                self._too_long(parts_base)
                                parts, parts_size, skipping = [], 0, True
                        continue
                    if not skipping:
                        parts.append(block[first : newline + 1])
                        piece = b"".join(parts)
                        yield Segment(piece, 0, len(piece), parts_base, self.index)
                    parts, parts_size, skipping = [], 0, False
                    first = newline + 1
                last = block.rfind(b"\n", first)
                if last >= first:
                    yield Segment(block, first, last + 1, block_base, self.index)
                    first = last + 1
                if first < len(block):
                    parts = [block[first:]]
                    parts_size = len(block) - first
                    parts_base = block_base + first
                    if parts_size > self.max_line:
                        self._too_long(parts_base)
                        parts, parts_size, skipping = [], 0, True
            if parts and not skipping:
                piece = b"".join(parts)
                yield Segment(piece, 0, len(piece), parts_base, self.index)

    def _skip_to(self, stream: IO[bytes], start: int) -> int:
        if start <= 0:
            return 0
        if self.source.seekable:
            stream.seek(start)
            return start
        left = start
        while left > 0:
            block = stream.read(min(left, self.chunk_size))
            if not block:
                break
            left -= len(block)
        return start - left

    def _too_long(self, base: int) -> None:
        if self.on_long_line is not None:
            self.on_long_line(position(self.index, base))
