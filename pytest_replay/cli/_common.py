"""What the command-line tools share: inputs, configuration, exit codes, errors."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Final

from pytest_replay.config import ConfigError, ReplayConfig, find_ini, from_values
from pytest_replay.format.reader import ReadResult, read_stream, read_trace
from pytest_replay.model import Trace, build_trace

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
TRACE_SUFFIXES: Final = (".jsonl", ".jsonl.gz", ".gz", ".ndjson")


class UsageFailure(Exception):
    """A mistake in how the tool was called (exit status 2)."""


def load_cli_config(targets: str | None, start: Path | None = None) -> ReplayConfig:
    """The project's ``replay_*`` keys, with ``--targets`` winning over the file.

    Like pytest, the ini file's ``pythonpath`` entries are put on ``sys.path``
    so the targets import the same way in both front ends.
    """
    try:
        rootdir, values = find_ini(start)
        config = from_values(values, rootdir, str(rootdir))
        if targets:
            config = config.with_targets(t.strip() for t in targets.split(",") if t.strip())
    except ConfigError as exc:
        raise UsageFailure(str(exc)) from None
    extend_python_path(rootdir, values.get("pythonpath"))
    return config


def extend_python_path(rootdir: Path, raw: object) -> None:
    """Put the ini file's ``pythonpath`` entries first on ``sys.path``."""
    entries: list[str] = []
    if isinstance(raw, str):
        entries = raw.split()
    elif isinstance(raw, list):
        entries = [str(item) for item in raw]
    for entry in reversed(entries):
        path = str((rootdir / entry).resolve())
        if path not in sys.path:
            sys.path.insert(0, path)


def trace_files(arguments: Iterable[str]) -> Iterator[str]:
    """Expand files, directories (recursively, trace suffixes only) and ``-``."""
    for argument in arguments:
        if argument == "-":
            yield "-"
            continue
        path = Path(argument)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file()
                           and p.name.endswith(TRACE_SUFFIXES)
                           and ".replay-baselines" not in p.parts)
            if not found:
                raise UsageFailure(f"{argument}: no trace files (*.jsonl, *.jsonl.gz) inside")
            yield from (str(p) for p in found)
        elif path.is_file():
            yield str(path)
        else:
            raise UsageFailure(f"{argument}: no such file or directory")


def load_traces(arguments: Iterable[str]) -> list[Trace]:
    """Read and model every trace named on the command line."""
    traces = []
    for name in trace_files(arguments):
        result: ReadResult = read_stream(sys.stdin.buffer, "<stdin>") if name == "-" else (
            read_trace(name))
        traces.append(build_trace(result))
    return traces
