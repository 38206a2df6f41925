"""One pass over the sources: find candidate lines with a matcher, parse only those.

A pass may cover a region (from one line position to another), so a
follow-up pass re-reads only the part of the logs it has to. When the caller
learns new ids from a line (the matcher grew), the current block is scanned
again, so ids learnt mid-block are not missed in the rest of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pytest_replay.extract.idmatch import Matcher
from pytest_replay.extract.problems import Problems
from pytest_replay.extract.segments import Segment, iter_segments, position, split_position
from pytest_replay.extract.sources import Source, stream_errors
from pytest_replay.format.events import Event


@dataclass
class Hit:
    """A parsed candidate line."""

    position: int
    raw: bytes
    event: Event


OnHit = Callable[[Hit], bool]
"""Handles one candidate line; returns True when the matcher learnt new ids."""


class Scanner:
    """Runs passes over the sources and keeps count of what they cost."""

    def __init__(self, sources: list[Source], problems: Problems) -> None:
        self.sources = sources
        self.problems = problems
        self.passes = 0
        self.bytes_read = 0
        self.log_bytes = 0
        """Bytes of the logs (decompressed), measured by the first full pass."""
        self.lines_parsed = 0
        self.errors = stream_errors()

    def run(self, matcher: Matcher, on_hit: OnHit, lo: int = 0, hi: int | None = None) -> None:
        """Scan lines whose position is in ``[lo, hi)``, handing candidates to ``on_hit``."""
        self.passes += 1
        before = self.bytes_read
        first_source, first_offset = split_position(lo)
        last_source, last_offset = split_position(hi) if hi is not None else (None, None)
        for index in range(first_source, len(self.sources)):
            if last_source is not None and index > last_source:
                break
            start = first_offset if index == first_source else 0
            stop = last_offset if index == last_source else None
            self._source(index, start, stop, matcher, on_hit)
        if lo == 0 and hi is None:
            self.log_bytes = max(self.log_bytes, self.bytes_read - before)

    def _source(self, index: int, start: int, stop: int | None, matcher: Matcher,
                on_hit: OnHit) -> None:
        source = self.sources[index]
        reached = start
        try:
            for segment in iter_segments(source, index, start=start, stop=stop,
                                         on_long_line=self._long_line):
                self.bytes_read += segment.end - segment.start
                reached = segment.base + segment.end
                self._segment(segment, matcher, on_hit)
        except self.errors as exc:
            self.problems.add("corrupt", position(index, reached),
                              f"cannot read past this point: {type(exc).__name__}: {exc}")

    def _long_line(self, where: int) -> None:
        self.problems.add("too_long", where)

    def _segment(self, segment: Segment, matcher: Matcher, on_hit: OnHit) -> None:
        done: set[int] = set()
        while True:
            grew = False
            line_end = -1
            for index in sorted(matcher.positions(segment.data, segment.start, segment.end)):
                if index < line_end:
                    continue
                first, line_end = segment.line_bounds(index)
                if first in done:
                    continue
                done.add(first)
                raw = segment.line(first, line_end)
                if not raw.strip():
                    continue
                where = segment.position(first)
                self.lines_parsed += 1
                event = self.problems.parse(raw, where)
                if event is not None and on_hit(Hit(where, raw, event)):
                    grew = True
            if not grew:
                return
