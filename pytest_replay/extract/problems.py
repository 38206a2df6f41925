"""Lines that cannot be used: classified, counted, skipped; or fatal under ``--strict``.

Only whole-line JSON objects count as events. A line from another logger,
JSON written after a log prefix (``2025-10-31 INFO {...}``), a line cut
short, invalid UTF-8 or a JSON value that is not a trace event is counted
under its kind and skipped; the summary names a few of them as
``file:line``. Each line is counted once however many passes read it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

import orjson

from pytest_replay.extract.segments import (
    MAX_LINE_BYTES,
    iter_segments,
    position,
    split_position,
)
from pytest_replay.extract.sources import Source, stream_errors
from pytest_replay.format.events import Event
from pytest_replay.format.reader import TraceFormatError, parse_line

Kind = Literal[
    "not_json", "prefixed", "truncated", "invalid_json", "invalid_utf8", "not_event",
    "too_long", "corrupt",
]

DESCRIPTIONS: Final[dict[str, str]] = {
    "not_json": "not JSON (another logger's line?)",
    "prefixed": "JSON after a log prefix (only whole-line JSON objects are read)",
    "truncated": "cut short",
    "invalid_json": "invalid JSON",
    "invalid_utf8": "invalid UTF-8",
    "not_event": "JSON but not a trace event",
    "too_long": f"longer than {MAX_LINE_BYTES // (1024 * 1024)} MiB",
    "corrupt": "compressed stream is corrupt",
}
EXAMPLES: Final = 5
SEEN_LIMIT: Final = 100_000
"""Positions remembered to count each unusable line once (about 6 MB); past it,
a line that two passes both find unusable may be counted twice."""


@dataclass(frozen=True)
class Problem:
    """One unusable line (or stream), where it is and why."""

    kind: Kind
    position: int
    message: str


class StrictError(Exception):
    """Raised under ``--strict`` at the first unusable line."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem
        self.location: str = problem.message
        """``file:line: message``, filled in by whoever knows the sources."""


class Problems:
    """Counts of unusable lines by kind, with the first few as examples."""

    def __init__(self, *, strict: bool = False) -> None:
        self.strict = strict
        self.counts: Counter[str] = Counter()
        self.examples: list[Problem] = []
        self._seen: set[int] = set()

    def add(self, kind: Kind, position: int, message: str = "") -> None:
        """Count one unusable line (once per position); raise under ``--strict``."""
        if position in self._seen:
            return
        if len(self._seen) < SEEN_LIMIT:
            self._seen.add(position)
        problem = Problem(kind, position, message or DESCRIPTIONS[kind])
        if self.strict:
            raise StrictError(problem)
        self.counts[kind] += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append(problem)

    @property
    def total(self) -> int:
        """How many lines were skipped."""
        return sum(self.counts.values())

    def parse(self, raw: bytes, position: int) -> Event | None:
        """The event on a line, or None after counting why it is unusable."""
        if not raw.startswith(b"{"):
            self.add(_not_an_object(raw), position)
            return None
        try:
            return parse_line(raw, "", 0)
        except TraceFormatError as exc:
            kind, message = classify(raw, exc)
            self.add(kind, position, message)
            return None


def _not_an_object(raw: bytes) -> Kind:
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "prefixed" if b'{"' in raw else "not_json"
    return "not_event"  # JSON, but an array, a string or a number


def classify(raw: bytes, exc: TraceFormatError) -> tuple[Kind, str]:
    """The kind of a line the reader refused, and its message."""
    problem = exc.problem
    if problem.field is not None:
        return "not_event", f"field '{problem.field}': {problem.message}"
    if "UTF-8" in problem.message:
        return "invalid_utf8", problem.message
    if not raw.rstrip().endswith(b"}"):
        return "truncated", f"cut short ({problem.message})"
    if problem.message.startswith("expected a JSON object"):
        return "not_event", problem.message
    return "invalid_json", problem.message


def line_numbers(sources: list[Source], positions: Iterable[int]) -> dict[int, int]:
    """1-based line numbers of line positions, by counting newlines (for messages only)."""
    wanted: dict[int, list[int]] = {}
    for value in sorted(set(positions)):
        index, offset = split_position(value)
        wanted.setdefault(index, []).append(offset)
    found: dict[int, int] = {}
    for index, offsets in wanted.items():
        lines_before = 0
        pending = iter(offsets)
        target = next(pending, None)
        try:
            for segment in iter_segments(sources[index], index):
                while target is not None and target < segment.base + segment.end:
                    relative = target - segment.base
                    count = segment.data.count(b"\n", segment.start,
                                               max(relative, segment.start))
                    found[position(index, target)] = lines_before + count + 1
                    target = next(pending, None)
                lines_before += segment.data.count(b"\n", segment.start, segment.end)
                if target is None:
                    break
        except stream_errors():
            pass  # a corrupt stream: the lines past the damage keep no number
        while target is not None:
            found[position(index, target)] = lines_before + 1
            target = next(pending, None)
    return found


def located(sources: list[Source], problem: Problem, lines: dict[int, int]) -> str:
    """``file:line: message`` for one problem."""
    index, _offset = split_position(problem.position)
    line = lines.get(problem.position)
    where = sources[index].name if line is None else f"{sources[index].name}:{line}"
    return f"{where}: {problem.message}"
