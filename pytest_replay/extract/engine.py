"""One extraction, start to finish: inputs, selection, judging, output, report.

The command line is a thin layer over :func:`extract`; tests and other tools
can call it directly.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from pytest_replay.extract.byid import ById
from pytest_replay.extract.criteria import Criteria
from pytest_replay.extract.facts import Line, judge
from pytest_replay.extract.output import Render, Written, to_directory, to_file, to_stream
from pytest_replay.extract.parallel import SPLIT_MIN_BYTES, workers_from_env
from pytest_replay.extract.problems import Problems, StrictError, line_numbers, located
from pytest_replay.extract.scan import Scanner
from pytest_replay.extract.segments import iter_segments, position
from pytest_replay.extract.sources import Source, Sources, resolve, stream_errors
from pytest_replay.extract.spool import Spool
from pytest_replay.extract.store import Budget, RootList, Store
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
    budget: Budget | None = None
    """Memory budget; None reads ``TELEMETRY_REPLAY_EXTRACT_MEMORY_MB``."""
    workers: int | None = None
    """Processes a scan may use; None reads ``TELEMETRY_REPLAY_EXTRACT_WORKERS`` (default 2)."""
    split_min: int = SPLIT_MIN_BYTES
    """A pass over fewer bytes than this stays in one process."""


@dataclass
class Report:
    """What a run read, chose, wrote and skipped."""

    sources: list[Source] = field(default_factory=list)
    problems: Problems = field(default_factory=Problems)
    written: list[Written] = field(default_factory=list)
    """The first requests written (enough to list them in the summary)."""
    requests: int = 0
    events: int = 0
    redactor: Redactor | None = None
    candidates: int = 0
    """Requests chosen (found and judged), before the output."""
    bytes_read: int = 0
    log_bytes: int = 0
    passes: int = 0
    split_passes: int = 0
    lines_parsed: int = 0
    seconds: float = 0.0
    missing_ids: list[str] = field(default_factory=list)


def extract(options: Options) -> Report:
    """Run one extraction.

    Raises InputError, OutputError, StrictError, RuleError, and (from the
    environment) BudgetError or WorkersError.
    """
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
    budget = options.budget or Budget.from_env()
    with Store(budget) as store:
        spool = Spool(store)
        workers = options.workers if options.workers is not None else workers_from_env()
        scanner = Scanner(report.sources, report.problems, workers=workers,
                          split_min=options.split_min)
        found, candidates = _select(options.criteria, scanner, spool, store)
        named = options.criteria.correlation_ids or options.criteria.trace_ids
        report.missing_ids = [value for value in named if value not in found]
        chosen = _judged(options.criteria, spool, candidates, RootList(store, "chosen"))
        report.candidates = len(chosen)
        if chosen:
            report.redactor = Redactor(options.rules) if options.redact else None
            render = Render(spool, report.redactor)
            _write(options, chosen, render)
            report.written = render.written
            report.requests = render.requests
            report.events = render.events
        report.bytes_read = scanner.bytes_read
        report.log_bytes = scanner.log_bytes
        report.passes = scanner.passes
        report.split_passes = scanner.split_passes
        report.lines_parsed = scanner.lines_parsed


def _select(criteria: Criteria, scanner: Scanner, spool: Spool, store: Store
            ) -> tuple[set[str], Iterable[tuple[str, bool]]]:
    """The ids some line named, and the candidate roots in log order (with: still to judge)."""
    if criteria.by_id:
        selection = ById(scanner, spool, criteria, store.budget)
        roots = selection.run()
        # A request found through an id holds it, so ids alone need no judging.
        judge_them = not criteria.only_ids
        return selection.found_ids, [(root, judge_them) for root in roots]
    from pytest_replay.extract.general import General  # the id path never needs SQL joins

    return set(), General(scanner, spool, store, criteria, scanner.problems).run()


def _judged(criteria: Criteria, spool: Spool, candidates: Iterable[tuple[str, bool]],
            chosen: RootList) -> RootList:
    for root, undecided in candidates:
        if criteria.limit is not None and len(chosen) >= criteria.limit:
            break
        if undecided:
            lines: list[Line] = [(where, raw, parse_line(raw, "<spool>", 0))
                                 for where, raw in spool.lines(root)]
            if not judge(criteria, root, lines):
                continue
        chosen.append(root)
    return chosen


def _write(options: Options, roots: RootList, render: Render) -> None:
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
