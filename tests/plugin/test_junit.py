"""``--junitxml``: CI reads the divergence (and the reproduced incident) from the XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from tests.plugin.replay_project import HEALTHY, HEALTHY_2, INCIDENT, REGRESSED_777, ReplayProject


def test_the_divergence_and_the_incident_are_in_the_junit_xml(
        project: ReplayProject, xdist_args: tuple[str, ...]) -> None:
    project.record("incident_abc123.jsonl", [INCIDENT])
    project.record("healthy.jsonl", [HEALTHY, HEALTHY_2])
    project.write_app(REGRESSED_777)
    project.run_with(xdist_args, "--junitxml=report.xml").assert_outcomes(passed=1, failed=2)
    root = ET.parse(project.path / "report.xml").getroot()
    cases = {case.get("name"): case for case in root.iter("testcase")}
    assert set(cases) == {"process_order[req_abc123]", "process_order[req_ok777]",
                          "process_order[req_ok4242]"}
    assert {case.get("classname") for case in cases.values()} == {
        "traces.incident_abc123.jsonl", "traces.healthy.jsonl"}

    diverged = cases["process_order[req_ok777]"].find("failure")
    assert diverged is not None
    assert diverged.get("message", "").startswith(
        "assert replay of process_order[req_ok777] == the recording")
    assert "first divergent event #5 at process_order > calculate_tax > active_discounts: " \
           "return_value[1]: recorded 10.0, now 20.0" in diverged.get("message", "")
    assert "recorded (trace line" in (diverged.text or "")
    assert "matched just before:" in (diverged.text or "")

    incident = cases["process_order[req_abc123]"].find("failure")
    assert incident is not None
    assert "incident reproduces: ZeroDivisionError in calculate_tax" in (incident.text or "")

    assert cases["process_order[req_ok4242]"].find("failure") is None
    properties = {p.get("name"): p.get("value")
                  for p in cases["process_order[req_ok777]"].iter("property")}
    assert properties["replay_status"] == "diverged"
    assert "replay_baseline" not in properties


def test_update_runs_keep_baseline_payloads_out_of_the_xml(project: ReplayProject) -> None:
    project.record("healthy.jsonl", [HEALTHY])
    project.run("--replay-update", "--junitxml=report.xml").assert_outcomes(passed=1)
    text = (project.path / "report.xml").read_text(encoding="utf-8")
    assert 'name="replay_status" value="passed"' in text
    assert "replay_baseline" not in text
    assert "telemetry-replay-baseline" not in text
