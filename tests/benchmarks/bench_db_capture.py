"""Benchmark: what database capture adds to a query and to a request, beside raw calls.

Run ``python tests/benchmarks/bench_db_capture.py [rounds]`` with the local
PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) running. It measures,
in one process and with rounds interleaved (each case keeps its best round;
medians are printed too):

(a) one psycopg query (``SELECT ... WHERE id = %s`` then ``fetchone``),
    raw: capture never installed;
(b) the same with capture installed but the request not sampled;
(c) the same inside a sampled request, written by a :class:`FileSink` into a
    temporary directory (the round ends with ``flush()``, so the writer
    thread's work is inside the figure);
(d) a request: a ``@traced`` handler that reads one row by key, reads 10
    rows, updates one and commits, raw versus captured, and captured without
    database capture (what the four ``db_call`` events add on their own).
    Against a local server each statement takes ~50 us, far less than in
    production, so this is the worst case for the ratio;
(e) the same request where each statement also spends 0.3 ms in the server
    (``pg_sleep``), the order of a database on another host: the realistic
    case the 5% goal is about;
(f) one Redis ``GET``, raw versus captured, and a request of GET + SET + INCR.

and prints each captured figure beside its raw peer as a ratio. Two clocks
are read: wall time (what a user waits; noisy when other processes compete
for the CPU) and this process's CPU time (all its threads, the sink's writer
included; what capture costs, and steady under load). Capture does no I/O
of its own on the request path, so on an idle machine the wall time it adds
equals the CPU time it adds: the "estimated" ratio is raw wall time plus
added CPU time, over raw wall time.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import redis

import pytest_replay as replay
from pytest_replay.capture.db import install_db_capture, uninstall_db_capture
from pytest_replay.capture.runtime import RUNTIME

DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
Case = Callable[[], None]


def timed(case: Case, repeat: int) -> tuple[float, float]:
    """Wall and process-CPU nanoseconds per call of ``case`` (sink flushed inside)."""
    wall, cpu = time.perf_counter_ns(), time.process_time_ns()
    for _ in range(repeat):
        case()
    sink = RUNTIME.sink
    if sink is not None:
        sink.flush()
    return ((time.perf_counter_ns() - wall) / repeat, (time.process_time_ns() - cpu) / repeat)


def switch(mode: str, folder: Path, batch: int) -> None:
    """Capture ``off``, ``idle`` (database capture installed, nothing sampled), ``traced``
    (requests and ``@traced`` captured, database capture not installed) or ``on``."""
    replay.shutdown()
    uninstall_db_capture()
    if mode in ("idle", "on"):
        install_db_capture()
    if mode in ("traced", "on"):
        replay.configure(path=folder / f"batch{batch}.jsonl")


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    table = f"bench_{uuid.uuid4().hex[:8]}"
    key = f"bench:{uuid.uuid4().hex[:8]}"
    with psycopg.connect(DSN, autocommit=True) as admin:
        admin.execute(f"create table {table} (id int primary key, name text, amount numeric)")
        admin.execute(f"insert into {table} select g, 'item ' || g, g * 1.5 "
                      "from generate_series(1, 200) g")
    connection = psycopg.connect(DSN)
    connection.execute("set synchronous_commit = off")  # time the CPU, not the disk's fsync
    connection.commit()
    cache = redis.Redis(host="127.0.0.1", port=6379)
    cache.set(key, "x" * 64)
    folder = Path(tempfile.mkdtemp(prefix="bench_db_"))

    def query() -> None:
        with replay.request_scope():
            connection.execute(f"select id, name, amount from {table} where id = %s",
                               (42,)).fetchone()
            connection.rollback()

    def handler(server_time: str) -> Callable[[int], list[Any]]:
        """The request's handler; ``server_time`` is added to each statement's WHERE."""

        @replay.traced
        def handle(order_id: int) -> list[Any]:
            row = connection.execute(f"select id, name, amount from {table} "
                                     f"where id = %s{server_time}", (order_id,)).fetchone()
            page = connection.execute(f"select id, name from {table} where id > %s"
                                      f"{server_time} order by id limit 10",
                                      (order_id,)).fetchall()
            connection.execute(f"update {table} set amount = amount where id = %s{server_time}",
                               (order_id,))
            connection.commit()
            return [row, len(page)]

        return handle

    local = handler("")
    remote = handler(" and (select true from pg_sleep(0.0003))")

    def request() -> None:
        with replay.request_scope():
            local(42)

    def remote_request() -> None:
        with replay.request_scope():
            remote(42)

    def get() -> None:
        with replay.request_scope():
            cache.get(key)

    @replay.traced
    def visit(user: str) -> int:
        cache.get(key)
        cache.set(f"{key}:last", user)
        return int(cache.incr(f"{key}:n"))

    def cache_request() -> None:
        with replay.request_scope():
            visit("ann")

    # name: (case, calls per batch, capture mode); each row of PAIRS is timed back to back
    cases: dict[str, tuple[Case, int, str]] = {
        "query raw": (query, 100, "off"),
        "query installed, unsampled": (query, 100, "idle"),
        "query captured": (query, 100, "on"),
        "request raw": (request, 40, "off"),
        "request, no db capture": (request, 40, "traced"),
        "request captured": (request, 40, "on"),
        "remote-like request raw": (remote_request, 10, "off"),
        "remote-like request captured": (remote_request, 10, "on"),
        "redis GET raw": (get, 200, "off"),
        "redis GET captured": (get, 200, "on"),
        "redis request raw": (cache_request, 80, "off"),
        "redis request captured": (cache_request, 80, "on"),
    }
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    batch = 0
    try:
        for _round in range(rounds):
            for name, (case, repeat, mode) in cases.items():
                batch += 1
                switch(mode, folder, batch)
                case()  # warm
                results[name].append(timed(case, repeat))
    finally:
        replay.shutdown()
        uninstall_db_capture()
        connection.close()
        cache.delete(key, f"{key}:last", f"{key}:n")
        cache.close()
        with psycopg.connect(DSN, autocommit=True) as admin:
            admin.execute(f"drop table {table}")
        shutil.rmtree(folder, ignore_errors=True)
    report(cases, results, rounds)


def report(cases: dict[str, tuple[Case, int, str]],
           results: dict[str, list[tuple[float, float]]], rounds: int) -> None:
    """Print each case, then each captured case beside its raw peer."""
    wall = {name: min(w for w, _c in values) for name, values in results.items()}
    cpu = {name: min(c for _w, c in values) for name, values in results.items()}
    median = {name: statistics.median(w for w, _c in values) for name, values in results.items()}
    print(f"database capture: best batch of {rounds} interleaved rounds\n")
    print(f"{'case':30} {'wall ns':>10} {'median':>10} {'cpu ns':>10}")
    for name in cases:
        print(f"{name:30} {wall[name]:10.0f} {median[name]:10.0f} {cpu[name]:10.0f}")
    print()
    pairs = [("query installed, unsampled", "query raw"), ("query captured", "query raw"),
             ("request captured", "request raw"),
             ("request captured", "request, no db capture"),
             ("remote-like request captured", "remote-like request raw"),
             ("redis GET captured", "redis GET raw"),
             ("redis request captured", "redis request raw")]
    print(f"{'captured vs raw':64} {'wall':>7} {'+cpu ns':>8} {'estimated':>10}")
    for ours, peer in pairs:
        added = cpu[ours] - cpu[peer]
        print(f"{ours + ' / ' + peer:64} {wall[ours] / wall[peer]:7.3f} {added:8.0f} "
              f"{(wall[peer] + added) / wall[peer]:10.3f}")
    print()
    for label, name in (("local server, trivial statements (worst case)", "request"),
                        ("0.3 ms per statement in the server (realistic)", "remote-like request")):
        added = cpu[f"{name} captured"] - cpu[f"{name} raw"]
        print(f"request of 3 statements + commit, {label}: "
              f"{added / wall[f'{name} raw']:+.1%} estimated, "
              f"{wall[f'{name} captured'] / wall[f'{name} raw'] - 1:+.1%} measured wall")
    print("goal: under +5% on a realistic request")


if __name__ == "__main__":
    main()
