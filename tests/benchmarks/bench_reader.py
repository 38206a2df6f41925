"""Benchmark: reading and modelling a trace against a bare ``json.loads`` loop.

Run ``python tests/benchmarks/bench_reader.py [events] [roots]``. It writes a
synthetic trace of realistic events (calls with arguments, tagged values,
variable changes, context, errors, incidents without a root exit) to a
temporary directory and prints events per second for

(a) ``read_trace`` + ``build_trace`` (checked fields, line numbers, frames,
    roots, incidents), and
(b) a plain ``json.loads`` per line loop that builds nothing,

and the ratio (a) / (b). The goal is 3x or more. For scale it also prints
(c) ``orjson.loads`` per line keeping every event and checking nothing: the
floor any reader that keeps the events as dicts pays. Each side runs a few
times and keeps its best run, so a noisy neighbour does not decide the result.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from pytest_replay.format.reader import read_trace
from pytest_replay.model import build_trace

START_NS = 1_698_765_432_123_456_789
REPEATS = 3


def _root_events(index: int) -> Iterator[dict[str, Any]]:
    """Four events of one request (five for incidents), in one of three shapes."""
    stamp = START_NS + index * 1_000_000
    root = f"req_{index:08x}"
    child = f"f3a9c2e1_{index:x}"
    yield {
        "event_type": "function_entry", "timestamp_ns": stamp, "correlation_id": root,
        "function_name": "process_order", "module": "shop.orders", "qualname": "process_order",
        "args": {"order_id": 10_000 + index, "user_id": 60_000 + index % 977,
                 "items": [{"sku": f"SKU-{index % 50}", "qty": 1 + index % 3}],
                 "placed_at": {"$type": "datetime", "value": "2023-10-31T14:23:45.123456"}},
        "service": "shop", "v": 1,
    }
    shape = index % 5
    if shape in (0, 1):
        yield {
            "event_type": "function_entry", "timestamp_ns": stamp + 100, "correlation_id": child,
            "parent_correlation_id": root, "function_name": "calculate_tax",
            "module": "shop.tax", "qualname": "calculate_tax",
            "args": {"amount": {"$type": "decimal", "value": "100.00"}, "rate": 0.08},
            "service": "shop", "v": 1,
        }
        yield {
            "event_type": "function_exit", "timestamp_ns": stamp + 200, "correlation_id": child,
            "function_name": "calculate_tax", "return_value": 8.0, "duration_ns": 100,
            "service": "shop",
        }
    elif shape in (2, 3):
        yield {
            "event_type": "variable_change", "timestamp_ns": stamp + 100,
            "correlation_id": root, "variable_name": "tax_rate", "value": 0.08,
            "service": "shop",
        }
        yield {
            "event_type": "context", "timestamp_ns": stamp + 150, "correlation_id": root,
            "context": {"environment": "production", "region": "us-west-2", "variant": "B"},
            "service": "shop",
        }
    else:
        yield {
            "event_type": "function_entry", "timestamp_ns": stamp + 100, "correlation_id": child,
            "parent_correlation_id": root, "function_name": "calculate_tax",
            "module": "shop.tax", "qualname": "calculate_tax",
            "args": {"amount": 100.0, "rate": 0.08}, "service": "shop", "v": 1,
        }
        yield {
            "event_type": "variable_change", "timestamp_ns": stamp + 120,
            "correlation_id": child, "variable_name": "discount_count", "value": 0,
            "service": "shop",
        }
        yield {
            "event_type": "error", "timestamp_ns": stamp + 150, "correlation_id": child,
            "error_type": "ZeroDivisionError", "error_module": "builtins",
            "message": "division by zero", "function_name": "calculate_tax",
            "filename": "/srv/shop/tax.py", "lineno": 15,
            "source_line": "discount_amount = amount / discount_count",
            "locals": {"amount": 100.0, "discount_count": 0}, "service": "shop",
        }
        return  # an incident: the recording stops at the uncaught error
    yield {
        "event_type": "function_exit", "timestamp_ns": stamp + 300, "correlation_id": root,
        "function_name": "process_order", "return_value": {"status": "ok", "total": 108.0},
        "duration_ns": 300, "service": "shop",
    }


def write_trace(path: Path, events: int, roots: int) -> int:
    """Write about ``events`` events spread over ``roots`` requests; return the count."""
    written = 0
    with path.open("wb") as stream:
        index = 0
        while written < events:
            for event in _root_events(index % roots if roots else index):
                if written >= events:
                    break
                stream.write(orjson.dumps(event) + b"\n")
                written += 1
            index += 1
    return written


def _best(run: Callable[[], int]) -> tuple[float, int]:
    best = float("inf")
    count = 0
    for _ in range(REPEATS):
        started = time.perf_counter()
        count = run()
        best = min(best, time.perf_counter() - started)
    return best, count


def main(argv: list[str]) -> None:
    """Write the trace, time both sides and print the numbers."""
    events = int(argv[0]) if argv else 200_000
    roots = int(argv[1]) if len(argv) > 1 else 50_000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.jsonl"
        total = write_trace(path, events, roots)

        def ours() -> int:
            trace = build_trace(read_trace(path))
            assert len(trace.roots) == roots, (len(trace.roots), roots)
            assert not [p for p in trace.problems if p.severity == "error"]
            return sum(len(root.events) for root in trace.roots)

        def plain() -> int:
            count = 0
            with path.open("rb") as stream:
                for line in stream:
                    if line.strip():
                        json.loads(line)
                        count += 1
            return count

        def floor() -> int:
            with path.open("rb") as stream:
                kept = [orjson.loads(line) for line in stream if line.strip()]
            return len(kept)

        ours_s, ours_n = _best(ours)
        plain_s, plain_n = _best(plain)
        floor_s, floor_n = _best(floor)
    assert ours_n == plain_n == floor_n == total, (ours_n, plain_n, floor_n, total)
    ours_rate = total / ours_s
    plain_rate = total / plain_s
    floor_rate = total / floor_s
    print(f"events: {total:,}  roots: {roots:,}  (best of {REPEATS})")
    print(f"(a) read_trace + build_trace:  {ours_rate:12,.0f} events/s  ({ours_s:.3f} s)")
    print(f"(b) json.loads per line:       {plain_rate:12,.0f} events/s  ({plain_s:.3f} s)")
    print(f"(c) orjson.loads, kept (floor): {floor_rate:11,.0f} events/s  ({floor_s:.3f} s)")
    print(f"ratio (a)/(b): {ours_rate / plain_rate:.2f}x  (goal: 3x or more); "
          f"(c)/(b): {floor_rate / plain_rate:.2f}x")


if __name__ == "__main__":
    main(sys.argv[1:])
