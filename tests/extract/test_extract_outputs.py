"""Outputs: stdout, one file, one file per request; atomic, never half-written."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from pytest_replay.extract.output import split_names
from pytest_replay.model import load_trace
from tests.extract.extractsupport import (
    SCRIPT,
    dump,
    events_of,
    ids_of,
    request,
    roots_in,
    run_cli,
    write,
)


def _log(tmp_path: Path) -> Path:
    reqs = [request("req_abc123", user=1, fail=True, depth=2), request("req_ok/7", depth=1),
            request("req_ok:8", depth=3)]
    return write(tmp_path / "production.log", [e for r in reqs for e in r.events])


def test_output_file_holds_the_requests_one_after_another(tmp_path: Path) -> None:
    target = tmp_path / "out" / "incidents.jsonl"
    result = run_cli(_log(tmp_path), "-o", target)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b""
    trace = load_trace(target)
    assert [root.correlation_id for root in trace.roots] == ["req_abc123", "req_ok/7", "req_ok:8"]
    assert not trace.orphans
    assert [p.name for p in target.parent.iterdir()] == ["incidents.jsonl"]  # no temp left


def test_split_dir_writes_one_replayable_file_per_request(tmp_path: Path) -> None:
    traces = tmp_path / "traces"
    result = run_cli(_log(tmp_path), "--split-dir", traces)
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in traces.iterdir())
    assert names == ["incident_req_abc123.jsonl", "incident_req_ok_7.jsonl",
                     "incident_req_ok_8.jsonl"]
    incident = load_trace(traces / "incident_req_abc123.jsonl")
    assert [root.correlation_id for root in incident.roots] == ["req_abc123"]
    assert incident.roots[0].is_incident
    assert b"incident_req_abc123.jsonl" in result.stderr


def test_split_dir_does_not_replace_evidence_without_force(tmp_path: Path) -> None:
    traces = tmp_path / "traces"
    traces.mkdir()
    evidence = traces / "incident_req_abc123.jsonl"
    evidence.write_bytes(b"kept\n")
    refused = run_cli(_log(tmp_path), "--split-dir", traces)
    assert refused.returncode == 2
    assert b"--force" in refused.stderr
    assert evidence.read_bytes() == b"kept\n"
    assert sorted(p.name for p in traces.iterdir()) == ["incident_req_abc123.jsonl"]
    forced = run_cli(_log(tmp_path), "--split-dir", traces, "--force")
    assert forced.returncode == 0
    assert roots_in(events_of(evidence.read_bytes())) == ["req_abc123"]


def test_nothing_matched_exits_1_and_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    result = run_cli(_log(tmp_path), "--correlation-id", "req_nobody", "-o", target)
    assert result.returncode == 1
    assert not target.exists()
    assert b"no line mentions req_nobody" in result.stderr


def test_stdout_is_the_default(tmp_path: Path) -> None:
    result = run_cli(_log(tmp_path), "--correlation-id", "req_ok:8")
    assert result.returncode == 0
    assert roots_in(events_of(result.stdout)) == ["req_ok:8"]


def test_output_to_a_directory_path_is_refused(tmp_path: Path) -> None:
    result = run_cli(_log(tmp_path), "-o", tmp_path)
    assert result.returncode == 2
    assert b"--split-dir" in result.stderr


def test_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    many = write(tmp_path / "many.log",
                 [e for n in range(3000) for e in request(f"req_{n}", depth=1).events])
    with subprocess.Popen([str(SCRIPT), str(many), "--no-redact"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as reader:
        assert reader.stdout is not None and reader.stderr is not None
        reader.stdout.readline()
        reader.stdout.close()
        error = reader.stderr.read()
        assert reader.wait(timeout=60) == 141
    assert b"Traceback" not in error


def test_a_killed_run_leaves_the_old_file_whole(tmp_path: Path) -> None:
    requests = [request(f"req_{n}", user=f"user{n}@example.com", depth=2) for n in range(6000)]
    big = write(tmp_path / "big.log", [e for r in requests for e in r.events])
    target = tmp_path / "out" / "all.jsonl"
    target.parent.mkdir()
    target.write_bytes(b"previous run\n")
    with subprocess.Popen([str(SCRIPT), str(big), "-o", str(target)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as child:
        deadline = time.monotonic() + 60
        while not any(p.name.startswith(".all.jsonl.") for p in target.parent.iterdir()):
            assert child.poll() is None, "finished before it could be interrupted"
            assert time.monotonic() < deadline
            time.sleep(0.002)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    assert target.read_bytes() == b"previous run\n"
    finished = run_cli(big, "-o", target, "--limit", "3", "-q")
    assert finished.returncode == 0
    assert roots_in(events_of(target.read_bytes())) == ["req_0", "req_1", "req_2"]


def test_redacted_output_keeps_ids_and_tree(tmp_path: Path) -> None:
    log = _log(tmp_path)
    plain = run_cli(log, "--no-redact", "-q")
    redacted = run_cli(log, "-q")
    assert ids_of(events_of(plain.stdout)) == ids_of(events_of(redacted.stdout))
    assert roots_in(events_of(plain.stdout)) == roots_in(events_of(redacted.stdout))
    assert dump(events_of(plain.stdout)) == plain.stdout  # raw lines pass through unchanged


def test_split_names_are_safe_and_unique() -> None:
    names = split_names(["req/1", "req:1", "../etc", "é", "x" * 300])
    assert names["req/1"] == "incident_req_1.jsonl"
    assert names["req:1"] == "incident_req_1_2.jsonl"
    assert names["../etc"] == "incident_etc.jsonl"
    assert names["é"] == "incident_request.jsonl"
    assert len(names["x" * 300]) < 140


def test_raw_output_drops_carriage_returns_and_bom(tmp_path: Path) -> None:
    log = tmp_path / "crlf.log"
    log.write_bytes(b"\xef\xbb\xbf" + dump(request("req_crlf").events).replace(b"\n", b"\r\n"))
    result = run_cli(log, "--no-redact", "-q")
    assert result.returncode == 0
    assert b"\r" not in result.stdout and not result.stdout.startswith(b"\xef")
    assert roots_in(events_of(result.stdout)) == ["req_crlf"]
