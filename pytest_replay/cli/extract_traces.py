"""``extract-traces``: cut whole requests out of production logs, redacted, ready for traces/.

Exit status: 0 when at least one request was written, 1 when none matched,
2 for a usage error, an input or output that cannot be used, a bad
configuration, or an unusable line under ``--strict``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from pytest_replay.extract.criteria import Criteria, Status, compile_pattern
from pytest_replay.extract.engine import Options, extract
from pytest_replay.extract.output import OutputError
from pytest_replay.extract.parallel import workers_from_env
from pytest_replay.extract.problems import StrictError
from pytest_replay.extract.sources import InputError
from pytest_replay.extract.store import Budget
from pytest_replay.extract.summary import summary
from pytest_replay.extract.timespec import (
    TimeSpecError,
    parse_duration,
    parse_instant,
    parse_range,
)
from pytest_replay.inifile import ConfigError, as_lines, read_ini
from pytest_replay.redaction import RuleError, Rules

PROG: Final = "extract-traces"
EXIT_WRITTEN: Final = 0
EXIT_NOTHING: Final = 1
EXIT_ERROR: Final = 2
EXIT_PIPE: Final = 141
HOUR_NS: Final = 3_600_000_000_000

EPILOG: Final = """\
examples:
  extract-traces production.log --correlation-id req_abc123 --split-dir traces/
  extract-traces logs/ --error --last-hour --limit 10 -o errors.jsonl
  extract-traces a.log.gz b.log.zst --trace-id abc123 > distributed_trace.jsonl
  zcat app.log.gz | extract-traces --user-id 12345 --time-range "2025-10-31 02:00-03:00"

Redaction is on unless --no-redact is given, whatever the output.
Exit status: 0 written, 1 nothing matched, 2 error. See docs/extract-traces.md.
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (kept separate so the docs and tests can inspect it)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Extract whole requests (their complete call trees) from production "
                    "telemetry logs, with personal data redacted.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("logs", nargs="*", metavar="LOG",
                        help="log files, directories (searched for *.jsonl, *.log, *.gz, "
                             "*.zst), globs, or '-' for stdin (the default when piped)")
    pick = parser.add_argument_group("selection (filters combine with AND; a repeated "
                                     "filter matches any of its values)")
    pick.add_argument("--correlation-id", action="append", default=[], metavar="ID",
                      help="the request holding this correlation id (any of its frames)")
    pick.add_argument("--trace-id", action="append", default=[], metavar="ID",
                      help="every request of this distributed trace, across services")
    pick.add_argument("--pattern", metavar="REGEX",
                      help="requests with a line matching REGEX (Python syntax, raw line)")
    pick.add_argument("--error", action="store_true",
                      help="requests with any error event (caught or not)")
    pick.add_argument("--status", choices=("error", "ok", "success"),
                      help="error: the request ended in an error (an incident); "
                           "ok/success: it did not")
    pick.add_argument("--last-hour", action="store_true",
                      help="requests started in the hour up to --now")
    pick.add_argument("--since", metavar="WHEN",
                      help="requests started at or after WHEN (2025-10-31T02:00, '... +02:00', "
                           "or a duration ago: 2h)")
    pick.add_argument("--until", metavar="WHEN", help="requests started before WHEN")
    pick.add_argument("--time-range", metavar="RANGE",
                      help="'2025-10-31 02:00-03:00' (UTC unless a zone follows)")
    pick.add_argument("--now", metavar="WHEN",
                      help="the time --last-hour and relative times count from (default: now)")
    pick.add_argument("--min-duration", metavar="DURATION",
                      help="requests that took at least DURATION (5s, 250ms, 2m)")
    pick.add_argument("--user-id", action="append", default=[], metavar="ID",
                      help="requests of this user (context user_id, or the root's user_id "
                           "argument)")
    pick.add_argument("--variant", action="append", default=[], metavar="ARM",
                      help="requests of this A/B arm (context variant or experiment_variant)")
    pick.add_argument("--service", action="append", default=[], metavar="NAME",
                      help="requests with an event from this service")
    pick.add_argument("--function", action="append", default=[], metavar="NAME",
                      help="requests that called this function (name, qualname or "
                           "module.qualname)")
    pick.add_argument("--limit", type=_positive, metavar="N",
                      help="the first N matching requests, in log order")
    out = parser.add_argument_group("output (default: stdout)")
    where = out.add_mutually_exclusive_group()
    where.add_argument("-o", "--output", type=Path, metavar="FILE",
                       help="write every request into FILE (atomically)")
    where.add_argument("--split-dir", type=Path, metavar="DIR",
                       help="one file per request: DIR/incident_<id>.jsonl")
    out.add_argument("--force", action="store_true",
                     help="let --split-dir replace files that exist")
    redact = out.add_mutually_exclusive_group()
    redact.add_argument("--redact-pii", dest="redact", action="store_true", default=True,
                        help="replace personal data with consistent tokens (the default)")
    redact.add_argument("--no-redact", dest="redact", action="store_false",
                        help="write values exactly as logged")
    out.add_argument("--rootdir", type=Path, metavar="DIR",
                     help="where to look for pytest configuration (replay_redact_keys, "
                          "replay_redact_patterns); default: the current directory")
    out.add_argument("--strict", action="store_true",
                     help="parse every line and stop at the first unusable one (exit 2)")
    out.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def criteria_from(args: argparse.Namespace) -> Criteria:
    """Turn parsed options into :class:`Criteria`; raises TimeSpecError or ValueError."""
    windows = [name for name in ("last_hour", "since", "time_range") if getattr(args, name)]
    if len(windows) > 1:
        raise ValueError("give only one of --last-hour, --since and --time-range")
    if args.time_range and args.until:
        raise ValueError("--time-range already says when the window ends; drop --until")
    now = parse_instant(args.now, 0) if args.now else time.time_ns()
    since = until = None
    if args.last_hour:
        since, until = now - HOUR_NS, now
    if args.since:
        since = parse_instant(args.since, now)
    if args.until:
        until = parse_instant(args.until, now)
    if args.time_range:
        since, until = parse_range(args.time_range)
    status: Status | None = None
    if args.status is not None:
        status = "error" if args.status == "error" else "ok"
    try:
        pattern = compile_pattern(args.pattern) if args.pattern is not None else None
    except Exception as exc:  # re.error, and anything else a bad pattern raises
        raise ValueError(f"--pattern {args.pattern!r} is not a valid regular expression: "
                         f"{exc}") from None
    return Criteria(
        correlation_ids=tuple(args.correlation_id),
        trace_ids=tuple(args.trace_id),
        pattern=pattern,
        error=args.error,
        status=status,
        since_ns=since,
        until_ns=until,
        min_duration_ns=parse_duration(args.min_duration) if args.min_duration else None,
        user_ids=tuple(args.user_id),
        variants=tuple(args.variant),
        services=tuple(args.service),
        functions=tuple(args.function),
        limit=args.limit,
    )


def rules_from(start: Path) -> Rules:
    """Redaction rules from the pytest configuration that applies to ``start``."""
    settings = read_ini(start)
    return Rules(extra_keys=as_lines(settings.get("replay_redact_keys")),
                 patterns=as_lines(settings.get("replay_redact_patterns")))


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logs: list[str] = list(args.logs)
    if not logs:
        if sys.stdin is None or sys.stdin.isatty():
            parser.error("no input: give LOG files or directories, or pipe a log in")
        logs = ["-"]
    try:
        criteria = criteria_from(args)
        rules = rules_from(args.rootdir or Path.cwd())
        budget = Budget.from_env()  # BudgetError and WorkersError are ValueErrors too
        workers = workers_from_env()
    except (ValueError, ConfigError) as exc:  # TimeSpecError and RuleError are ValueErrors
        parser.error(str(exc))
    options = Options(
        inputs=logs, criteria=criteria, output=args.output, split_dir=args.split_dir,
        redact=args.redact, rules=rules, strict=args.strict, force=args.force,
        stdin=sys.stdin.buffer if sys.stdin is not None else None,
        stdout=sys.stdout.buffer, budget=budget, workers=workers,
    )
    return run(options, quiet=args.quiet)


def run(options: Options, *, quiet: bool = False) -> int:
    """Extract and report; returns the exit status."""
    try:
        report = extract(options)
    except StrictError as exc:
        _error(f"--strict: {exc.location}")
        return EXIT_ERROR
    except (InputError, OutputError, RuleError, TimeSpecError) as exc:
        _error(str(exc))
        return EXIT_ERROR
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_PIPE
    except KeyboardInterrupt:
        _error("interrupted; no output file was left half-written")
        return 130
    if not quiet:
        for line in summary(report, options.criteria):
            print(line, file=sys.stderr)
    return EXIT_WRITTEN if report.requests else EXIT_NOTHING


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


def _silence_stdout() -> None:
    # Python would print a second BrokenPipeError when it flushes stdout at exit.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":
    raise SystemExit(main())
