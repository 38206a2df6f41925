"""``replay-telemetry``: the incident explained in the terminal, then replayed against today's code.

Exit status: 0 when every root passes (or its incident is fixed), 1 when any
reproduces or diverges, 2 on usage or input errors. Built on the same engine
as the pytest plugin.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import orjson

from pytest_replay.cli._common import (
    EXIT_USAGE,
    UsageFailure,
    load_cli_config,
    load_traces,
)
from pytest_replay.cli.verdicts import MockSettings, exit_status, make_engine, verdict_json
from pytest_replay.model import Root, Trace
from pytest_replay.render.style import Style, choose_style
from pytest_replay.replay.engine import ReplayResult


def build_parser() -> argparse.ArgumentParser:
    """The command line (also used by the docs)."""
    parser = argparse.ArgumentParser(
        prog="replay-telemetry",
        description="Show a recorded request's timeline and root cause, then replay it "
                    "against the current code and say whether the incident reproduces.",
    )
    parser.add_argument("traces", nargs="+", metavar="TRACE",
                        help="trace files (.jsonl, .jsonl.gz), directories, or - for stdin")
    parser.add_argument("--targets", help="packages replay may call (overrides replay_targets)")
    parser.add_argument("--json", action="store_true", help="machine-readable verdicts")
    parser.add_argument("--events", action="store_true",
                        help="with --json: include each root's replayed events")
    parser.add_argument("--no-color", action="store_true", help="plain ASCII, no colour")
    parser.add_argument("--debug", action="store_true", help="show every event's detail")
    parser.add_argument("--local-time", action="store_true", help="times in local time, not UTC")
    parser.add_argument("--no-replay", action="store_true",
                        help="only show the timeline and root cause")
    parser.add_argument("--step-mode", action="store_true",
                        help="walk through the events interactively")
    parser.add_argument("--debugger", action="store_true",
                        help="replay and stop in pdb (or $PYTHONBREAKPOINT) where the error recurs")
    parser.add_argument("--profile", action="store_true",
                        help="per-function time, recorded vs replayed")
    parser.add_argument("--export", nargs=2, metavar=("FORMAT", "FILE"),
                        help="write the timeline for perfetto, speedscope or html")
    parser.add_argument("--distributed-view", action="store_true",
                        help="join traces by trace_id into one request across services")
    parser.add_argument("--parallel", type=int, metavar="N", default=0,
                        help="replay every root across N worker processes")
    parser.add_argument("--mock-apis", action=argparse.BooleanOptionalAction, default=True,
                        help="serve HTTP from the recording (default; --no-mock-apis: real)")
    parser.add_argument("--mock-database", action=argparse.BooleanOptionalAction, default=True,
                        help="serve database calls from the recording (default on)")
    parser.add_argument("--http-overrides", metavar="FILE",
                        help="JSON list of what-if HTTP answers, consulted before the "
                             'recording: [{"method": "POST", "url": "regex", "json": {...}, '
                             '"status": 200}]')
    parser.add_argument("--code-version", metavar="REF",
                        help="replay against a git ref of the project (a temporary worktree)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``replay-telemetry`` console script."""
    parser = build_parser()
    raw = list(sys.argv[1:] if argv is None else argv)
    options = parser.parse_args(raw)
    options.raw_argv = raw
    out = sys.stdout
    style = choose_style(out, no_color=options.no_color or options.json)
    try:
        return run(options, out, style)
    except UsageFailure as exc:
        print(f"replay-telemetry: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("replay-telemetry: interrupted", file=sys.stderr)
        return 130


def run(options: argparse.Namespace, out: TextIO, style: Style) -> int:
    """Do what the options ask; return the exit status."""
    if options.export and options.export[0] not in ("perfetto", "speedscope", "html"):
        raise UsageFailure(f"--export: unknown format {options.export[0]!r} "
                           "(valid: perfetto, speedscope, html)")
    if options.parallel < 0:
        raise UsageFailure("--parallel takes a positive number of workers")
    if options.code_version:
        from pytest_replay.cli.codeversion import replay_at_version

        return replay_at_version(options, out)
    config = load_cli_config(options.targets)
    from pytest_replay.cli.codeversion import check_targets_import_from_expected_root

    check_targets_import_from_expected_root(config)
    traces = load_traces(options.traces)
    input_errors = _report_problems(traces, out, style, quiet=options.json)
    roots = [root for trace in traces for root in trace.roots]
    if not roots:
        print("replay-telemetry: error: no request to replay (no function_entry without a "
              "parent)", file=sys.stderr)
        return EXIT_USAGE
    mocks = MockSettings(apis=options.mock_apis, database=options.mock_database)
    if options.parallel:
        from pytest_replay.cli.parallel import replay_in_parallel

        return replay_in_parallel(roots, config, mocks, options.parallel, out, style,
                                  as_json=options.json)
    engine = make_engine(config, mocks)
    if options.distributed_view:
        _distributed(traces, out, style)
    if options.step_mode:
        from pytest_replay.cli.stepper import step_through

        return step_through(roots, sys.stdin, out, style, verbose=options.debug)
    if options.debugger:
        from pytest_replay.cli.debugger import debug_roots

        return debug_roots(engine, roots, out)
    results: list[ReplayResult] = []
    for root in roots:
        if not options.json and not options.distributed_view:
            _show_root(root, out, style, options)
        if options.no_replay:
            continue
        result = engine.replay(root, overrides=_overrides(options.http_overrides))
        results.append(result)
        if not options.json:
            _show_verdict(result, out, style)
        if options.profile and not options.json:
            _profile(result, out, style)
    if options.export:
        _export(options.export[0], Path(options.export[1]), roots, results, out)
    if options.json:
        document = {"results": [verdict_json(r, events=options.events) for r in results],
                    "summary": _summary(results), "input_errors": input_errors}
        out.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")
    elif results:
        _show_summary(results, out, style)
    if options.no_replay:
        return EXIT_USAGE if input_errors else 0
    return exit_status(results) or (EXIT_USAGE if input_errors and not results else 0)


def _overrides(path: str | None) -> Any | None:
    """``--http-overrides FILE`` as an ``HttpOverrides`` (fresh for each replay)."""
    if not path:
        return None
    import re

    from pytest_replay.replay.http_serve import HttpOverrides

    try:
        entries = orjson.loads(Path(path).read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise UsageFailure(f"--http-overrides: cannot read {path}: {exc}") from None
    if not isinstance(entries, list):
        raise UsageFailure(f"--http-overrides: {path} must hold a JSON list of answers")
    overrides = HttpOverrides()
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("method"), str) or (
                not isinstance(entry.get("url"), str)):
            raise UsageFailure(f"--http-overrides: {path}: entry {index} needs string fields "
                               "'method' and 'url'")
        try:
            overrides.add(entry["method"], re.compile(entry["url"]), json=entry.get("json"),
                          body=str(entry.get("body", "")), status=int(entry.get("status", 200)))
        except (re.error, TypeError, ValueError) as exc:
            raise UsageFailure(f"--http-overrides: {path}: entry {index}: {exc}") from None
    return overrides


def _report_problems(traces: list[Trace], out: TextIO, style: Style, *, quiet: bool
                     ) -> list[str]:
    errors = [str(p) for trace in traces for p in trace.problems if p.severity == "error"]
    if errors and not quiet:
        for line in errors[:20]:
            out.write(style.paint(f"skipped: {line}", "warn") + "\n")
        if len(errors) > 20:
            out.write(f"skipped: ... {len(errors) - 20} more problems\n")
    return errors


def _show_root(root: Root, out: TextIO, style: Style, options: argparse.Namespace) -> None:
    from pytest_replay.render.timeline import render_timeline

    tz = None if options.local_time else _utc()
    out.write(render_timeline(root, style, verbose=options.debug, tz=tz) + "\n")
    if root.is_incident:
        for line in _root_cause_lines(root, style):
            out.write(line + "\n")
    out.write("\n")


def _utc() -> Any:
    import datetime as _dt

    return _dt.timezone.utc


def _root_cause_lines(root: Root, style: Style) -> list[str]:
    from pytest_replay.render.rootcause import find_root_cause, root_cause_lines

    return root_cause_lines(find_root_cause(root), style)


def _show_verdict(result: ReplayResult, out: TextIO, style: Style) -> None:
    from pytest_replay.replay.explain import explain

    roles = {"passed": "good", "fixed": "good", "reproduced": "bad", "diverged": "bad",
             "not_replayable": "warn"}
    role = roles.get(result.status, "warn")
    lines = explain(result, verbosity=0)
    mark = "✅ " if style.unicode and result.passed else "❌ " if style.unicode else ""
    headline = f"{mark}{result.status.upper()} {result.root.name}: {lines[0]}"
    out.write(style.paint(headline, role) + "\n")
    if result.status not in ("passed", "fixed"):
        for line in lines[2:]:
            if line.startswith("(-vv"):
                continue
            out.write(f"   {line}\n")
    out.write("\n")


def _summary(results: Sequence[ReplayResult]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for result in results:
        counts[result.status] = counts.get(result.status, 0) + 1
    counts["total"] = len(results)
    return counts


def _show_summary(results: Sequence[ReplayResult], out: TextIO, style: Style) -> None:
    counts = _summary(results)
    parts = [f"{counts[k]} {k}" for k in ("passed", "fixed", "reproduced", "diverged",
                                          "not_replayable") if counts.get(k)]
    if all(r.passed for r in results):
        message = f"{style.glyph('party')}Replay completed successfully! " + ", ".join(parts)
        out.write(style.paint(message, "good") + "\n")
    else:
        out.write(style.paint("Replay found problems: " + ", ".join(parts), "bad") + "\n")


def _profile(result: ReplayResult, out: TextIO, style: Style) -> None:
    from pytest_replay.render.profile import build_profile, profile_lines

    for line in profile_lines(build_profile(result.recorded, result.replayed), style):
        out.write(line + "\n")
    out.write("\n")


def _export(kind: str, path: Path, roots: Sequence[Root], results: Sequence[ReplayResult],
            out: TextIO) -> None:
    from pytest_replay.render.exports import write_export

    events = [item.event for root in roots for item in root.events]
    try:
        write_export(events, path, kind)  # type: ignore[arg-type]
    except OSError as exc:
        raise UsageFailure(f"--export: cannot write {path}: {exc}") from None
    out.write(f"wrote {kind} timeline to {path}\n")


def _distributed(traces: Sequence[Trace], out: TextIO, style: Style) -> None:
    from pytest_replay.render.distributed import build_distributed, render_distributed

    names = [Path(trace.path).name for trace in traces]
    out.write(render_distributed(build_distributed(list(traces), names=names), style) + "\n\n")


if __name__ == "__main__":
    raise SystemExit(main())
