"""One extraction, start to finish: inputs, selection, judging, output, report.

The command line is a thin layer over :func:`extract`; tests and other tools
can call it directly.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from pytest_replay.extract.byid import ById
from pytest_replay.extract.criteria import Criteria
from pytest_replay.extract.facts import Line, judge
from pytest_replay.extract.general import General
from pytest_replay.extract.output import Render, Written, to_directory, to_file, to_stream
from pytest_replay.extract.problems import Problems, StrictError, line_numbers, located
from pytest_replay.extract.scan import Scanner
from pytest_replay.extract.segments import iter_segments, position
from pytest_replay.extract.sources import Source, Sources, resolve, stream_errors
from pytest_replay.extract.spool import Spool
from pytest_replay.format.reader import parse_line
from pytest_replay.redaction import Redactor, Rules


@dataclass
class Options:
    """Everything one run needs; the command line fills it."""

    inputs: list[str]
    criteria: Criteria = field(default_factory=Criteria)
    output: Path | None = None
    split_dir: Path | None = None
    redact: bool = True
    rules: Rules = field(default_factory=Rules)
    strict: bool = False
    force: bool = False
    stdin: IO[bytes] | None = None
    stdout: IO[bytes] | None = None


@dataclass
class Report:
    """What a run read, chose, wrote and skipped."""

    sources: list[Source] = field(default_factory=list)
    problems: Problems = field(default_factory=Problems)
    written: list[Written] = field(default_factory=list)
    redactor: Redactor | None = None
    candidates: int = 0
    bytes_read: int = 0
    log_bytes: int = 0
    passes: int = 0
    lines_parsed: int = 0
    seconds: float = 0.0
    missing_ids: list[str] = field(default_factory=list)

    @property
    def events(self) -> int:
        """Events written over all requests."""
        return sum(record.events for record in self.written)


def extract(options: Options) -> Report:
    """Run one extraction; raises InputError, OutputError, StrictError, RuleError."""
    started = time.perf_counter()
    report = Report(problems=Problems(strict=options.strict))
    with Sources() as sources:
        resolve(options.inputs, options.stdin, sources)
        report.sources = list(sources)
        try:
            _run(options, report)
        except StrictError as exc:
            lines = line_numbers(report.sources, [exc.problem.position])
            exc.location = located(report.sources, exc.problem, lines)
            raise
    report.seconds = time.perf_counter() - started
    return report


def _run(options: Options, report: Report) -> None:
    if options.strict:
        validate(report.sources, report.problems)
    with Spool() as spool:
        scanner = Scanner(report.sources, report.problems)
        roots, undecided, found = _select(options.criteria, scanner, spool)
        report.candidates = len(roots)
        named = options.criteria.correlation_ids or options.criteria.trace_ids
        report.missing_ids = [value for value in named if value not in found]
        chosen = _judged(options.criteria, spool, roots, undecided)
        if chosen:
            report.redactor = Redactor(options.rules) if options.redact else None
            render = Render(spool, report.redactor)
            _write(options, chosen, render)
            report.written = render.written
        report.bytes_read = scanner.bytes_read
        report.log_bytes = scanner.log_bytes
        report.passes = scanner.passes
        report.lines_parsed = scanner.lines_parsed


def _select(criteria: Criteria, scanner: Scanner, spool: Spool
            ) -> tuple[list[str], set[str], set[str]]:
    """Candidate roots in log order, those still to judge, and the ids some line named."""
    if criteria.by_id:
        selection = ById(scanner, spool, criteria)
        roots = selection.run()
        # A request found through an id holds it, so ids alone need no judging.
        return roots, set() if criteria.only_ids else set(roots), selection.found_ids
    general = General(scanner, spool, criteria, scanner.problems)
    roots = general.run()
    return roots, general.undecided, set()


def _judged(criteria: Criteria, spool: Spool, roots: list[str], undecided: set[str]
            ) -> list[str]:
    chosen: list[str] = []
    for root in roots:
        if criteria.limit is not None and len(chosen) >= criteria.limit:
            break
        if root in undecided:
            lines: list[Line] = [(where, raw, parse_line(raw, "<spool>", 0))
                                 for where, raw in spool.lines(root)]
            if not judge(criteria, root, lines):
                continue
        chosen.append(root)
    return chosen


def _write(options: Options, roots: list[str], render: Render) -> None:
    if options.split_dir is not None:
        to_directory(options.split_dir, roots, render, force=options.force)
    elif options.output is not None:
        to_file(options.output, roots, render)
    else:
        to_stream(options.stdout or sys.stdout.buffer, roots, render)


def validate(sources: list[Source], problems: Problems) -> None:
    """Parse every line of every source (``--strict``): the first bad one raises."""
    errors = stream_errors()
    for index, source in enumerate(sources):
        reached = 0
        try:
            for segment in iter_segments(
                source, index, on_long_line=lambda where: problems.add("too_long", where)
            ):
                reached = segment.base + segment.end
                for first, raw in segment.lines():
                    problems.parse(raw, segment.position(first))
        except errors as exc:
            problems.add("corrupt", position(index, reached),
                         f"cannot read past this point: {type(exc).__name__}: {exc}")
