"""One pass over the sources: find candidate lines with a matcher, parse only those.

A pass may cover a region (from one line position to another), so a
follow-up pass re-reads only the part of the logs it has to. A large region
is cut in two and the second half scanned by a forked child at the same time
(see :mod:`pytest_replay.extract.parallel`).

Two callbacks see the lines found, in log order:

- ``learn`` runs in whichever process scans: it may teach the matcher new
  ids from a line (a child call's entry), and then the current block is
  scanned again, so ids learnt mid-block are not missed in the rest of it;
- ``on_hit`` runs in this process, for every line found, in log order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pytest_replay.extract.idmatch import Matcher
from pytest_replay.extract.parallel import (
    SPLIT_MIN_BYTES,
    Child,
    Counts,
    Recorder,
    Region,
    can_fork,
    split,
)
from pytest_replay.extract.problems import Problems
from pytest_replay.extract.segments import Segment, iter_segments, position, split_position
from pytest_replay.extract.sources import Source, stream_errors
from pytest_replay.format.events import Event
from pytest_replay.format.reader import parse_line


@dataclass
class Hit:
    """A parsed candidate line."""

    position: int
    raw: bytes
    event: Event


OnHit = Callable[[Hit], None]
"""Handles one candidate line, in this process, in log order."""
Learn = Callable[[Hit], bool]
"""Teaches the matcher from one candidate line; True when it learnt new ids."""


class Scanner:
    """Runs passes over the sources and keeps count of what they cost."""

    def __init__(self, sources: list[Source], problems: Problems, *, workers: int = 1,
                 split_min: int = SPLIT_MIN_BYTES) -> None:
        self.sources = sources
        self.problems = problems
        self.workers = workers
        self.split_min = split_min
        self.passes = 0
        self.bytes_read = 0
        self.log_bytes = 0
        """Bytes of the logs (decompressed), measured by the first full pass."""
        self.lines_parsed = 0
        self.errors = stream_errors()
        self.split_passes = 0
        """Passes whose second half a forked child scanned."""
        self.last_regions: list[Region] = []
        """How the last pass was cut: a line learnt in one was looked for to its end only."""

    def run(self, matcher: Matcher, on_hit: OnHit, lo: int = 0, hi: int | None = None,
            learn: Learn | None = None) -> None:
        """Scan lines whose position is in ``[lo, hi)``, handing candidates to ``on_hit``."""
        self.passes += 1
        before = self.bytes_read
        regions = [(lo, hi)]
        if (self.workers > 1 and getattr(matcher, "parallel", True)
                and not self.problems.strict and can_fork()):
            regions = split(self.sources, lo, hi, self.split_min)
        self.last_regions = regions
        if len(regions) == 1:
            self._region(regions[0], matcher, on_hit, learn, self.problems, Counts())
        else:
            self._halves(regions, matcher, on_hit, learn)
        if lo == 0 and hi is None:
            self.log_bytes = max(self.log_bytes, self.bytes_read - before)

    def _halves(self, regions: list[Region], matcher: Matcher, on_hit: OnHit,
                learn: Learn | None) -> None:
        first, second = regions

        def child_scan(recorder: Recorder, counts: Counts) -> None:
            def record(hit: Hit) -> None:
                recorder.hit(hit.position, hit.raw)

            self._region(second, matcher, record, learn, recorder, counts)

        child = Child(child_scan)
        self.split_passes += 1
        try:
            self._region(first, matcher, on_hit, learn, self.problems, Counts())
            if not child.join():
                self._region(second, matcher, on_hit, learn, self.problems, Counts())
                return

            def replayed(where: int, raw: bytes) -> None:
                on_hit(Hit(where, raw, parse_line(raw, "", 0)))

            counts = child.replay(self.problems, replayed)
            self.bytes_read += counts.bytes_read
            self.lines_parsed += counts.lines_parsed
        finally:
            child.stop()

    def _region(self, region: Region, matcher: Matcher, on_hit: OnHit, learn: Learn | None,
                problems: Problems, counts: Counts) -> None:
        lo, hi = region
        first_source, first_offset = split_position(lo)
        last_source, last_offset = split_position(hi) if hi is not None else (None, None)
        for index in range(first_source, len(self.sources)):
            if last_source is not None and index > last_source:
                break
            start = first_offset if index == first_source else 0
            stop = last_offset if index == last_source else None
            if stop is not None and stop <= start:
                continue
            self._source(index, start, stop, matcher, on_hit, learn, problems, counts)
        if problems is self.problems:
            self.bytes_read += counts.bytes_read
            self.lines_parsed += counts.lines_parsed
            counts.bytes_read = counts.lines_parsed = 0

    def _source(self, index: int, start: int, stop: int | None, matcher: Matcher,
                on_hit: OnHit, learn: Learn | None, problems: Problems, counts: Counts) -> None:
        source = self.sources[index]
        reached = start

        def long_line(where: int) -> None:
            problems.add("too_long", where)

        try:
            for segment in iter_segments(source, index, start=start, stop=stop,
                                         on_long_line=long_line):
                counts.bytes_read += segment.end - segment.start
                reached = segment.base + segment.end
                self._segment(segment, matcher, on_hit, learn, problems, counts)
        except self.errors as exc:
            problems.add("corrupt", position(index, reached),
                         f"cannot read past this point: {type(exc).__name__}: {exc}")

    def _segment(self, segment: Segment, matcher: Matcher, on_hit: OnHit, learn: Learn | None,
                 problems: Problems, counts: Counts) -> None:
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
                counts.lines_parsed += 1
                event = problems.parse(raw, where)
                if event is None:
                    continue
                hit = Hit(where, raw, event)
                if learn is not None and learn(hit):
                    grew = True
                on_hit(hit)
            if not grew:
                return
