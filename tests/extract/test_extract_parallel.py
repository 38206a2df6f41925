"""Scanning in two processes gives exactly what one process gives."""

from __future__ import annotations

import gzip
import json
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from pytest_replay.extract.parallel import WORKERS_ENV, split, workers_from_env
from pytest_replay.extract.segments import position
from pytest_replay.extract.sources import Sources, resolve
from tests.extract.extractsupport import Request, dump, events_of, request, run_cli, write
from tests.extract.test_extract_malformed import WANTED, _dirty_log

# In a fresh process: the pytest process may run threads left by other tests,
# and extraction never forks a process that has threads.
_FRESH = textwrap.dedent("""
    import io, json, sys
    from pytest_replay.extract import Criteria, Options, extract
    spec = json.loads(sys.argv[1])
    fields = {key: tuple(value) if isinstance(value, list) else value
              for key, value in spec["criteria"].items()}
    out = io.BytesIO()
    report = extract(Options(spec["inputs"], Criteria(**fields), redact=False, stdout=out,
                             workers=spec["workers"], split_min=0))
    sys.stdout.buffer.write(out.getvalue())
    sys.stderr.write(json.dumps({"split_passes": report.split_passes,
                                 "problems": dict(report.problems.counts)}))
""")


def _run(inputs: list[Path], criteria: dict[str, object], workers: int
         ) -> tuple[dict[str, Any], bytes]:
    spec = {"inputs": [str(item) for item in inputs], "criteria": criteria, "workers": workers}
    result = subprocess.run([sys.executable, "-c", _FRESH, json.dumps(spec)],
                            capture_output=True, check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stderr)
    return report, result.stdout


def _same_both_ways(inputs: list[Path], criteria: dict[str, object]) -> bytes:
    one_report, one = _run(inputs, criteria, workers=1)
    two_report, two = _run(inputs, criteria, workers=2)
    assert one_report["split_passes"] == 0
    assert two_report["split_passes"] >= 1  # the second half really was another process's
    assert two == one
    assert two_report["problems"] == one_report["problems"]
    return two


def test_shuffled_trees_come_out_whole_from_two_processes(tmp_path: Path) -> None:
    requests = [request(f"req_{n}", depth=n % 5 + 1, fail=n % 3 == 0) for n in range(16)]
    everything = [event for req in requests for event in req.events]
    chooser = random.Random(7)
    for attempt in range(4):
        shuffled = list(everything)
        chooser.shuffle(shuffled)
        log = write(tmp_path / f"shuffled_{attempt}.log", shuffled)
        wanted = requests[chooser.randrange(len(requests))]
        out = _same_both_ways([log], {"correlation_ids": [wanted.root]})
        assert len(events_of(out)) == len(wanted.events), attempt
        _same_both_ways([log], {"error": True})


def test_a_tree_learnt_in_one_half_with_lines_in_the_other(tmp_path: Path) -> None:
    # Deep calls whose entries carry no trace id: each level is learnt from
    # its parent's entry, which lies in the other half of the log.
    wanted = request("req_split", depth=6, fail=True)
    noise = [e for n in range(40) for e in request(f"req_n{n}", depth=1).events]
    entries = [e for e in wanted.events if e["event_type"] == "function_entry"]
    rest = [e for e in wanted.events if e["event_type"] != "function_entry"]
    log = write(tmp_path / "app.log", rest + noise + entries[::-1] + noise)
    out = _same_both_ways([log], {"correlation_ids": [wanted.frames[-1]]})
    assert len(events_of(out)) == len(wanted.events)


def test_several_logs_and_a_distributed_trace(tmp_path: Path) -> None:
    front = request("req_front", trace="t1", service="checkout", depth=3)
    back = request("req_back", trace="t1", service="inventory", parent=front.frames[-1],
                   depth=3, fail=True)
    others: list[Request] = [request(f"req_o{n}", depth=2) for n in range(20)]
    first = write(tmp_path / "checkout.log",
                  [e for r in others[:10] for e in r.events] + front.events)
    second = write(tmp_path / "inventory.log",
                   back.events + [e for r in others[10:] for e in r.events])
    out = _same_both_ways([first, second], {"trace_ids": ["t1"]})
    assert len(events_of(out)) == len(front.events) + len(back.events)
    _same_both_ways([first, second], {"services": ["inventory"], "error": True})


def test_unusable_lines_found_by_the_child_are_counted(tmp_path: Path) -> None:
    log, _numbers = _dirty_log(tmp_path)
    out = _same_both_ways([log], {"correlation_ids": ["req_dirty"]})
    assert len(events_of(out)) == len(WANTED.events)


def test_the_split_falls_on_a_line_start_and_never_inside_a_compressed_log(
        tmp_path: Path) -> None:
    plain = write(tmp_path / "a.log", request("req_a", depth=3).events)
    packed = tmp_path / "b.log.gz"
    many = [e for n in range(50) for e in request(f"req_b{n}", depth=3).events]
    packed.write_bytes(gzip.compress(dump(many)))  # the middle falls inside it
    with Sources() as sources:
        resolve([str(plain)], None, sources)
        [(lo, cut), (cut_again, hi)] = split(sources.items, 0, None, 0)
        assert (lo, hi, cut) == (0, None, cut_again)
        assert cut is not None
        assert plain.read_bytes()[cut - 1 : cut] == b"\n"
    with Sources() as sources:
        resolve([str(packed), str(plain)], None, sources)
        regions = split(sources.items, 0, None, 0)
        assert regions == [(0, position(1, 0)), (position(1, 0), None)]


_FAILING_CHILD = textwrap.dedent("""
    import json, os, sys
    from pytest_replay.extract.idmatch import SubstringMatcher
    from pytest_replay.extract.problems import Problems
    from pytest_replay.extract.scan import Scanner
    from pytest_replay.extract.sources import Sources, resolve

    parent = os.getpid()

    class ChildFails(SubstringMatcher):
        __slots__ = ()

        def positions(self, data, start, end):
            if os.getpid() != parent:
                raise RuntimeError("lost its disk")
            return super().positions(data, start, end)

    found = []
    with Sources() as sources:
        resolve([sys.argv[1]], None, sources)
        scanner = Scanner(sources.items, Problems(), workers=2, split_min=0)
        scanner.run(ChildFails(["req_29", "req_0"]), lambda hit: found.append(hit.position))
    print(json.dumps({"found": found, "split_passes": scanner.split_passes}))
""")


def test_a_failing_child_leaves_its_half_to_this_process(tmp_path: Path) -> None:
    log = write(tmp_path / "app.log",
                [e for n in range(30) for e in request(f"req_{n}", depth=2).events])
    result = subprocess.run([sys.executable, "-c", _FAILING_CHILD, str(log)],
                            capture_output=True, check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["split_passes"] == 1
    naming = [offset for offset, line in _lines(log)
              if b'"req_29"' in line or b'"req_0"' in line]
    assert answer["found"] == naming  # both halves, in log order
    assert b"second scanning process failed (RuntimeError: lost its disk)" in result.stderr


def _lines(log: Path) -> list[tuple[int, bytes]]:
    offset, out = 0, []
    for line in log.read_bytes().splitlines(keepends=True):
        out.append((offset, line))
        offset += len(line)
    return out


def test_worker_count_from_the_environment(tmp_path: Path) -> None:
    assert workers_from_env({WORKERS_ENV: "1"}) == 1
    assert workers_from_env({WORKERS_ENV: "0"}) == 1
    assert workers_from_env({}) == min(2, os.cpu_count() or 1)
    log = write(tmp_path / "app.log", request("req_a").events)
    result = run_cli(log, "--error", env={WORKERS_ENV: "two"})
    assert result.returncode == 2
    assert WORKERS_ENV.encode() in result.stderr
