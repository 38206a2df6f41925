"""``replay-telemetry`` run as users run it: the installed console script in a subprocess."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.cli.conftest import Project


def test_incident_shows_timeline_root_cause_and_reproduces(project: Project) -> None:
    done = project.run("replay-telemetry", "traces/incident_abc123.jsonl")
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert "ENTER process_order(order_id=12345, user_id=67890)" in out
    assert "SET tax_rate = 0.08" in out
    assert "ERROR ZeroDivisionError: division by zero" in out
    assert "at calculate_tax:14 -> discount_amount = sum(discounts) / discount_count" in out
    assert "discount_count = 0" in out
    assert "Root Cause: Variable 'discount_count' was 0" in out
    assert "incident reproduces: ZeroDivisionError in calculate_tax at line 14" in out
    assert "\x1b[" not in out  # piped: no colour codes
    assert all(ord(ch) < 128 for ch in out)  # and plain ASCII


def test_fixed_code_passes_and_says_what_it_does_now(project: Project) -> None:
    project.fix_the_bug()
    done = project.run("replay-telemetry", "traces/incident_abc123.jsonl")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "fixed: ZeroDivisionError no longer raised; calculate_tax now returns 8.0" in (
        done.stdout)
    assert "Replay completed successfully!" in done.stdout


def test_directory_gz_and_stdin_inputs(project: Project) -> None:
    healthy = project.root / "traces" / "healthy_req_ok.jsonl"
    packed = project.root / "packed.jsonl.gz"
    packed.write_bytes(gzip.compress(healthy.read_bytes()))
    assert project.run("replay-telemetry", "packed.jsonl.gz").returncode == 0
    piped = project.run("replay-telemetry", "-", stdin=healthy.read_text())
    assert piped.returncode == 0, piped.stdout + piped.stderr
    assert "replay matches the recording" in piped.stdout
    everything = project.run("replay-telemetry", "traces")
    assert everything.returncode == 1  # the incident is in there
    assert "process_order[req_ok]" in everything.stdout


def test_json_output_for_machines(project: Project) -> None:
    done = project.run("replay-telemetry", "--json", "traces")
    document = json.loads(done.stdout)
    statuses = {r["root"]: r["status"] for r in document["results"]}
    assert statuses == {"process_order[req_abc123]": "reproduced",
                        "process_order[req_ok]": "passed"}
    assert document["summary"] == {"reproduced": 1, "passed": 1, "total": 2}


def test_usage_and_input_errors_exit_2_without_traceback(project: Project) -> None:
    missing = project.run("replay-telemetry", "nope.jsonl")
    assert missing.returncode == 2
    assert "nope.jsonl: no such file or directory" in missing.stderr
    assert "Traceback" not in missing.stderr
    bad_export = project.run("replay-telemetry", "--export", "svg", "x", "traces")
    assert bad_export.returncode == 2
    assert "valid: perfetto, speedscope, html" in bad_export.stderr
    garbage = project.root / "garbage.jsonl"
    garbage.write_text("not json at all\n{\"event_type\": 5}\n")
    done = project.run("replay-telemetry", "garbage.jsonl")
    assert done.returncode == 2
    assert "garbage.jsonl:1" in done.stdout and "garbage.jsonl:2" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_bad_lines_are_skipped_and_the_rest_replays(project: Project) -> None:
    trace = project.root / "traces" / "healthy_req_ok.jsonl"
    damaged = project.root / "damaged.jsonl"
    damaged.write_text("garbage line\n" + trace.read_text())
    done = project.run("replay-telemetry", "damaged.jsonl")
    assert done.returncode == 0, done.stdout
    assert "skipped: " in done.stdout and "damaged.jsonl:1" in done.stdout


def test_targets_option_overrides_the_ini_file(project: Project) -> None:
    done = project.run("replay-telemetry", "--targets", "somethingelse",
                       "traces/healthy_req_ok.jsonl")
    assert done.returncode == 1
    assert "outside replay_targets (somethingelse)" in done.stdout


def test_step_mode_walks_forward_back_and_to_the_error(project: Project) -> None:
    done = project.run("replay-telemetry", "--step-mode", "traces/incident_abc123.jsonl",
                       stdin="n\ne\nl\nb\nq\n")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "[1/" in out and "[2/" in out
    assert "ERROR ZeroDivisionError" in out
    assert "discount_count = 0" in out  # locals at the error
    assert out.index("ERROR ZeroDivisionError") < out.rindex("EXIT active_discounts")


def test_debugger_stops_where_the_error_recurs_with_replayed_locals(project: Project) -> None:
    done = project.run("replay-telemetry", "--debugger", "traces/incident_abc123.jsonl",
                       stdin="p discount_count\np discounts\nq\n")
    out = done.stdout
    assert "The recorded error recurs: ZeroDivisionError" in out
    assert "Stopping in calculate_tax at line 14" in out
    assert "(Pdb) 0" in out and "(Pdb) []" in out


def test_debugger_after_the_fix_stops_at_the_root_return(project: Project) -> None:
    project.fix_the_bug()
    done = project.run("replay-telemetry", "--debugger", "traces/incident_abc123.jsonl",
                       stdin="p tax_rate\nc\n")
    out = done.stdout
    assert "no longer recurs" in out
    assert "--Return--" in out
    assert "(Pdb) 0.08" in out


def test_profile_compares_recorded_and_replayed_time(project: Project) -> None:
    done = project.run("replay-telemetry", "--profile", "traces/healthy_req_ok.jsonl")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "calculate_tax" in done.stdout and "process_order" in done.stdout
    assert "replayed" in done.stdout.lower()


@pytest.mark.parametrize("kind", ["perfetto", "speedscope", "html"])
def test_export_writes_a_file_of_the_format(project: Project, kind: str) -> None:
    target = project.root / f"timeline.{kind}"
    done = project.run("replay-telemetry", "--export", kind, str(target), "--no-replay",
                       "traces/incident_abc123.jsonl")
    assert done.returncode == 0, done.stdout + done.stderr
    text = target.read_text()
    if kind == "perfetto":
        assert any(e.get("name") == "calculate_tax" for e in json.loads(text)["traceEvents"])
    elif kind == "speedscope":
        assert "speedscope" in json.loads(text)["$schema"]
    else:
        assert "<html" in text.lower() and "ZeroDivisionError" in text


def test_parallel_replays_every_root_with_a_summary(project: Project) -> None:
    source = (project.root / "traces" / "healthy_req_ok.jsonl").read_text()
    many = project.root / "many"
    many.mkdir()
    for index in range(40):
        (many / f"req_{index}.jsonl").write_text(source.replace("req_ok", f"req_{index}"))
    done = project.run("replay-telemetry", "--parallel", "2", "many")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Replayed 40 requests on 2 workers" in done.stdout
    assert "40 passed" in done.stdout
    assert "p50" in done.stdout and "p99" in done.stdout
    assert "40/40" in done.stderr  # the progress bar reached the end


def test_mock_flags_are_on_by_default_and_listed(project: Project) -> None:
    done = project.run("replay-telemetry", "--help")
    assert "--mock-apis, --no-mock-apis" in done.stdout
    assert "--mock-database, --no-mock-database" in done.stdout


def test_code_version_replays_a_git_ref_in_a_worktree(project: Project) -> None:
    project.git("init", "-q")
    project.git("-c", "user.email=t@example.invalid", "-c", "user.name=t", "add", "-A")
    project.git("-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm",
                "buggy")
    project.fix_the_bug()
    project.git("-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qam",
                "fix")
    project.git("checkout", "-q", "HEAD~1")  # the working copy is the buggy version now
    at_fix = project.run("replay-telemetry", "--code-version", "main", "--no-color",
                         "traces/incident_abc123.jsonl")
    if "main" not in project.git("branch", "--list"):
        at_fix = project.run("replay-telemetry", "--code-version", "master",
                             "traces/incident_abc123.jsonl")
    assert at_fix.returncode == 0, at_fix.stdout + at_fix.stderr
    assert "fixed: ZeroDivisionError no longer raised" in at_fix.stdout
    here = project.run("replay-telemetry", "traces/incident_abc123.jsonl")
    assert here.returncode == 1
    worktrees = project.git("worktree", "list")
    assert len(worktrees.strip().splitlines()) == 1  # the temporary worktree is gone


def test_unknown_ref_is_a_usage_error(project: Project) -> None:
    subprocess.run(["git", "init", "-q"], cwd=project.root, check=True)
    done = project.run("replay-telemetry", "--code-version", "no-such-ref", "traces")
    assert done.returncode == 2
    assert "--code-version" in done.stderr


def test_distributed_view_joins_services_by_trace_id(project: Project) -> None:
    checkout = [
        {"event_type": "function_entry", "timestamp_ns": 1_000_000_000, "correlation_id": "a1",
         "trace_id": "t-42", "service": "checkout_service", "function_name": "checkout",
         "args": {}},
        {"event_type": "http_call", "timestamp_ns": 1_001_000_000, "correlation_id": "a1",
         "trace_id": "t-42", "service": "checkout_service", "method": "POST",
         "url": "http://inventory/reserve", "status": 503, "duration_ns": 5_000_000_000},
        {"event_type": "function_exit", "timestamp_ns": 6_100_000_000, "correlation_id": "a1",
         "function_name": "checkout", "error": True, "error_type": "TimeoutError"},
    ]
    inventory = [
        {"event_type": "function_entry", "timestamp_ns": 1_002_000_000, "correlation_id": "b1",
         "parent_correlation_id": "a1", "trace_id": "t-42", "service": "inventory_service",
         "function_name": "reserve", "args": {}},
        {"event_type": "error", "timestamp_ns": 6_000_000_000, "correlation_id": "b1",
         "error_type": "TimeoutError", "message": "database timed out"},
        {"event_type": "function_exit", "timestamp_ns": 6_050_000_000, "correlation_id": "b1",
         "function_name": "reserve", "error": True},
    ]
    for name, events in (("checkout.jsonl", checkout), ("inventory.jsonl", inventory)):
        (project.root / name).write_text("".join(json.dumps(e) + "\n" for e in events))
    done = project.run("replay-telemetry", "--distributed-view", "--no-replay",
                       "checkout.jsonl", "inventory.jsonl")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "checkout_service" in out and "inventory_service" in out
    assert out.index("checkout_service") < out.index("inventory_service")
    assert "TimeoutError" in out


def test_http_overrides_answer_what_the_incident_never_reached(tmp_path: Path) -> None:
    import shutil
    import sys as _sys

    repository = Path(__file__).resolve().parents[2]
    shutil.copytree(repository / "demo", tmp_path / "demo",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\npythonpath = ["."]\nreplay_targets = ["demo"]\n')
    subprocess.run([_sys.executable, "-m", "demo.record", "--out", "traces"], cwd=tmp_path,
                   check=True, timeout=120, capture_output=True)
    shop = tmp_path / "demo" / "shop.py"
    shop.write_text(shop.read_text().replace(
        "sum(discounts) / discount_count  #", "sum(discounts) / max(discount_count, 1)  #"))
    tool = str(Path(_sys.executable).with_name("replay-telemetry"))
    env = {**os.environ, "NO_COLOR": "1"}
    without = subprocess.run([tool, "traces/incident_abc123.jsonl"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120, check=False)
    assert without.returncode == 1
    assert "unrecorded external call: http POST" in without.stdout
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps([{"method": "POST", "url": ".*/v1/charges$",
                                    "json": {"id": "ch_cli", "status": "succeeded"}}]))
    done = subprocess.run([tool, "--http-overrides", str(answers),
                           "traces/incident_abc123.jsonl"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "fixed: ZeroDivisionError no longer raised" in done.stdout
    as_json = subprocess.run([tool, "--json", "--events", "--http-overrides", str(answers),
                              "traces/incident_abc123.jsonl"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120, check=False)
    root_exit = [e for e in json.loads(as_json.stdout)["results"][0]["replayed_events"]
                 if e["event_type"] == "function_exit" and e["function_name"] == "process_order"]
    assert root_exit[0]["return_value"]["charge"] == "ch_cli"
