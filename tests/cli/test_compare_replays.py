"""``compare-replays`` as a subprocess, and the statistics it states its verdicts with."""

from __future__ import annotations

import json
import random

import pytest

from pytest_replay.abtest.stats import mann_whitney_u, percentile, two_proportion_z_test
from tests.cli.conftest import Project


def test_two_proportion_z_test_matches_a_hand_computed_reference() -> None:
    # 23/1000 vs 11/1000: pooled p = 0.017, se = sqrt(.017*.983*.002) = 0.0057812
    result = two_proportion_z_test(23, 1000, 11, 1000)
    assert result.statistic == pytest.approx(-2.0757, abs=1e-3)
    assert result.p_value == pytest.approx(0.0379, abs=1e-3)
    assert result.significant()
    assert not two_proportion_z_test(5, 100, 6, 100).significant()


def test_mann_whitney_detects_a_shift_and_not_noise() -> None:
    rng = random.Random(7)
    a = [rng.gauss(100, 10) for _ in range(200)]
    same = [rng.gauss(100, 10) for _ in range(200)]
    faster = [rng.gauss(90, 10) for _ in range(200)]
    assert mann_whitney_u(a, faster).significant()
    assert not mann_whitney_u(a, same).significant()
    # a small case checked by hand: U for [1, 2] vs [3, 4] is 0
    assert mann_whitney_u([1.0, 2.0], [3.0, 4.0]).statistic == 0.0
    assert percentile([5.0, 1.0, 3.0], 0.5) == 3.0


def test_recorded_sides_b_regresses_exit_1(project: Project) -> None:
    done = project.run("compare-replays", "traces/healthy_req_ok.jsonl",
                       "traces/incident_abc123.jsonl")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Error Rate:" in done.stdout
    assert "B regresses" in done.stdout


def test_same_set_replayed_per_request_verdicts_and_json(project: Project) -> None:
    done = project.run("compare-replays", "--replay", "--json", "traces", "traces")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert {p["verdict"] for p in document["pairs"]} == {"same"}
    assert document["b_regresses"] is False


def test_a_fix_on_side_b_is_an_improvement_not_a_regression(project: Project) -> None:
    project.git("init", "-q")
    email = ("-c", "user.email=t@example.invalid", "-c", "user.name=t")
    project.git(*email, "add", "-A")
    project.git(*email, "commit", "-qm", "buggy")
    buggy = project.git("rev-parse", "HEAD").strip()
    project.fix_the_bug()
    project.git(*email, "commit", "-qam", "fix")
    fixed = project.git("rev-parse", "HEAD").strip()
    done = project.run("compare-replays", "--a-code-version", buggy, "--b-code-version",
                       fixed, "--json", "traces", "traces", timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    document = json.loads(done.stdout)
    pairs = {p["key"]: p for p in document["pairs"]}
    assert pairs["process_order[req_abc123]"]["verdict"] == "different_outcome"
    assert pairs["process_order[req_ok]"]["verdict"] == "same"
    assert document["improvements"] and not document["regressions"]


def test_variant_arms_state_whether_the_difference_is_beyond_noise(project: Project) -> None:
    healthy = (project.root / "traces" / "healthy_req_ok.jsonl").read_text()
    incident = (project.root / "traces" / "incident_abc123.jsonl").read_text()
    arm_a = project.root / "arm_a"
    arm_b = project.root / "arm_b"
    arm_a.mkdir()
    arm_b.mkdir()
    for index in range(60):  # A fails 1 in 3, B never
        text = incident if index % 3 == 0 else healthy
        rid = "req_abc123" if index % 3 == 0 else "req_ok"
        (arm_a / f"a{index}.jsonl").write_text(text.replace(rid, f"a{index}"))
        (arm_b / f"b{index}.jsonl").write_text(healthy.replace("req_ok", f"b{index}"))
    done = project.run("compare-replays", "--variant", "arm_a", "arm_b")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "two-proportion z-test" in done.stdout
    assert "beyond noise" in done.stdout
    assert "Winner: B" in done.stdout
    flipped = project.run("compare-replays", "--variant", "arm_b", "arm_a")
    assert flipped.returncode == 1
    assert "B regresses" in flipped.stdout
