"""Capture under concurrency: threads, asyncio tasks and forked workers.

Every event must land under the right correlation id (checked through the
parent links, down to the request that caused it), none may be lost with the
file sink when nothing fails, no line may be torn or interleaved, and forked
workers must capture on their own without deadlock or duplicates.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

import pytest_replay as replay


@replay.traced
def leaf(request: str, step: int) -> str:
    replay.variable("step", step)
    return f"{request}:{step}"


@replay.traced
def middle(request: str) -> list[str]:
    return [leaf(request, 0), leaf(request, 1)]


@replay.traced
def serve(request: str) -> int:
    return len(middle(request))


EVENTS_PER_REQUEST = 2 * 4 + 2  # serve, middle, 2 x leaf: entry+exit; 2 variable changes


@replay.traced
async def aleaf(request: str, step: int) -> str:
    await asyncio.sleep(0)
    replay.variable("step", step)
    return f"{request}:{step}"


@replay.traced
async def aserve(request: str) -> int:
    first = await aleaf(request, 0)
    await asyncio.sleep(0)
    second = leaf(request, 1)  # a sync call inside a task
    return len([first, second])


def read_all(path: Path) -> list[dict[str, Any]]:
    """Every line, each a whole JSON object (a torn or interleaved line fails here)."""
    data = path.read_bytes()
    assert data.endswith(b"\n")
    return [orjson.loads(line) for line in data.splitlines()]


def check_parentage(events: list[dict[str, Any]], requests: set[str]) -> None:
    """Each event belongs to a call of its own request, reached through parent links."""
    entries = {e["correlation_id"]: e for e in events if e["event_type"] == "function_entry"}
    assert len(entries) == sum(1 for e in events if e["event_type"] == "function_entry")

    def request_of(cid: str) -> str:
        entry = entries[cid]
        while "parent_correlation_id" in entry:
            entry = entries[entry["parent_correlation_id"]]
        return str(entry["correlation_id"])

    per_request: Counter[str] = Counter()
    for event in events:
        request = request_of(event["correlation_id"])
        per_request[request] += 1
        if event["event_type"] == "function_entry":
            assert event["args"]["request"] == request, event
            if "parent_correlation_id" in event:
                assert event["trace_id"] == request
        elif event["event_type"] == "function_exit" and isinstance(event["return_value"], str):
            assert event["return_value"].startswith(f"{request}:")
    assert set(per_request) == requests


def test_threads_keep_every_event_under_its_request(restore_capture: None,
                                                    tmp_path: Path) -> None:
    path = tmp_path / "threads.jsonl"
    replay.configure(path=path)
    threads, per_thread = 32, 40
    failures: list[BaseException] = []
    start = threading.Barrier(threads)

    def worker(index: int) -> None:
        try:
            start.wait()
            for n in range(per_thread):
                request = f"req_t{index}_{n}"
                with replay.request_scope(request):
                    assert serve(request) == 2
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(60)
    replay.shutdown()
    assert failures == []
    events = read_all(path)
    assert len(events) == threads * per_thread * EVENTS_PER_REQUEST
    stats = replay.stats()
    assert (stats["written"], stats["dropped"]) == (len(events), 0)
    check_parentage(events, {f"req_t{i}_{n}" for i in range(threads) for n in range(per_thread)})


def test_a_thousand_tasks_keep_every_event_under_their_request(restore_capture: None,
                                                               tmp_path: Path) -> None:
    path = tmp_path / "tasks.jsonl"
    replay.configure(path=path)
    tasks = 1000

    async def one(index: int) -> int:
        request = f"req_a{index}"
        with replay.request_scope(request):
            await asyncio.sleep(0)
            return await aserve(request)

    async def everything() -> list[int]:
        return list(await asyncio.gather(*(one(i) for i in range(tasks))))

    assert asyncio.run(everything()) == [2] * tasks
    replay.shutdown()
    events = read_all(path)
    per_request = 3 * 2 + 2  # aserve, aleaf, leaf: entry+exit; 2 variable changes
    assert len(events) == tasks * per_request
    check_parentage(events, {f"req_a{i}" for i in range(tasks)})


FORK_SCRIPT = """
import os, sys, threading
import pytest_replay as replay

@replay.traced
def leaf(request, step):
    replay.variable("step", step)
    return f"{request}:{step}"

@replay.traced
def middle(request):
    return [leaf(request, 0), leaf(request, 1)]

@replay.traced
def serve(request):
    return len(middle(request))

def requests(prefix, count):
    for n in range(count):
        request = f"req_{prefix}_{n}"
        with replay.request_scope(request):
            serve(request)

# A long interval: the parent's first requests are still buffered when it forks.
replay.configure(sink=replay.FileSink(PATH, flush_interval=FLUSH_INTERVAL))
requests("parent", 50)

stop = threading.Event()
def busy():
    n = 0
    while not stop.is_set():
        requests(f"busy{n}", 1)
        n += 1
busy_thread = threading.Thread(target=busy)
busy_thread.start()  # forks happen while another thread is capturing and writing

children = []
for worker in range(WORKERS):
    pid = os.fork()
    if pid == 0:
        requests(f"child{worker}", 100)
        sys.exit(0)  # interpreter exit flushes the child's own buffer
    children.append(pid)
stop.set()
busy_thread.join()
for pid in children:
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, status
requests("after", 10)
print(replay.stats()["dropped"])
# no shutdown(): the interpreter's exit flushes the parent too
"""


def _run_fork_script(path: Path, workers: int, flush_interval: float) -> list[dict[str, Any]]:
    script = (f"PATH = {str(path)!r}\nWORKERS = {workers}\nFLUSH_INTERVAL = {flush_interval}\n"
              + textwrap.dedent(FORK_SCRIPT))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.strip() == b"0", done.stdout
    return read_all(path)


def test_forked_workers_capture_on_their_own(tmp_path: Path) -> None:
    workers = 4
    for flush_interval in (60.0, 0.001):  # parent buffer kept at fork / writer busy at fork
        path = tmp_path / f"fork-{flush_interval}.jsonl"
        events = _run_fork_script(path, workers, flush_interval)
        roots = Counter(e["correlation_id"] for e in events
                        if e["event_type"] == "function_entry" and e["function_name"] == "serve")
        assert all(count == 1 for count in roots.values()), roots.most_common(3)  # no duplicates
        expected = ({f"req_parent_{n}" for n in range(50)}
                    | {f"req_child{w}_{n}" for w in range(workers) for n in range(100)}
                    | {f"req_after_{n}" for n in range(10)})
        assert expected <= set(roots)
        busy = {request for request in roots if request.startswith("req_busy")}
        check_parentage(events, expected | busy)
        assert len(events) == len(roots) * EVENTS_PER_REQUEST
        ids = [e["correlation_id"] for e in events if e["event_type"] == "function_entry"]
        assert len(ids) == len(set(ids))  # parent and children never share a generated id
