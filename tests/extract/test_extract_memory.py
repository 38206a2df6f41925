"""Memory stays within the budget whatever the log size, and the answer does not change."""

from __future__ import annotations

import io
import itertools
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest

from pytest_replay.extract import Criteria, Options, extract
from pytest_replay.extract.store import MEMORY_ENV, Budget, BudgetError
from tests.extract.extractsupport import (
    Event,
    Request,
    dump,
    events_of,
    ids_of,
    request,
    roots_in,
    run_cli,
)
from tests.extract.test_extract_filters import CASES, _corpus

# A run that prints its own peak resident memory (VmHWM counts this process
# only: ru_maxrss would count the pytest process it was started from).
_MEASURED = textwrap.dedent("""
    import sys
    from pytest_replay.cli.extract_traces import main
    status = main(sys.argv[1:])
    with open("/proc/self/status") as status_file:
        peak = next(line for line in status_file if line.startswith("VmHWM"))
    sys.stderr.write("peak-kib %s\\n" % peak.split()[1])
    raise SystemExit(status)
""")

REQUESTS = 40_000
CHILDREN = 5
OLD_BYTES_PER_CALL = 160  # what the in-memory call graph cost per call


def _measured(*args: str | Path, budget_mb: int) -> tuple[subprocess.CompletedProcess[bytes], int]:
    if not Path("/proc/self/status").exists():
        pytest.skip("reading a process's own peak memory needs Linux's /proc")
    result = subprocess.run(
        [sys.executable, "-c", _MEASURED, *map(str, args)],
        capture_output=True, check=False, timeout=120,
        env={**os.environ, MEMORY_ENV: str(budget_mb)},
    )
    peak = [line for line in result.stderr.splitlines() if line.startswith(b"peak-kib ")]
    assert peak, result.stderr
    return result, int(peak[-1].split()[1]) * 1024


def _compact(index: int) -> list[bytes]:
    """One request in few bytes: a root, a chain of calls, their exits; every 97th fails."""
    root = f"r{index}"
    chain = [root] + [f"c{index}_{level}" for level in range(CHILDREN)]
    lines = [b'{"event_type":"function_entry","correlation_id":"%s","timestamp_ns":%d}'
             % (root.encode(), index)]
    for parent, child in itertools.pairwise(chain):
        lines.append(b'{"event_type":"function_entry","correlation_id":"%s",'
                     b'"parent_correlation_id":"%s","timestamp_ns":%d}'
                     % (child.encode(), parent.encode(), index))
    if index % 97 == 0:
        lines.append(b'{"event_type":"error","correlation_id":"%s","error_type":"E"}'
                     % chain[-1].encode())
    lines.extend(b'{"event_type":"function_exit","correlation_id":"%s","duration_ns":5}'
                 % cid.encode() for cid in reversed(chain))
    return lines


@pytest.fixture(scope="module")
def big_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Many small requests, two by two interleaved, some written backwards."""
    out: list[bytes] = []
    for index in range(0, REQUESTS, 2):
        first, second = _compact(index), _compact(index + 1)
        if index % 1000 == 0:
            first.reverse()  # children before parents
        for pair in zip(first, second):  # noqa: B905 - the longer one's tail follows
            out.extend(pair)
        out.extend(first[len(second):] or second[len(first):])
    path = tmp_path_factory.mktemp("memory") / "big.log"
    path.write_bytes(b"\n".join(out) + b"\n")
    return path


def _grouped(log: Path) -> bytes:
    """Every request of the log, in the order of their root entries, each in log order."""
    groups: dict[str, list[bytes]] = {}
    start: dict[str, int] = {}
    for number, line in enumerate(log.read_bytes().splitlines()):
        event = orjson.loads(line)
        cid = event["correlation_id"]
        root = "r" + cid[1:].split("_")[0]
        groups.setdefault(root, []).append(line)
        if cid == root and event["event_type"] == "function_entry":
            start[root] = number
    return b"".join(line + b"\n" for root in sorted(groups, key=start.__getitem__)
                    for line in groups[root])


def test_filter_selection_stays_within_a_small_budget(big_log: Path, tmp_path: Path) -> None:
    calls = REQUESTS * (CHILDREN + 1)
    tiny = tmp_path / "tiny.log"
    tiny.write_bytes(b"\n".join(_compact(97)) + b"\n")
    _result, baseline = _measured(tiny, "--error", "--no-redact", "-q", budget_mb=8)
    margin = 24 * 1024 * 1024
    assert calls * OLD_BYTES_PER_CALL > 1.5 * margin  # the old call graph alone would not fit

    result, peak = _measured(big_log, "--error", "--no-redact", "-q", budget_mb=8)
    assert result.returncode == 0, result.stderr
    failing = [f"r{index}" for index in range(0, REQUESTS, 97)]
    assert roots_in(events_of(result.stdout)) == failing
    assert peak < baseline + margin, (peak, baseline)

    # The id path (its trees in memory, no SQL) gives the same bytes.
    by_id = run_cli(big_log, *[arg for root in failing for arg in ("--correlation-id", root)],
                    "--no-redact", "-q", timeout=120)
    assert by_id.returncode == 0, by_id.stderr
    assert result.stdout == by_id.stdout


def test_everything_selected_spills_and_comes_out_whole(big_log: Path, tmp_path: Path) -> None:
    out = tmp_path / "all.jsonl"
    result, peak = _measured(big_log, "--no-redact", "-q", "-o", out, budget_mb=8)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == _grouped(big_log)
    assert peak < 80 * 1024 * 1024, peak


@pytest.mark.parametrize(("criteria", "expected"), [(c, e) for _n, c, e in CASES],
                         ids=[name for name, _c, _e in CASES])
def test_a_zero_budget_gives_the_same_answers(tmp_path: Path, criteria: Criteria,
                                              expected: list[str]) -> None:
    # Budget(0): every structure that can move to disk does (the recent-call
    # dict shrinks to a few calls, lists and id sets go to the store at once).
    log = tmp_path / "production.log"
    log.write_bytes(dump([event for req in _corpus() for event in req.events]))
    out = io.BytesIO()
    extract(Options([str(log)], criteria, redact=False, stdout=out, budget=Budget(0)))
    assert roots_in(events_of(out.getvalue())) == expected


def _tangled() -> tuple[list[Event], list[Request]]:
    """Parents long gone, children first, a caller in no log, an id entered twice, a cycle."""
    early = request("req_early", depth=3, fail=True)
    backward = request("req_backward", depth=4, fail=True)
    detached = request("req_detached", parent="func_elsewhere", depth=2, fail=True)
    noise = [e for n in range(60) for e in request(f"req_noise{n}", depth=1).events]
    late_child: Event = {"event_type": "function_entry", "timestamp_ns": 9,
                         "correlation_id": "func_late", "function_name": "late",
                         "parent_correlation_id": early.frames[-1]}
    late_error: Event = {"event_type": "error", "timestamp_ns": 10,
                         "correlation_id": "func_late", "error_type": "E", "message": "m"}
    again = dict(early.events[0])  # the root entered again, much later: the first one wins
    cycle: list[Event] = [
        {"event_type": "function_entry", "timestamp_ns": 1, "correlation_id": "cyc_a",
         "parent_correlation_id": "cyc_b"},
        {"event_type": "function_entry", "timestamp_ns": 2, "correlation_id": "cyc_b",
         "parent_correlation_id": "cyc_a"},
        {"event_type": "error", "timestamp_ns": 3, "correlation_id": "cyc_a",
         "error_type": "E", "message": "m"},
    ]
    events = (early.events + noise[:300] + list(reversed(backward.events)) + noise[300:]
              + [late_child, late_error, again] + detached.events + cycle)
    return events, [early, backward, detached]


@pytest.mark.parametrize("budget", [Budget(0), Budget()], ids=["zero budget", "default"])
def test_resolution_in_the_store_matches_the_model(tmp_path: Path, budget: Budget) -> None:
    events, (early, backward, detached) = _tangled()
    log = tmp_path / "tangled.log"
    log.write_bytes(dump(events))
    out = io.BytesIO()
    extract(Options([str(log)], Criteria(error=True), redact=False, stdout=out, budget=budget))
    got = events_of(out.getvalue())
    assert roots_in(got) == ["req_early", "req_backward", "req_detached"]
    assert ids_of(got) == {*early.frames, "func_late", *backward.frames, *detached.frames}
    assert "cyc_a" not in ids_of(got)  # a cycle is no request a filter can select


def test_a_bad_budget_is_a_usage_error(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(dump(request("req_a").events))
    result = run_cli(log, "--error", env={MEMORY_ENV: "lots"})
    assert result.returncode == 2
    assert MEMORY_ENV.encode() in result.stderr
    with pytest.raises(BudgetError):
        Budget.from_env({MEMORY_ENV: "1.5"})
    assert Budget.from_env({MEMORY_ENV: "1"}).megabytes == 8  # clamped to the minimum
    assert Budget.from_env({}).megabytes == 64
