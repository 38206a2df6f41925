"""Benchmark: reading and modelling a trace against a bare ``json.loads`` loop.

Run ``python tests/benchmarks/bench_reader.py [events] [roots]``. It writes a
synthetic trace of realistic events (calls with arguments, tagged values,
variable changes, context, errors, incidents without a root exit) to a
temporary directory and prints events per second for

(a) ``read_trace`` + ``build_trace`` (every line parsed and its fields
    checked, line numbers, frames, roots, incidents), and
(b) a plain ``json.loads`` per line loop that builds nothing,

and the ratio (a) / (b). The goal is 3x or more. For scale it also prints
(c) ``orjson.loads`` per line keeping every event as a dict and checking
    nothing: what a reader that keeps decoded events pays at least, and
(d) the file read in chunks, split into lines and each line parsed by
    ``orjson.loads`` and dropped: the ceiling of any reader that parses every
    line with orjson (it must, to report a bad line) and keeps anything.

Each side runs a few times and keeps its best run, so a noisy neighbour does
not decide the result; the sides take turns, so a slow spell hits them alike.

With ``--stages`` it then prints where (a)'s time goes: the reader's work
rebuilt one stage at a time, each stage timed with the ones before it.
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

from pytest_replay.format.lines import KnownShapes
from pytest_replay.format.native import NATIVE_REGION, implementation
from pytest_replay.format.reader import paused_gc, read_trace
from pytest_replay.model import build_trace

START_NS = 1_698_765_432_123_456_789
REPEATS = 5
CHUNK = 64 * 1024


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


def _best(*runs: Callable[[], int]) -> list[tuple[float, int]]:
    """Each run's best time and its count, the runs taking turns."""
    best = [float("inf")] * len(runs)
    counts = [0] * len(runs)
    for _ in range(REPEATS):
        for index, run in enumerate(runs):
            started = time.perf_counter()
            counts[index] = run()
            best[index] = min(best[index], time.perf_counter() - started)
    return list(zip(best, counts))  # noqa: B905 - same length


def _chunks(path: Path) -> Iterator[list[bytes]]:
    """The complete lines of ``path``, a chunk at a time, as the reader splits them."""
    with path.open("rb") as stream:
        rest = b""
        while chunk := stream.read(CHUNK):
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            yield lines


def _stages(path: Path, total: int) -> None:
    """Print the reader's cost stage by stage, each stage including those before it."""
    loads = orjson.loads

    def split() -> int:
        return sum(map(len, _chunks(path)))

    def parse() -> int:
        return sum(len(list(map(loads, lines))) for lines in _chunks(path))

    def keep() -> int:
        kept: list[bytes] = []
        with paused_gc():
            for lines in _chunks(path):
                list(map(loads, lines))
                kept += lines
        return len(kept)

    def check() -> int:
        kept: list[bytes] = []
        shapes = KnownShapes()
        with paused_gc():
            for lines in _chunks(path):
                events = list(map(loads, lines))
                kept += lines
                found = {(*event, *map(type, event.values())) for event in events}
                assert all(map(shapes.admit, found - shapes.shapes))
        return len(kept)

    def read() -> int:
        return len(read_trace(path).events)

    def model() -> int:
        return sum(len(root.events) for root in build_trace(read_trace(path)).roots)

    def chunks() -> int:
        with path.open("rb") as stream:
            while stream.read1(CHUNK):
                pass
        return total

    if NATIVE_REGION is not None:  # the C reader neither splits nor runs orjson
        stages: tuple[tuple[str, Callable[[], int]], ...] = (
            ("read 64 KiB chunks", chunks),
            ("+ check lines, make LineEvents (C): read_trace", read),
            ("+ build_trace (C), free it all      (a)", model))
    else:
        stages = (("read 64 KiB chunks, split into lines", split),
                  ("+ orjson.loads each line, dropped  (d)", parse),
                  ("+ keep the lines' bytes", keep),
                  ("+ check field types (shapes)", check),
                  ("+ copy fields, make LineEvents: read_trace", read),
                  ("+ build_trace, free it all         (a)", model))
    timed = _best(*(run for _label, run in stages))
    before = 0.0
    print("where (a)'s time goes, microseconds per event:")
    for (label, _run), (seconds, count) in zip(stages, timed):  # noqa: B905 - same length
        assert count == total, (label, count)
        micro = seconds * 1e6 / total
        print(f"  {label:48s} {micro:6.3f}  (+{micro - before:.3f})")
        before = micro


def main(argv: list[str]) -> None:
    """Write the trace, time both sides and print the numbers."""
    stages = "--stages" in argv
    argv = [arg for arg in argv if arg != "--stages"]
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

        def kept() -> int:
            with path.open("rb") as stream:
                events = [orjson.loads(line) for line in stream if line.strip()]
            return len(events)

        def ceiling() -> int:
            count = 0
            for lines in _chunks(path):
                for _event in map(orjson.loads, lines):
                    count += 1
            return count

        (ours_s, ours_n), (plain_s, plain_n), (kept_s, kept_n), (ceil_s, ceil_n) = _best(
            ours, plain, kept, ceiling)
        assert ours_n == plain_n == kept_n == ceil_n == total, (ours_n, plain_n, kept_n, ceil_n)
        _report(total, roots, ours_s, plain_s, kept_s, ceil_s)
        if stages:
            _stages(path, total)


def _report(total: int, roots: int, ours_s: float, plain_s: float, kept_s: float,
            ceil_s: float) -> None:
    plain_rate = total / plain_s
    print(f"events: {total:,}  roots: {roots:,}  (best of {REPEATS}); reader: {implementation()}")
    for label, seconds in (("(a) read_trace + build_trace:   ", ours_s),
                           ("(b) json.loads per line:        ", plain_s),
                           ("(c) orjson.loads, dicts kept:   ", kept_s),
                           ("(d) orjson.loads, nothing kept: ", ceil_s)):
        print(f"{label}{total / seconds:12,.0f} events/s  ({seconds:.3f} s)")
    print(f"ratio (a)/(b): {total / ours_s / plain_rate:.2f}x  (goal: 3x or more); "
          f"(c)/(b): {total / kept_s / plain_rate:.2f}x; "
          f"(d)/(b): {total / ceil_s / plain_rate:.2f}x (the ceiling)")


if __name__ == "__main__":
    main(sys.argv[1:])
