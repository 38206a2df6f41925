"""Benchmark: ``extract-traces --correlation-id X`` against grep, ripgrep and jq on one big log.

Run ``python tests/benchmarks/bench_extract.py``. It builds a synthetic
production log (``BENCH_EXTRACT_BYTES``, default 1 GB; ``BENCH_EXTRACT_DIR``,
default /tmp; reused when present), reads it once so every tool meets a warm
page cache, then prints throughput side by side, each the best of
``BENCH_EXTRACT_REPEATS`` runs (default 3):

- ``extract-traces --correlation-id X`` for one request in the middle of the
  log (the whole call tree: a find pass for X, a pass for its frames);
- ``grep -cF X`` and ``rg -cF X``: the lines naming X only (less than the
  tree: child calls carry other ids);
- ``jq`` selecting by id on a 100 MB slice (it parses every line; its time
  is scaled to MB/s and labelled as such);
- ``extract-traces --error --limit 10``, ``--min-duration 40us --limit 100``
  and ``--user-id N``: filters that are no id (every call's request is
  worked out, in a temporary SQLite database bounded by the memory budget);
  one run each (``BENCH_EXTRACT_FILTER_REPEATS``), peak memory is the point.

The id selection runs twice: as shipped (two processes scan the two halves
of the log when the machine has two CPUs) and with
``TELEMETRY_REPLAY_EXTRACT_WORKERS=1``. Peak memory is the child's own
maximum resident set (GNU time, else ``os.wait4``). Goals: 1 GB/s for one
id, under 200 MB whatever the log size.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

SIZE = int(os.environ.get("BENCH_EXTRACT_BYTES", str(1_000_000_000)))
DIRECTORY = Path(os.environ.get("BENCH_EXTRACT_DIR", "/tmp"))
REPEATS = int(os.environ.get("BENCH_EXTRACT_REPEATS", "3"))
FILTER_REPEATS = int(os.environ.get("BENCH_EXTRACT_FILTER_REPEATS", "1"))
JQ_SLICE = 100_000_000
START_NS = 1_761_876_000_000_000_000
SCRIPT = Path(sys.executable).with_name("extract-traces")
FORMAT = 2  # bump when the generator changes, so old files are not reused


def _request(index: int, chooser: random.Random, frames: Iterator[int]) -> Iterator[dict[str, Any]]:
    """One request as the capture library writes it: context, root, 2-4 calls, maybe an error."""
    root = f"req_{index:08x}"
    stamp = START_NS + index * 1_000_000
    user = chooser.randrange(1, 200_000)
    yield {"event_type": "context", "timestamp_ns": stamp, "context": {"user_id": user},
           "correlation_id": root, "service": "shop"}
    yield {"event_type": "function_entry", "timestamp_ns": stamp + 10, "correlation_id": root,
           "function_name": "process_order", "module": "shop.orders",
           "qualname": "process_order",
           "args": {"order_id": 10_000 + index, "user_id": user,
                    "items": [{"sku": f"SKU-{index % 97}", "qty": 1 + index % 3}]},
           "v": 1, "service": "shop"}
    yield {"event_type": "variable_change", "timestamp_ns": stamp + 20,
           "variable_name": "tax_rate", "value": 0.08, "correlation_id": root, "service": "shop"}
    fails = chooser.random() < 0.05
    stack = [root]
    for depth in range(chooser.randrange(2, 5)):
        cid = f"f5d661ad7_{next(frames)}"
        yield {"event_type": "function_entry", "timestamp_ns": stamp + 30 + depth,
               "correlation_id": cid, "function_name": "calculate_tax", "module": "shop.tax",
               "qualname": "calculate_tax", "args": {"amount": 100.0 + depth, "rate": 0.08},
               "v": 1, "parent_correlation_id": stack[-1], "trace_id": root, "service": "shop"}
        stack.append(cid)
    if fails:
        yield {"event_type": "error", "timestamp_ns": stamp + 50, "correlation_id": stack[-1],
               "error_type": "ZeroDivisionError", "error_module": "builtins",
               "message": "division by zero", "function_name": "calculate_tax",
               "filename": "/srv/shop/tax.py", "lineno": 16,
               "source_line": "discount_amount = sum(discounts) / discount_count",
               "locals": {"amount": 100.0, "discount_count": 0}, "service": "shop"}
    for cid in reversed(stack[1:]):
        event: dict[str, Any] = {"event_type": "function_exit", "timestamp_ns": stamp + 60,
                                 "correlation_id": cid, "function_name": "calculate_tax",
                                 "duration_ns": 20_000, "service": "shop"}
        event.update({"error": True} if fails else {"return_value": 8.0})
        yield event
    final: dict[str, Any] = {"event_type": "function_exit", "timestamp_ns": stamp + 70,
                             "correlation_id": root, "function_name": "process_order",
                             "duration_ns": 50_000, "service": "shop"}
    final.update({"error": True} if fails else {"return_value": {"total": 108.0}})
    yield final


@dataclass
class Log:
    """The synthetic log and what the benchmark looks for in it."""

    path: Path
    requests: int
    target: str
    target_events: int


def build_log() -> Log:
    """Write (or reuse) the log: requests interleaved two by two, as concurrent ones are."""
    path = DIRECTORY / f"telemetry-replay-bench-extract-{SIZE}-v{FORMAT}.jsonl"
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists():
        facts = json.loads(meta.read_text())
        return Log(path, facts["requests"], facts["target"], facts["target_events"])
    print(f"building {SIZE / 1e9:.2f} GB log at {path} (once; reused next time)...", flush=True)
    chooser = random.Random(1031)
    frames = iter(range(1, 1 << 62))
    written = index = 0
    per_request: dict[str, int] = {}
    partial = path.with_suffix(".partial")
    with open(partial, "wb") as out:
        while written < SIZE:
            pair = [list(_request(index + k, chooser, frames)) for k in range(2)]
            for k, events in enumerate(pair):
                per_request[f"req_{index + k:08x}"] = len(events)
            lines = [orjson.dumps(event) + b"\n" for event in _interleave(pair)]
            chunk = b"".join(lines)
            out.write(chunk)
            written += len(chunk)
            index += 2
    partial.replace(path)
    target = f"req_{index // 2:08x}"
    meta.write_text(json.dumps({"requests": index, "target": target,
                                "target_events": per_request[target]}))
    return Log(path, index, target, per_request[target])


def _interleave(pair: Sequence[list[dict[str, Any]]]) -> Iterator[dict[str, Any]]:
    first, second = pair
    for position in range(max(len(first), len(second))):
        if position < len(first):
            yield first[position]
        if position < len(second):
            yield second[position]


@dataclass
class Run:
    """One tool's best run."""

    seconds: float
    peak_bytes: int
    output: bytes


GNU_TIME = Path("/usr/bin/time")


def measure(command: Sequence[str], repeats: int = REPEATS,
            env: dict[str, str] | None = None) -> Run:
    """Best of REPEATS runs, with the child's own peak resident memory.

    A child forked from this (big) Python process would report this
    process's memory as its peak, so the peak comes from GNU time when it is
    installed (a small process that execs the tool), else from ``wait4``.
    """
    best: Run | None = None
    report = DIRECTORY / f"bench-extract-{os.getpid()}.rss"
    for _ in range(repeats):
        wrapped = ([str(GNU_TIME), "-f", "%M", "-o", str(report), *command]
                   if GNU_TIME.exists() else list(command))
        started = time.perf_counter()
        child = subprocess.Popen(wrapped, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 env={**os.environ, **(env or {})})
        assert child.stdout is not None
        output = child.stdout.read()
        _pid, status, usage = os.wait4(child.pid, 0)
        elapsed = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        child.stdout.close()
        peak = usage.ru_maxrss * 1024
        if GNU_TIME.exists():
            peak = int(report.read_text().split()[-1]) * 1024
            report.unlink()
        run = Run(elapsed, peak, output)
        if best is None or run.seconds < best.seconds:
            best = run
    assert best is not None
    return best


def warm(path: Path) -> None:
    """Read the file once so every tool starts from the page cache."""
    with open(path, "rb") as stream:
        while stream.read(8 << 20):
            pass


def slice_of(log: Path, size: int) -> Path:
    """The first ``size`` bytes of the log, cut at a line end (for jq)."""
    target = log.with_name(log.stem + f"-slice-{size}.jsonl")
    if not target.exists():
        with open(log, "rb") as source, open(target, "wb") as out:
            left = size
            while left > 0:
                block = source.read(min(left, 8 << 20))
                if not block:
                    break
                left -= len(block)
                if left <= 0:
                    block = block[: block.rfind(b"\n") + 1]
                out.write(block)
    return target


def main() -> int:
    """Build, warm, measure, print."""
    log = build_log()
    size = log.path.stat().st_size
    warm(log.path)
    x = log.target
    rows: list[tuple[str, Run | None, float, str]] = []

    by_id = [str(SCRIPT), str(log.path), "--correlation-id", x, "--no-redact", "-q"]
    extract = measure(by_id)
    got = [orjson.loads(line) for line in extract.output.splitlines()]
    assert len(got) == log.target_events, (len(got), log.target_events)
    rows.append((f"extract-traces --correlation-id {x}", extract, size, ""))
    single = measure(by_id, env={"TELEMETRY_REPLAY_EXTRACT_WORKERS": "1"})
    assert single.output == extract.output
    rows.append(("  the same, one process (..._WORKERS=1)", single, size, ""))
    grep = measure(["grep", "-cF", x, str(log.path)])
    rows.append((f"grep -cF {x}", grep, size,
                 f"{int(grep.output)} lines of {log.target_events}"))
    rg = shutil.which("rg")
    rows.append((f"rg -cF {x}", measure([rg, "-cF", x, str(log.path)]) if rg else None, size,
                 "" if rg else "not installed"))
    jq = shutil.which("jq")
    if jq:
        piece = slice_of(log.path, min(JQ_SLICE, size))
        warm(piece)
        query = (f'select(.correlation_id == "{x}" or .parent_correlation_id == "{x}" '
                 f'or .trace_id == "{x}")')
        rows.append((f"jq -c '{query[:32]}...' (on a {piece.stat().st_size / 1e6:.0f} MB "
                     "slice, scaled)", measure([jq, "-c", query, str(piece)]),
                     piece.stat().st_size, ""))
    else:
        rows.append(("jq", None, size, "not installed"))
    for label, filters in (("--error --limit 10", ["--error", "--limit", "10"]),
                           ("--min-duration 40us --limit 100",
                            ["--min-duration", "40us", "--limit", "100"]),
                           ("--user-id 4242", ["--user-id", "4242"])):
        filtered = measure([str(SCRIPT), str(log.path), *filters, "--no-redact", "-q"],
                           FILTER_REPEATS)
        rows.append((f"extract-traces {label}", filtered, size,
                     f"{len(filtered.output.splitlines())} events"))

    print(f"\nlog: {log.path} ({size / 1e9:.2f} GB, {log.requests} requests); X = {x} "
          f"({log.target_events} events, in the middle); best of {REPEATS} runs; "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}\n")
    print(f"{'tool':62} {'time':>8} {'MB/s':>8} {'vs grep':>8} {'peak RSS':>9}")
    grep_speed = size / grep.seconds
    for name, measured, volume, note in rows:
        if measured is None:
            print(f"{name:62} {note:>8}")
            continue
        speed = volume / measured.seconds
        print(f"{name:62} {measured.seconds:7.2f}s {speed / 1e6:8.0f} "
              f"{speed / grep_speed:7.2f}x {measured.peak_bytes / 1e6:7.0f}MB {note}")
    speed = size / extract.seconds
    print(f"\nextract-traces one id: {speed / 1e9:.2f} GB/s (goal 1 GB/s), "
          f"{extract.peak_bytes / 1e6:.0f} MB peak (goal under 200 MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
