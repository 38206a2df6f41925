"""Benchmark: rendering a huge trace against a plain read of the same file.

Run ``python tests/benchmarks/bench_render.py [events]`` (default 100,000).
It writes one long request (nested calls, loops, variable changes, HTTP and
database calls, one error deep inside) to a temporary file and prints events
per second, and the ratio to (a), for

(a) a plain read: ``orjson.loads`` per line, keeping nothing (the peer);
(b) the streaming summary (``summarize`` over the reader's lazy
    ``iter_events``, then ``render_summary_lines``): what ``replay-telemetry``
    shows for a trace this long, in bounded memory;
(c) ``read_trace`` + ``build_trace`` + ``render_timeline`` with the default
    line budget (the tree, elided around the error);
(d) the same with every line drawn (``max_lines=None``);
(e) the Perfetto, speedscope and HTML exports.

It also prints the peak memory (tracemalloc) of (b) against holding every
event of the file in a list, the bound the summary is there to avoid. Each
side runs a few times and keeps its best run.
"""

from __future__ import annotations

import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from pytest_replay.format.reader import iter_events, read_trace
from pytest_replay.model import build_trace
from pytest_replay.render.exports import export_bytes
from pytest_replay.render.style import Style
from pytest_replay.render.summary import render_summary_lines, summarize
from pytest_replay.render.timeline import render_timeline

START_NS = 1_761_920_625_123_000_000
REPEATS = 3
STYLE = Style.plain()


def _events(total: int) -> Iterator[dict[str, Any]]:
    """One request of about ``total`` events: batches of items, each with nested calls."""
    yield {"event_type": "function_entry", "timestamp_ns": START_NS, "correlation_id": "req_1",
           "function_name": "import_orders", "args": {"batch": 1}, "service": "shop"}
    stamp = START_NS
    count = 1
    index = 0
    error_at = total // 2
    while count < total - 1:
        stamp += 1_000
        cid, inner = f"o{index}", f"t{index}"
        item = {"sku": f"SKU-{index % 50}", "qty": 2}
        args: dict[str, Any] = {"order_id": 10_000 + index, "items": [item]}
        batch: list[dict[str, Any]] = [
            {"event_type": "function_entry", "timestamp_ns": stamp, "correlation_id": cid,
             "parent_correlation_id": "req_1", "function_name": "process_order", "args": args},
            {"event_type": "variable_change", "timestamp_ns": stamp + 10, "correlation_id": cid,
             "variable_name": "tax_rate", "value": 0.08},
            {"event_type": "loop_iteration", "timestamp_ns": stamp + 20, "correlation_id": cid,
             "loop_name": "items", "iteration": 0, "value": item},
            {"event_type": "function_entry", "timestamp_ns": stamp + 30, "correlation_id": inner,
             "parent_correlation_id": cid, "function_name": "calculate_tax",
             "args": {"amount": 100.0, "rate": 0.08}},
            {"event_type": "db_call", "timestamp_ns": stamp + 40, "correlation_id": inner,
             "system": "postgresql", "statement": "SELECT rate FROM tax WHERE region = %s",
             "rows": [[0.08]], "rowcount": 1, "duration_ns": 200},
        ]
        if 0 < error_at <= count:
            batch += [
                {"event_type": "error", "timestamp_ns": stamp + 50, "correlation_id": inner,
                 "error_type": "ZeroDivisionError", "message": "division by zero",
                 "function_name": "calculate_tax", "lineno": 16,
                 "source_line": "discount_amount = sum(discounts) / discount_count",
                 "locals": {"discounts": [], "discount_count": 0}},
                {"event_type": "function_exit", "timestamp_ns": stamp + 60,
                 "correlation_id": inner, "function_name": "calculate_tax", "error": True,
                 "duration_ns": 30},
            ]
            error_at = 0
        else:
            batch.append({"event_type": "function_exit", "timestamp_ns": stamp + 60,
                          "correlation_id": inner, "function_name": "calculate_tax",
                          "return_value": 8.0, "duration_ns": 30})
        batch += [
            {"event_type": "http_call", "timestamp_ns": stamp + 70, "correlation_id": cid,
             "method": "POST", "url": "https://api.payments/charge", "status": 200,
             "duration_ns": 500},
            {"event_type": "function_exit", "timestamp_ns": stamp + 90, "correlation_id": cid,
             "function_name": "process_order", "return_value": {"total": 108.0},
             "duration_ns": 90},
        ]
        for event in batch:
            yield event
            count += 1
        index += 1
    yield {"event_type": "function_exit", "timestamp_ns": stamp + 1_000,
           "correlation_id": "req_1", "function_name": "import_orders", "error": True,
           "duration_ns": stamp + 1_000 - START_NS}


def _write(path: Path, total: int) -> int:
    lines = [orjson.dumps(event) + b"\n" for event in _events(total)]
    path.write_bytes(b"".join(lines))
    return len(lines)


def _best(work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def _plain_read(path: Path) -> None:
    with path.open("rb") as stream:
        for line in stream:
            orjson.loads(line)


def _summary(path: Path) -> list[str]:
    summary = summarize(item for _name, item in iter_events([path]))
    return render_summary_lines(summary, STYLE)


def _tree(path: Path, max_lines: int | None) -> str:
    trace = build_trace(read_trace(path))
    return render_timeline(trace, STYLE, max_lines=max_lines, summary=False)


def _exports(path: Path) -> None:
    trace = build_trace(read_trace(path))
    for fmt in ("perfetto", "speedscope", "html"):
        export_bytes(trace, fmt)


def _peak(work: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _hold_all(path: Path) -> list[Any]:
    with path.open("rb") as stream:
        return [orjson.loads(line) for line in stream]


def main(argv: list[str]) -> int:
    """Write the trace, time every side, print events/s, ratios and peak memory."""
    total = int(argv[1]) if len(argv) > 1 else 100_000
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "huge.jsonl"
        count = _write(path, total)
        size = path.stat().st_size
        print(f"trace: {count:,} events, {size / 1e6:.1f} MB")
        peer = _best(lambda: _plain_read(path))
        sides = [
            ("(a) plain orjson read (peer)", peer),
            ("(b) streaming summary", _best(lambda: _summary(path))),
            ("(c) read + model + tree (400-line budget)", _best(lambda: _tree(path, 400))),
            ("(d) read + model + full tree", _best(lambda: _tree(path, None))),
            ("(e) read + model + 3 exports", _best(lambda: _exports(path))),
        ]
        for label, seconds in sides:
            print(f"{label:<44} {count / seconds:>12,.0f} events/s   "
                  f"{seconds:7.3f} s   x{seconds / peer:6.1f} the plain read")
        summary_peak = _peak(lambda: _summary(path))
        holding_peak = _peak(lambda: _hold_all(path))
        print(f"peak memory: streaming summary {summary_peak / 1e6:.1f} MB, "
              f"holding every event {holding_peak / 1e6:.1f} MB "
              f"(ratio {summary_peak / holding_peak:.2f})")
        print("\n".join(_summary(path)[:12]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
