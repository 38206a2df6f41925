"""``--parallel N``: replay many roots across worker processes, with progress and a summary."""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, TextIO

import orjson

from pytest_replay.cli.verdicts import MockSettings
from pytest_replay.config import ReplayConfig
from pytest_replay.model import Root

_WORKER: dict[str, Any] = {}
"""Per worker process: the engine and the traces it has read (never shared)."""


def _start_worker(config: ReplayConfig, mocks: MockSettings, sys_path: list[str]) -> None:
    from pytest_replay.cli.verdicts import make_engine

    sys.path[:] = sys_path
    _WORKER["engine"] = make_engine(config, mocks)
    _WORKER["traces"] = {}


def _replay_one(path: str, correlation_id: str) -> tuple[str, str, str, str, float]:
    from pytest_replay.model import load_trace

    traces = _WORKER["traces"]
    if path not in traces:
        traces[path] = {root.correlation_id: root for root in load_trace(path).roots}
    root = traces[path][correlation_id]
    started = time.perf_counter()
    result = _WORKER["engine"].replay(root, check_noise=False)
    elapsed = time.perf_counter() - started
    return path, root.name, result.status, result.message, elapsed


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of ``values`` (which must not be empty)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


def replay_in_parallel(roots: Sequence[Root], config: ReplayConfig, mocks: MockSettings,
                       workers: int, out: TextIO, style: Any, *, as_json: bool) -> int:
    """Replay ``roots`` on ``workers`` processes; print progress to stderr, summary to ``out``."""
    jobs = [(str(root.path), root.correlation_id) for root in roots]
    if any(path in ("-", "<stdin>") for path, _ in jobs):
        from pytest_replay.cli._common import UsageFailure

        raise UsageFailure("--parallel needs trace files, not stdin")
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    failures: list[tuple[str, str, str, str]] = []
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_start_worker,
                             initargs=(config, mocks, list(sys.path))) as pool:
        futures = [pool.submit(_replay_one, path, cid) for path, cid in jobs]
        for done, future in enumerate(as_completed(futures), start=1):
            path, name, status, message, elapsed = future.result()
            statuses[status] += 1
            latencies.append(elapsed)
            if status not in ("passed", "fixed"):
                failures.append((path, name, status, message))
            _progress(done, len(jobs), statuses)
    wall = time.perf_counter() - started
    sys.stderr.write("\n")
    summary = {
        "total": len(jobs), "workers": workers, "wall_seconds": round(wall, 3),
        "statuses": dict(statuses),
        "latency_ms": {name: round(percentile(latencies, q) * 1000, 3)
                       for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99),
                                       ("max", 1.0))},
        "failures": [{"trace": p, "root": n, "status": s, "message": m}
                     for p, n, s, m in failures],
    }
    if as_json:
        out.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        _print_summary(summary, out)
    return 0 if not failures else 1


def _progress(done: int, total: int, statuses: Counter[str]) -> None:
    width = 30
    filled = width * done // total
    bad = total and sum(v for k, v in statuses.items() if k not in ("passed", "fixed"))
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} "
                     f"({bad} failing)")
    sys.stderr.flush()


def _print_summary(summary: dict[str, Any], out: TextIO) -> None:
    statuses = summary["statuses"]
    latency = summary["latency_ms"]
    out.write(f"Replayed {summary['total']} requests on {summary['workers']} workers in "
              f"{summary['wall_seconds']} s\n")
    out.write("  " + ", ".join(f"{statuses.get(k, 0)} {k}" for k in
                               ("passed", "fixed", "reproduced", "diverged", "not_replayable"))
              + "\n")
    out.write(f"  per-request replay latency: p50 {latency['p50']} ms, p90 {latency['p90']} ms,"
              f" p99 {latency['p99']} ms, max {latency['max']} ms\n")
    for failure in summary["failures"][:20]:
        out.write(f"  {failure['status'].upper()} {os.path.basename(failure['trace'])}::"
                  f"{failure['root']}: {failure['message']}\n")
    if len(summary["failures"]) > 20:
        out.write(f"  ... {len(summary['failures']) - 20} more\n")
