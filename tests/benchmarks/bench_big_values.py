"""Benchmark: what capturing a huge value costs, beside the same value at the cap.

Run ``python tests/benchmarks/bench_big_values.py [rounds]``. Capture keeps at
most ``max_str`` characters of a string, ``max_items`` items of a container and
an int's size past ~4,300 digits, so a huge argument should cost about what the
part that is kept costs, not its full size. For each pair it prints the time of
one traced call in a sampled request (a :class:`MemorySink`, best of
``rounds``) with the kept-size value and with the huge one, and their ratio:

- a text of 2,048 accented characters / of 4,000,000;
- a dict of 100 string keys / of 2,000,000;
- an int of 4,000 digits / of 200,000 (with ``sys.set_int_max_str_digits(0)``);
- reading which parameters a statement binds to secret columns, for an ``IN``
  list of 100 placeholders / of 8,000 (once per statement; it was quadratic).

Before the fixes these ratios were in the hundreds or thousands (0.15 to
0.5 s per call for the huge values).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import pytest_replay as replay
from pytest_replay.capture.db_record import _SECRET_PLACES, secret_parameters


def swallow(value: Any) -> None:
    """Takes a value and returns nothing: only the argument is captured."""


def best_of(rounds: int, call: Callable[[], Any]) -> float:
    """The fastest of ``rounds`` calls, in seconds."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - started)
    return best


def main(argv: list[str]) -> int:
    """Entry point: ``[rounds]``."""
    rounds = int(argv[1]) if len(argv) > 1 else 7
    replay.configure(sink=replay.MemorySink())
    traced = replay.traced(swallow)

    def in_request(value: Any) -> Callable[[], None]:
        def run() -> None:
            with replay.request_scope("req_big"):
                traced(value)

        return run

    old_digits = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    pairs = {
        "text, 2,048 vs 4,000,000 characters": ("é" * 2048, "é" * 4_000_000),
        "dict, 100 vs 2,000,000 keys": (dict.fromkeys(map(str, range(100)), 0),
                                        dict.fromkeys(map(str, range(2_000_000)), 0)),
        "int, 4,000 vs 200,000 digits": (10 ** 3_999, 10 ** 199_999),
    }
    def columns_of(count: int) -> Callable[[], None]:
        statement = f"SELECT owner FROM t WHERE owner IN ({', '.join(['?'] * count)})"

        def run() -> None:
            _SECRET_PLACES.clear()  # the answer is cached per statement: measure the reading
            secret_parameters(statement)

        return run

    try:
        print(f"{'value':<38} {'kept size us':>13} {'huge us':>10} {'ratio':>7}")
        cases = [(label, in_request(small), in_request(huge))
                 for label, (small, huge) in pairs.items()]
        cases.append(("IN list, 100 vs 8,000 placeholders", columns_of(100), columns_of(8000)))
        for label, small_run, huge_run in cases:
            kept = best_of(rounds, small_run)
            whole = best_of(rounds, huge_run)
            print(f"{label:<38} {kept * 1e6:>13.1f} {whole * 1e6:>10.1f} {whole / kept:>6.1f}x")
    finally:
        sys.set_int_max_str_digits(old_digits)
        replay.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
