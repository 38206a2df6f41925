"""Soak run: capture under sustained concurrent load, with and without a failing disk.

Run ``python tests/reliability/soak_capture.py [seconds] [threads]`` (defaults
60 s and 16 threads). Phase 1 writes to a healthy file for half the time and
then checks that every event is accounted for: written (in the file or its
rotated backups), or dropped and counted when the load outran the disk
(capture drops rather than blocks). No line may be torn. Phase 2 points the
sink at a file that alternates between a full disk (a link to /dev/full) and a
healthy file. It checks that
requests always complete with the right results, that drops are counted, and
that writing resumes each time the fault clears. It prints the figures
docs/security.md keeps, and exits 1 if any check fails.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest_replay as replay


@replay.traced
def price(amount: float, rate: float) -> float:
    """A small traced call."""
    return round(amount * (1 + rate), 2)


@replay.traced
def handle(request_number: int) -> float:
    """A request: three nested traced calls and a variable."""
    replay.variable("request_number", request_number)
    return price(request_number * 1.5, 0.08) + price(1.0, 0.2)


def load(seconds: float, threads: int, counter: list[int], slowest: list[float]) -> None:
    """Run requests from ``threads`` threads for ``seconds``; count them, keep the slowest."""
    deadline = time.monotonic() + seconds
    lock = threading.Lock()

    def worker(index: int) -> None:
        number = 0
        while time.monotonic() < deadline:
            number += 1
            request = index * 10_000_000 + number
            started = time.perf_counter()
            with replay.request_scope(f"req_{request}"):
                result = handle(request)
            elapsed = time.perf_counter() - started
            expected = round(request * 1.5 * 1.08, 2) + 1.2
            if abs(result - expected) > 1e-6:
                raise AssertionError(f"request {request} returned {result}, not {expected}")
            with lock:
                counter[0] += 1
                slowest[0] = max(slowest[0], elapsed)

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()


def healthy_phase(directory: Path, seconds: float, threads: int) -> list[str]:
    """Every event of every request lands, whole."""
    path = directory / "soak.jsonl"
    replay.configure(path=path, capture_http=False, capture_db=False, capture_chance=False)
    counter, slowest = [0], [0.0]
    load(seconds, threads, counter, slowest)
    replay.shutdown()
    dropped = int(replay.stats().get("dropped", 0))
    failures = []
    lines = torn = 0
    for file in sorted(directory.glob("soak.jsonl*")):  # rotated backups too
        with file.open("rb") as stream:
            for raw in stream:
                lines += 1
                try:
                    json.loads(raw)
                except ValueError:
                    torn += 1
    produced = counter[0] * 7  # 3 entries, 3 exits, 1 variable per request
    if torn:
        failures.append(f"{torn} torn lines")
    if lines + dropped != produced:
        failures.append(f"{lines} written + {dropped} dropped != {produced} produced")
    print(f"healthy disk: {counter[0]} requests from {threads} threads in {seconds:.0f} s, "
          f"{produced} events: {lines} written, {dropped} dropped and counted (load beyond "
          f"what the writer keeps up with), {produced - lines - dropped} unaccounted, "
          f"{torn} torn; slowest request {slowest[0] * 1000:.2f} ms")
    return failures


def faulty_phase(directory: Path, seconds: float, threads: int) -> list[str]:
    """Requests complete while the disk fails and recovers, over and over."""
    path = directory / "faulty.jsonl"
    path.symlink_to("/dev/full")
    sink = replay.configure(path=path, capture_http=False, capture_db=False,
                            capture_chance=False)
    counter, slowest = [0], [0.0]
    stop = threading.Event()
    flips = [0]

    def flip() -> None:
        while not stop.wait(0.5):
            path.unlink()
            if flips[0] % 2 == 0:
                path.write_bytes(b"")
            else:
                path.symlink_to("/dev/full")
            flips[0] += 1

    flipper = threading.Thread(target=flip)
    flipper.start()
    load(seconds, threads, counter, slowest)
    stop.set()
    flipper.join()
    stats = replay.stats()
    replay.shutdown()
    del sink
    written = stats.get("written", 0)
    dropped = stats.get("dropped", 0)
    print(f"failing disk: {counter[0]} requests completed, {flips[0]} fault flips, "
          f"{written} events written, {dropped} dropped and counted, "
          f"slowest request {slowest[0] * 1000:.2f} ms")
    failures = []
    if not dropped:
        failures.append("no drop counted while the disk was full")
    if not written:
        failures.append("nothing written while the disk was healthy: no recovery")
    return failures


def main(argv: list[str]) -> int:
    """Run both phases; print the figures; exit 1 on any failed check."""
    seconds = float(argv[1]) if len(argv) > 1 else 60.0
    threads = int(argv[2]) if len(argv) > 2 else 16
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        failures = healthy_phase(directory, seconds / 2, threads)
        if os.path.exists("/dev/full"):
            failures += faulty_phase(directory, seconds / 2, threads)
    for failure in failures:
        print(f"FAILED: {failure}")
    print("soak: ok" if not failures else f"soak: {len(failures)} check(s) failed")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
