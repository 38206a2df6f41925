"""Benchmark: what one replayed pytest item costs beside a hand-written test of the same call.

Run ``python tests/benchmarks/bench_replay.py [traces] [rounds]`` (defaults 1000 and 3).
In a temporary project holding the demo shop (``replay_targets = benchapp``) it
records real requests under capture, one trace file per request: each reads the
order from a real sqlite database and charges it through the demo's real payment
gateway on 127.0.0.1 (one ``db_call`` read, one write and commit, one
``http_call``). Then it prints:

(a) per item, in real pytest sessions (subprocesses): a replay item of
    ``process_order(777, 1001)`` beside a hand-written test that calls the same
    function and asserts its result, with the database and the gateway answered
    in-process by stubs (as a hand-written unit test would; the strictest peer,
    since it pays nothing for them). Each cost is the slope between a session of
    50 items and one of 450, so interpreter start-up and collection set-up cancel
    out; the difference is what replay adds per item (the goal: under 1 ms).
    Measured twice: in CPU time of the session (steady on a busy machine) and
    in wall time;
(b) the same pair in this process, without pytest: ``ReplayEngine.replay`` of the
    root against calling the function (stubs answering) and comparing its
    result; the replay of the same request recorded without timestamps (so time
    is not frozen); and what freezing time costs with the modules this process
    has loaded, as replay does it and with plain freezegun (which lists every
    loaded module on each freeze);
(c) the whole ``traces`` directory (``traces`` files): collection alone, then a
    full run without xdist and with ``-n 2``: wall times and cost per item.

Rounds are interleaved and each case keeps its best round, so a noisy neighbour
does not decide the result.
"""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson

import pytest_replay as replay

REPO = Path(__file__).resolve().parents[2]
SMALL, LARGE = 50, 450
EXPECTED = {"order_id": 777, "user_id": 1001, "total": 215.4, "tax": 15.4, "charge": "ch_1001"}
MODULES = ("__init__.py", "shop.py", "store.py", "payments.py")
STUBS = """\
import contextlib


@contextlib.contextmanager
def stubbed_outside():
    \"\"\"The order's database row and the gateway's answer, given in-process.\"\"\"
    from benchapp import payments, store

    saved = store.load_order_total, store.mark_pricing, payments.charge
    store.load_order_total = lambda order_id: 200.0
    store.mark_pricing = lambda order_id: 1
    payments.charge = lambda user_id, amount: {"id": "ch_1001", "status": "succeeded",
                                                "amount": amount}
    try:
        yield
    finally:
        store.load_order_total, store.mark_pricing, payments.charge = saved
"""
HAND_CONFTEST = """\
import pytest

from benchapp.stubs import stubbed_outside


@pytest.fixture(scope="session", autouse=True)
def outside_world():
    with stubbed_outside():
        yield
"""
PYPROJECT = """\
[tool.pytest.ini_options]
pythonpath = ["."]
replay_targets = ["benchapp"]
replay_paths = ["traces"]
"""
PYTEST = (sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
          "no:hypothesispytest", "-p", "no:randomly")


def build_project(root: Path, traces: int) -> None:
    """The demo shop as ``benchapp``, recorded requests split one per file, hand-written tests."""
    (root / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    package = root / "benchapp"
    package.mkdir()
    for name in MODULES:
        text = (REPO / "demo" / name).read_text(encoding="utf-8")
        (package / name).write_text(text.replace("from demo import", "from benchapp import"),
                                    encoding="utf-8")
    (package / "stubs.py").write_text(STUBS, encoding="utf-8")
    sys.path.insert(0, str(root))
    from benchapp import shop  # type: ignore[import-not-found]

    log = root / "production.jsonl"
    with services(root):
        replay.configure(path=log, service="shop")
        try:
            for index in range(max(traces, LARGE)):
                with replay.request_scope(correlation_id=f"req_{index:05d}"):
                    shop.process_order(777, 1001)
        finally:
            replay.shutdown()
    lines = log.read_bytes().splitlines()
    per_request: dict[str, list[bytes]] = {}
    owner: dict[str, str] = {}
    for line in lines:  # every event to its request: entries name the parent frame
        event = orjson.loads(line)
        cid = event["correlation_id"]
        request = owner.setdefault(cid, owner.get(event.get("parent_correlation_id", ""), cid))
        per_request.setdefault(request, []).append(line)
    requests = sorted(per_request)
    for folder, count in (("small", SMALL), ("large", LARGE), ("all", traces)):
        target = root / "traces" / folder
        target.mkdir(parents=True)
        for request in requests[:count]:
            (target / f"{request}.jsonl").write_bytes(b"\n".join(per_request[request]) + b"\n")
    hand = root / "hand"
    hand.mkdir()
    (hand / "conftest.py").write_text(HAND_CONFTEST, encoding="utf-8")
    for folder, count in (("small", SMALL), ("large", LARGE)):
        body = ["from benchapp.shop import process_order", ""]
        body += [f"def test_{i}() -> None:\n    assert process_order(777, 1001) == {EXPECTED!r}\n"
                 for i in range(count)]
        (hand / f"test_{folder}.py").write_text("\n".join(body), encoding="utf-8")


@contextlib.contextmanager
def services(root: Path) -> Iterator[None]:
    """The shop's real sqlite database and payment gateway, and the variables naming them."""
    from benchapp import payments, store

    database = root / "shop.db"
    store.create(database)
    saved = {key: os.environ.get(key) for key in ("SHOP_DB", "PAYMENTS_URL")}
    with payments.gateway() as url:
        os.environ.update(SHOP_DB=str(database), PAYMENTS_URL=url)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def timed_session(root: Path, *args: str) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of one pytest session in a subprocess.

    The session must end with exit code 0. CPU time is what a busy machine
    disturbs least; wall time is what a user waits.
    """
    started = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([*PYTEST, *args], cwd=root, capture_output=True, text=True,
                          check=False, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"pytest {' '.join(args)} failed:\n{done.stdout[-3000:]}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def session(root: Path, *args: str) -> float:
    """Wall seconds of one pytest session in a subprocess (it must end with exit code 0)."""
    return timed_session(root, *args)[0]


def best(rounds: int, cases: dict[str, Callable[[], float]]) -> dict[str, float]:
    """Interleave the cases ``rounds`` times; keep each one's best time."""
    results = {name: float("inf") for name in cases}
    for _ in range(rounds):
        for name, case in cases.items():
            results[name] = min(results[name], case())
    return results


def per_item_in_pytest(root: Path, rounds: int) -> None:
    sessions = {"hand small": "hand/test_small.py", "hand large": "hand/test_large.py",
                "replay small": "traces/small", "replay large": "traces/large"}
    wall = {name: float("inf") for name in sessions}
    cpu = dict(wall)
    for _ in range(rounds):
        for name, where in sessions.items():
            elapsed, used = timed_session(root, where)
            wall[name], cpu[name] = min(wall[name], elapsed), min(cpu[name], used)
    print(f"(a) per item in a pytest session (slope {SMALL} -> {LARGE} items, best of {rounds})")
    for clock, times in (("CPU", cpu), ("wall", wall)):
        spread = LARGE - SMALL
        hand = (times["hand large"] - times["hand small"]) / spread * 1000
        replayed = (times["replay large"] - times["replay small"]) / spread * 1000
        print(f"    in {clock} time:")
        print(f"      hand-written test of process_order(777, 1001): {hand:8.3f} ms")
        print(f"      replayed trace of the same request:             {replayed:8.3f} ms")
        print(f"      added by replay: {replayed - hand:.3f} ms per item "
              f"({replayed / hand:.1f}x the hand-written test; goal: under 1 ms added)")


def per_call_in_process(root: Path, rounds: int, calls: int = 300) -> None:
    from benchapp import shop
    from benchapp.stubs import stubbed_outside  # type: ignore[import-not-found]
    from freezegun import freeze_time

    from pytest_replay.config import ReplayConfig
    from pytest_replay.model import load_trace
    from pytest_replay.replay.engine import ReplayEngine
    from pytest_replay.replay.sandbox import frozen_time, recorded_moment

    source = next((root / "traces" / "small").glob("*.jsonl"))
    trace_root = load_trace(source).roots[0]
    # The same request recorded without timestamps: nothing to freeze time at.
    timeless = root / "timeless.jsonl"
    timeless.write_bytes(b"".join(
        orjson.dumps({k: v for k, v in orjson.loads(line).items() if k != "timestamp_ns"}) + b"\n"
        for line in source.read_bytes().splitlines()))
    unfrozen_root = load_trace(timeless).roots[0]
    engine = ReplayEngine(ReplayConfig(targets=("benchapp",), rootdir=root))
    for checked in (trace_root, unfrozen_root):
        outcome = engine.replay(checked, check_noise=False)
        if outcome.status != "passed":
            raise SystemExit(f"the benchmark's replay did not pass: {outcome.message}")
    moment = "2023-10-31 14:23:45"

    def direct() -> float:
        with stubbed_outside():
            started = time.perf_counter()
            for _ in range(calls):
                assert shop.process_order(777, 1001) == EXPECTED
            return (time.perf_counter() - started) / calls

    def replayed() -> float:
        started = time.perf_counter()
        for _ in range(calls):
            engine.replay(trace_root, check_noise=False)
        return (time.perf_counter() - started) / calls

    def unfrozen() -> float:
        started = time.perf_counter()
        for _ in range(calls):
            engine.replay(unfrozen_root, check_noise=False)
        return (time.perf_counter() - started) / calls

    def freeze() -> float:
        started = time.perf_counter()
        for _ in range(calls // 10):
            freezer = freeze_time(moment)
            freezer.start()
            freezer.stop()
        return (time.perf_counter() - started) / (calls // 10)

    def sandbox_freeze() -> float:
        instant = recorded_moment(trace_root.timestamp_ns)
        started = time.perf_counter()
        for _ in range(calls):
            with frozen_time(instant):
                pass
        return (time.perf_counter() - started) / calls

    times = best(rounds, {"direct": direct, "replay": replayed, "unfrozen": unfrozen,
                          "freeze": freeze, "sandbox freeze": sandbox_freeze})
    print(f"(b) per call in this process, no pytest ({len(sys.modules)} modules loaded)")
    print(f"    call + assert the result (stubs):        {times['direct'] * 1e6:10.1f} us")
    print(f"    ReplayEngine.replay (no noise):          {times['replay'] * 1e6:10.1f} us "
          f"({times['replay'] / times['direct']:.1f}x the call)")
    print(f"    the same, nothing to freeze:             {times['unfrozen'] * 1e6:10.1f} us "
          f"({times['unfrozen'] / times['direct']:.1f}x)")
    print(f"    replay's own freeze/unfreeze of time:    {times['sandbox freeze'] * 1e6:10.1f} us "
          f"({times['sandbox freeze'] / times['replay']:.0%} of a replay)")
    print(f"    a plain freezegun freeze/unfreeze:       {times['freeze'] * 1e6:10.1f} us")


def whole_directory(root: Path, traces: int, rounds: int) -> None:
    times = best(rounds, {
        "collect": lambda: session(root, "traces/all", "--collect-only"),
        "run": lambda: session(root, "traces/all"),
        "run -n 2": lambda: session(root, "traces/all", "-n", "2"),
    })
    print(f"(c) {traces} traces in one directory (best of {rounds}, wall time of the session)")
    for name, seconds in times.items():
        print(f"    {name:<10} {seconds:7.2f} s   {seconds / traces * 1000:7.3f} ms per item")


def main(argv: list[str]) -> int:
    traces = int(argv[1]) if len(argv) > 1 else 1000
    rounds = int(argv[2]) if len(argv) > 2 else 3
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as directory:
        root = Path(directory)
        build_project(root, traces)
        per_item_in_pytest(root, rounds)
        per_call_in_process(root, rounds)
        whole_directory(root, traces, rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
