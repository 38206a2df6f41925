"""Benchmark: what ``@traced`` adds to a call, beside its peers, in one run.

Run ``python tests/benchmarks/bench_capture.py [calls] [rounds]``. It prints
the cost of one call of ``tax(amount, rate)`` (two float arguments, a float
result: the shape of the demo's ``calculate_tax``) made

(a) bare, no wrapper;
(b) through ``@traced`` with capture inactive (never configured);
(c) through ``@traced`` with a :class:`FileSink` writing into a temporary
    directory, called inside a traced parent (the common case: most calls
    are nested); each round ends with ``flush()``, so the background
    writer's work (joining lines, ``write(2)``) is inside the figure;
(d) the same, each call being its own top-level request (root ids);
(e) a naive wrapper that builds entry/exit dicts, ``orjson.dumps`` them and
    appends the lines to a list written to a file at the end of the round;
    it is measured twice: keeping ``orjson.dumps``'s bytes as they come (each
    holds a buffer of about 4 KB, so a round's list touches ~160 MB) and
    keeping a copy of each line at its own size, the fairer peer;
(f) an OpenTelemetry SDK span (``TracerProvider`` + ``BatchSpanProcessor`` +
    in-memory exporter, ``force_flush`` at the end of the round) carrying
    the same arguments and result as attributes, inside a parent span;

then the added nanoseconds per call (minus the bare call) and the ratios
OpenTelemetry / ours and naive / ours. It also times whole requests with
capture off and on: the demo's ``process_order`` end to end (a sqlite read,
an update and commit, and a charge over HTTP to the demo gateway on
127.0.0.1, all of it recorded) and a CPU-only request (a cart of 20 items
priced, taxed and its 2 KB JSON receipt encoded, through 5 traced calls: no
I/O at all, the worst case for a ratio).

Rounds of every case are interleaved and each case keeps its best round, so
a noisy neighbour does not decide the result; the median is printed too.

The first line says which implementation ran ``@traced`` (the C accelerator or
pure Python). When it was the accelerator, the per-call table is measured again
in a subprocess with ``TELEMETRY_REPLAY_PURE_PYTHON=1``, so both are printed
from one run; ``--per-call-only`` prints the table alone (what that subprocess does),
``--requests-only`` the whole requests alone.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import orjson

import pytest_replay as replay
from pytest_replay.capture import textscan
from pytest_replay.capture._speedups_loader import SPEEDUPS, implementation
from pytest_replay.capture.runtime import RUNTIME
from pytest_replay.native_switch import PURE_PYTHON_ENV

Case = Callable[[int], None]


def tax(amount: float, rate: float) -> float:
    """The measured function: as small as the demo's ``calculate_tax``."""
    return amount * rate


# -- the peers -------------------------------------------------------------------------

_NAIVE_FRAME: ContextVar[str | None] = ContextVar("naive_frame", default=None)
_naive_ids = itertools.count(1)


def naive_traced(function: Callable[..., Any], lines: list[bytes], *, copy: bool = False
                 ) -> Callable[..., Any]:
    """What a first attempt looks like: dicts per event, one dumps each, a contextvar.

    ``copy`` keeps each line at its own size (``orjson.dumps`` returns bytes
    holding a buffer of about 4 KB, which a list of lines keeps alive).
    """
    names = function.__code__.co_varnames[: function.__code__.co_argcount]
    keep: Callable[[bytes], Any] = (
        (lambda line: lines.append(memoryview(line).tobytes())) if copy else lines.append)

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        cid = f"n{next(_naive_ids)}"
        parent = _NAIVE_FRAME.get()
        token = _NAIVE_FRAME.set(cid)
        started = time.time_ns()
        keep(orjson.dumps({
            "event_type": "function_entry", "timestamp_ns": started, "correlation_id": cid,
            "parent_correlation_id": parent, "function_name": function.__name__,
            "module": function.__module__, "qualname": function.__qualname__,
            "args": {**dict(zip(names, args, strict=False)), **kwargs}},
            option=orjson.OPT_APPEND_NEWLINE))
        try:
            result = function(*args, **kwargs)
        finally:
            _NAIVE_FRAME.reset(token)
        now = time.time_ns()
        keep(orjson.dumps({
            "event_type": "function_exit", "timestamp_ns": now, "correlation_id": cid,
            "function_name": function.__name__, "return_value": result,
            "duration_ns": now - started}, option=orjson.OPT_APPEND_NEWLINE))
        return result

    return wrapper


def otel_case(calls: int) -> tuple[Case, Callable[[], None]]:
    """OpenTelemetry SDK spans around ``tax``, inside a parent span, batch-exported to memory."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=max(calls * 2, 8192),
                                                   max_export_batch_size=4096))
    tracer = provider.get_tracer("bench")

    def spanned(amount: float, rate: float) -> float:
        with tracer.start_as_current_span("tax") as span:
            span.set_attribute("amount", amount)
            span.set_attribute("rate", rate)
            result = tax(amount, rate)
            span.set_attribute("return_value", result)
            return result

    def run(n: int) -> None:
        with tracer.start_as_current_span("parent"):
            for _ in range(n):
                spanned(100.0, 0.08)
        provider.force_flush()
        exporter.clear()

    return run, provider.shutdown


# -- the cases -------------------------------------------------------------------------


def plain_loop(function: Callable[[float, float], float]) -> Case:
    """``n`` calls of ``function`` from a plain loop."""
    def run(n: int) -> None:
        for _ in range(n):
            function(100.0, 0.08)

    return run


def naive_case(path: Path, *, copy: bool) -> Case:
    """The naive wrapper around ``tax``, nested in a naive parent, its lines written to ``path``."""
    lines: list[bytes] = []
    naive_tax = naive_traced(tax, lines, copy=copy)

    @functools.wraps(naive_tax)
    def naive_parent(n: int) -> None:
        for _ in range(n):
            naive_tax(100.0, 0.08)

    nested = naive_traced(naive_parent, lines, copy=copy)

    def run(n: int) -> None:
        nested(n)
        with path.open("ab") as stream:
            stream.write(b"".join(lines))
        lines.clear()

    return run


def build_cases(calls: int, directory: Path) -> tuple[dict[str, Case], Callable[[], None]]:
    """Every case, ready to run; and what to call at the end."""
    traced_tax = replay.traced(tax)

    @replay.traced
    def nested(n: int) -> None:
        for _ in range(n):
            traced_tax(100.0, 0.08)

    sink = replay.FileSink(directory / "bench.jsonl", max_bytes=0, max_buffer=4 * calls)

    def with_capture(run: Case) -> Case:
        def timed(n: int) -> None:
            RUNTIME.sink, RUNTIME.active = sink, True
            run(n)
            sink.flush()
            RUNTIME.active = False

        return timed

    def inactive(n: int) -> None:
        RUNTIME.active = False
        plain_loop(traced_tax)(n)

    naive = naive_case(directory / "naive.jsonl", copy=False)
    naive_copied = naive_case(directory / "naive-copied.jsonl", copy=True)

    otel, otel_shutdown = otel_case(calls)
    cases = {
        "bare call": plain_loop(tax),
        "@traced, capture inactive": inactive,
        "@traced, FileSink (nested call)": with_capture(nested),
        "@traced, FileSink (root call)": with_capture(plain_loop(traced_tax)),
        "naive dict wrapper": naive,
        "naive dict wrapper, lines copied": naive_copied,
        "OpenTelemetry SDK span": otel,
    }

    def finish() -> None:
        sink.close()
        otel_shutdown()

    return cases, finish


def measure(cases: dict[str, Case], calls: int, rounds: int,
            clock: Callable[[], int] = time.perf_counter_ns) -> dict[str, list[float]]:
    """Interleaved rounds; ns per call of every round of every case, by ``clock``."""
    results: dict[str, list[float]] = {name: [] for name in cases}
    for run in cases.values():
        run(min(calls, 2000))  # warm up
    for _ in range(rounds):
        for name, run in cases.items():
            started = clock()
            run(calls)
            results[name].append((clock() - started) / calls)
    return results


# -- whole requests --------------------------------------------------------------------


@replay.traced
def load_cart(order_id: int) -> list[dict[str, Any]]:
    """A cart of 20 lines, as a database would return it."""
    return [{"sku": f"SKU-{order_id % 97}-{index}", "qty": 1 + index % 3,
             "price": 3.5 + index * 1.25, "title": f"Item number {index} of order {order_id}"}
            for index in range(20)]


@replay.traced
def price(items: list[dict[str, Any]]) -> float:
    """Line totals with a volume discount, sorted for the receipt."""
    totals = sorted((item["qty"] * item["price"] * (0.95 if item["qty"] > 2 else 1.0)
                     for item in items), reverse=True)
    return float(round(sum(totals), 2))


@replay.traced
def tax_for(amount: float, rate: float) -> float:
    """Tax on the subtotal."""
    return float(round(amount * rate, 2))


@replay.traced
def receipt(order_id: int, items: list[dict[str, Any]], subtotal: float, tax: float) -> int:
    """The 2 KB JSON receipt a response would carry; returns its size."""
    body = json.dumps({"order_id": order_id, "items": items, "subtotal": subtotal, "tax": tax,
                       "total": round(subtotal + tax, 2)}, sort_keys=True)
    return len(body)


@replay.traced
def handle(order_id: int, user_id: int) -> int:
    """One realistic request: load, price, tax, encode."""
    items = load_cart(order_id)
    subtotal = price(items)
    return receipt(order_id, items, subtotal, tax_for(subtotal, 0.08))


def request_cases(directory: Path, gateway_url: str) -> dict[str, Case]:
    """Whole requests with capture off and on (a FileSink; one request scope each).

    The demo request is the real one: it reads and updates the order in a sqlite
    database in ``directory`` and charges it through the demo gateway at
    ``gateway_url`` (a real HTTP server on 127.0.0.1), so capture records one
    read, one write and commit, and one HTTP call per request.
    """
    from demo import shop, store

    database = directory / "shop.db"
    store.create(database)
    os.environ["SHOP_DB"] = str(database)
    os.environ["PAYMENTS_URL"] = gateway_url

    sink = replay.FileSink(directory / "requests.jsonl", max_bytes=0)

    def off(target: Callable[[int], Any]) -> Case:
        def run(n: int) -> None:
            RUNTIME.active = False
            for index in range(n):
                target(index)

        return run

    def on(target: Callable[[int], Any]) -> Case:
        def run(n: int) -> None:
            RUNTIME.sink, RUNTIME.active = sink, True
            for index in range(n):
                with replay.request_scope(f"req_{index}"):
                    target(index)
            sink.flush()
            RUNTIME.active = False

        return run

    def demo(index: int) -> Any:
        return shop.process_order(777, 1001)

    def realistic(index: int) -> Any:
        return handle(1000 + index, 42)

    return {"demo off": off(demo), "demo on": on(demo),
            "realistic off": off(realistic), "realistic on": on(realistic)}


def report(results: dict[str, list[float]]) -> None:
    """Print the per-call table and the ratios."""
    best = {name: min(values) for name, values in results.items()}
    bare = best["bare call"]
    print(f"{'case':<34} {'best ns/call':>12} {'median':>9} {'added ns':>9}")
    for name, values in results.items():
        added = best[name] - bare if name != "bare call" else 0.0
        print(f"{name:<34} {best[name]:>12.0f} {statistics.median(values):>9.0f} {added:>9.0f}")
    ours = best["@traced, FileSink (nested call)"] - bare
    ours_root = best["@traced, FileSink (root call)"] - bare
    otel = best["OpenTelemetry SDK span"] - bare
    naive = best["naive dict wrapper"] - bare
    naive_copied = best["naive dict wrapper, lines copied"] - bare
    print()
    print(f"OpenTelemetry / ours (nested): {otel / ours:5.1f}x   "
          f"(root calls: {otel / ours_root:.1f}x)")
    print(f"naive / ours (nested):         {naive / ours:5.1f}x   "
          f"(lines copied: {naive_copied / ours:.1f}x)")
    print(f"inactive wrapper adds:         {best['@traced, capture inactive'] - bare:5.0f} ns")


def report_requests(results: dict[str, list[float]], title: str) -> None:
    """Print per-request times with capture off and on."""
    best = {name: min(values) for name, values in results.items()}
    print()
    print(title)
    print(f"{'request':<34} {'off us':>9} {'on us':>9} {'added us':>9} {'overhead':>9}")
    for label, key in (("demo process_order (db + http)", "demo"),
                       ("realistic (5 calls, 2 KB JSON)", "realistic")):
        off, on = best[f"{key} off"] / 1000, best[f"{key} on"] / 1000
        print(f"{label:<34} {off:>9.2f} {on:>9.2f} {on - off:>9.2f} {(on - off) / off:>8.1%}")


def report_pure_python(calls: int, rounds: int) -> None:
    """The per-call table again, measured in a subprocess that runs the pure-Python wrapper."""
    env = {**os.environ, PURE_PYTHON_ENV: "1"}
    done = subprocess.run([sys.executable, __file__, str(calls), str(rounds), "--per-call-only"],
                          env=env, capture_output=True, text=True, check=False)
    print()
    print(f"The same with {PURE_PYTHON_ENV}=1 (another process):")
    print(done.stdout.rstrip() if done.returncode == 0 else f"failed: {done.stderr[-2000:]}")


def main(argv: list[str]) -> int:
    """Entry point: ``[calls] [rounds] [--per-call-only | --requests-only]``."""
    per_call_only = "--per-call-only" in argv
    requests_only = "--requests-only" in argv
    argv = [arg for arg in argv if arg not in ("--per-call-only", "--requests-only")]
    calls = int(argv[1]) if len(argv) > 1 else 20_000
    rounds = int(argv[2]) if len(argv) > 2 else 15
    with tempfile.TemporaryDirectory() as temporary:
        directory = Path(temporary)
        replay.configure(sink=replay.MemorySink())  # sets defaults; cases swap in their sinks
        print(f"python {sys.version.split()[0]}, {calls} calls x {rounds} rounds, "
              f"@traced: {implementation()}, value walks: {textscan.implementation()}")
        if not requests_only:
            cases, finish = build_cases(calls, directory)
            try:
                results = measure(cases, calls, rounds)
            finally:
                finish()
            report(results)
        if per_call_only:
            replay.shutdown()
            return 0
        if SPEEDUPS is not None and not requests_only:
            report_pure_python(calls, rounds)
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the demo package
        from demo import payments

        with payments.gateway() as gateway_url:
            requests = request_cases(directory, gateway_url)
            per_round = max(1, calls // 100)
            report_requests(measure(requests, per_round, rounds), "wall time per request:")
            # The calling thread's CPU: the loopback network's jitter is not in it (the
            # writer thread's work is not either: it is in the wall time above).
            report_requests(measure(requests, per_round, rounds, time.thread_time_ns),
                            "CPU time of the calling thread per request:")
        replay.shutdown()
        for sink_file in directory.glob("*.jsonl"):
            sink_file.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
