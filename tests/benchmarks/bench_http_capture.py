"""Overhead of HTTP capture per call, against the same call uninstrumented, same run.

    python tests/benchmarks/bench_http_capture.py [--calls 200] [--rounds 9] [--delay-ms 2]

A server in its own process (so it never competes for the client's GIL)
answers a realistic request: a JSON POST with an Authorization header, a
~1.5 KB JSON answer. It answers at once (the worst case: loopback, no work)
and, in a second run, after ``--delay-ms`` (an upstream doing some work).

Each round times ``--calls`` calls per mode, the modes interleaved so drift
hits them all: ``plain`` (capture not installed), ``captured`` (a sampled
request writing to a FileSink, redaction on) and ``unsampled`` (installed,
request not sampled). The best round per mode is kept (it resists a loaded
machine). Printed per client library: wall microseconds per call and the
ratio to plain, the client thread's CPU microseconds per call, and the CPU
capture adds per call over the plain call's wall time.
"""

from __future__ import annotations

import argparse
import http.server
import json
import multiprocessing
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import requests

from pytest_replay.capture.api import configure, request_scope, shutdown
from pytest_replay.capture.http import install_http_capture, uninstall_http_capture
from pytest_replay.capture.runtime import RUNTIME

ANSWER = json.dumps({
    "order_id": 12345, "status": "confirmed", "currency": "USD",
    "items": [{"sku": f"SKU-{i:04d}", "name": f"Item number {i}", "quantity": i % 3 + 1,
               "unit_price": 19.99 + i, "tags": ["catalog", "summer", "sale"]}
              for i in range(12)],
    "customer": {"id": 67890, "tier": "gold", "region": "us-west-2"},
}).encode()
PAYLOAD = {"customer_id": 67890, "items": [{"sku": "SKU-0001", "quantity": 2}] * 5,
           "coupon": "SUMMER24", "note": "leave at the door"}
HEADERS = {"Authorization": "Bearer abcdef0123456789", "X-Request-Id": "req-1"}
MODES = ("plain", "captured", "unsampled")
Result = dict[str, tuple[float, float]]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes
    delay = 0.0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.delay:
            time.sleep(self.delay)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(ANSWER)))
        self.end_headers()
        self.wfile.write(ANSWER)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def serve(ports: multiprocessing.Queue[int], delay: float) -> None:
    """The server process: answers (after ``delay`` seconds) until terminated."""
    Handler.delay = delay
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    ports.put(server.server_address[1])
    server.serve_forever()


def time_calls(call: Callable[[], object], calls: int, scope: bool) -> tuple[float, float]:
    """(wall, client-thread CPU) microseconds per call."""
    wall, cpu = time.perf_counter_ns(), time.thread_time_ns()
    if scope:
        with request_scope("req_bench"):
            for _ in range(calls):
                call()
    else:
        for _ in range(calls):
            call()
    return ((time.perf_counter_ns() - wall) / calls / 1e3,
            (time.thread_time_ns() - cpu) / calls / 1e3)


def measure(call: Callable[[], object], calls: int, rounds: int, log: Path) -> Result:
    """Per mode: the best round's (wall, CPU) microseconds per call."""
    samples: dict[str, list[tuple[float, float]]] = {mode: [] for mode in MODES}
    for _ in range(max(calls // 4, 5)):  # warm connections and caches
        call()
    for _ in range(rounds):
        uninstall_http_capture()
        samples["plain"].append(time_calls(call, calls, scope=False))
        install_http_capture()
        configure(log)
        samples["captured"].append(time_calls(call, calls, scope=True))
        configure(log, sample_rate=0.0)
        samples["unsampled"].append(time_calls(call, calls, scope=True))
        shutdown()
    uninstall_http_capture()
    return {mode: (min(w for w, _ in values), min(c for _, c in values))
            for mode, values in samples.items()}


def run(delay_ms: float, calls: int, rounds: int) -> dict[str, Result]:
    """Both client libraries against a server answering after ``delay_ms``."""
    ports: multiprocessing.Queue[int] = multiprocessing.Queue()
    server = multiprocessing.Process(target=serve, args=(ports, delay_ms / 1000), daemon=True)
    server.start()
    try:
        url = f"http://127.0.0.1:{ports.get(timeout=10)}/orders"
        with tempfile.TemporaryDirectory() as folder, requests.Session() as session, \
                httpx.Client() as client:
            log = Path(folder) / "telemetry.jsonl"
            peers: dict[str, Callable[[], object]] = {
                "requests": lambda: session.post(url, json=PAYLOAD, headers=HEADERS).content,
                "httpx": lambda: client.post(url, json=PAYLOAD, headers=HEADERS).content,
            }
            return {name: measure(call, calls, rounds, log) for name, call in peers.items()}
    finally:
        server.terminate()
        server.join()


def report(title: str, results: dict[str, Result]) -> None:
    print(title)
    print(f"  {'client':<9}{'plain':>8}{'captured':>10}{'ratio':>7}{'unsampled':>11}{'ratio':>7}"
          f"  |{'cpu plain':>10}{'cpu capt.':>10}{'added':>7}{'added/plain':>12}")
    for name, result in results.items():
        (plain, plain_cpu), (captured, captured_cpu), (unsampled, _) = (
            result["plain"], result["captured"], result["unsampled"])
        added = captured_cpu - plain_cpu
        print(f"  {name:<9}{plain:>8.0f}{captured:>10.0f}{captured / plain:>7.3f}"
              f"{unsampled:>11.0f}{unsampled / plain:>7.3f}  |{plain_cpu:>10.0f}"
              f"{captured_cpu:>10.0f}{added:>7.0f}{added / plain:>12.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--delay-ms", type=float, default=2.0)
    options = parser.parse_args()
    print(f"HTTP capture overhead: microseconds per call, best of {options.rounds} rounds x "
          f"{options.calls} calls per mode (FileSink, redaction on)")
    report("server answers at once (loopback worst case)",
           run(0.0, options.calls, options.rounds))
    report(f"server answers after {options.delay_ms:g} ms (an upstream doing work)",
           run(options.delay_ms, max(options.calls // 4, 20), options.rounds))
    print("goal: captured/plain under 1.05; 'added/plain' is the client CPU capture adds per "
          f"call over the plain call's wall time. Events dropped: {RUNTIME.stats.dropped}")


if __name__ == "__main__":
    main()
