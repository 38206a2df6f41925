"""``compare-replays A B``: is B better than A, request by request and in aggregate?

A and B are trace sets (files or directories). By default each side is what
production recorded (the seed's variant A / variant B logs). ``--replay``
replays both against the current code; ``--a-code-version REF`` /
``--b-code-version REF`` replay a side against a git ref, so one trace set can
be compared between main and a fix branch. ``--variant`` states whether the
aggregate differences are beyond noise (two-proportion z-test for error
rates, Mann-Whitney U for latencies, alpha 0.05). Exit status 1 when B
regresses, 2 on usage or input errors.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import orjson

from pytest_replay.abtest.report import as_json, compare_sides, render
from pytest_replay.abtest.sides import Side, code_version_side, recorded_side, replayed_side
from pytest_replay.cli._common import EXIT_USAGE, UsageFailure, load_cli_config, load_traces
from pytest_replay.cli.verdicts import MockSettings, make_engine
from pytest_replay.model import Trace
from pytest_replay.render.style import choose_style
from pytest_replay.replay.compare import CompareOptions


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(prog="compare-replays", description=__doc__.split("\n")[0])
    parser.add_argument("a", help="side A: a trace file or directory")
    parser.add_argument("b", help="side B: a trace file or directory")
    parser.add_argument("--replay", action="store_true",
                        help="replay both sides against the current code")
    parser.add_argument("--a-code-version", metavar="REF", help="replay side A at this git ref")
    parser.add_argument("--b-code-version", metavar="REF", help="replay side B at this git ref")
    parser.add_argument("--variant", action="store_true",
                        help="A/B arms: state whether differences are beyond noise")
    parser.add_argument("--targets", help="packages replay may call (overrides replay_targets)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--no-color", action="store_true", help="plain ASCII")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``compare-replays`` console script."""
    options = build_parser().parse_args(argv)
    try:
        return run(options)
    except UsageFailure as exc:
        print(f"compare-replays: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RuntimeError as exc:
        print(f"compare-replays: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _side(label: str, path: str, traces: list[Trace], ref: str | None,
          options: argparse.Namespace) -> Side:
    if ref:
        return code_version_side(label, [path], ref, options.targets, traces)
    if options.replay:
        config = load_cli_config(options.targets)
        return replayed_side(label, traces, make_engine(config, MockSettings()))
    return recorded_side(label, traces)


def run(options: argparse.Namespace) -> int:
    """Build both sides, compare, print; return the exit status."""
    traces_a = load_traces([options.a])
    traces_b = load_traces([options.b])
    problems = [str(p) for t in (*traces_a, *traces_b) for p in t.problems
                if p.severity == "error"]
    for problem in problems[:20]:
        print(f"skipped: {problem}", file=sys.stderr)
    if not any(t.roots for t in traces_a) or not any(t.roots for t in traces_b):
        raise UsageFailure("each side needs at least one recorded request")
    config_ignore: tuple[str, ...] = ()
    if options.replay or options.a_code_version or options.b_code_version:
        config_ignore = load_cli_config(options.targets).ignore
    side_a = _side("A", options.a, traces_a, options.a_code_version, options)
    side_b = _side("B", options.b, traces_b, options.b_code_version, options)
    result = compare_sides(side_a, side_b, statistics=options.variant,
                           options=CompareOptions(ignore=config_ignore))
    if options.json:
        sys.stdout.write(orjson.dumps(as_json(result), option=orjson.OPT_INDENT_2).decode()
                         + "\n")
    else:
        style = choose_style(sys.stdout, no_color=options.no_color)
        for line in render(result, unicode=style.unicode):
            sys.stdout.write(line + "\n")
    return 1 if result.b_regresses else 0


if __name__ == "__main__":
    raise SystemExit(main())
