"""Traces naming callables outside the targets (or aliases, dunders, odd names) are refused.

Each is refused before anything is imported or called: no marker file is
written and ``sys.modules`` gains no module outside the targets. Both through
the engine API and through a real pytest run, where the item fails with the
refusal and the session goes on.
"""

from __future__ import annotations

import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.security.hostile_check import NEVER_IMPORTED, assert_refused, trace_file
from tests.security.hostile_corpus import CASES, TARGET_CASES, Hostile
from tests.security.secsupport import (
    BRITTLE,
    TARGET,
    Packages,
    entry,
    exit_,
    replay_file,
    write_packages,
    write_trace,
)


@pytest.mark.parametrize("case", TARGET_CASES, ids=[c.id for c in TARGET_CASES])
def test_engine_refuses_hostile_target(case: Hostile, packages: Packages, tmp_path: Path) -> None:
    """ReplayEngine(...).replay(root) answers not_replayable and touches nothing."""
    message = assert_refused(case, tmp_path, packages)
    assert message.startswith("refused: ")


def test_refusal_names_the_configured_targets(packages: Packages, tmp_path: Path) -> None:
    """The message says what is allowed, so the developer knows what to change."""
    path = write_trace(tmp_path / "t.jsonl", [entry("os", "system", {"command": "id"}),
                                              exit_("system", 0)])
    message = replay_file(path, (TARGET, "other_pkg")).only.message
    assert message == ("refused: os:system: module 'os' is outside replay_targets "
                       "(sec_target, other_pkg); refusing to import it")


def test_no_targets_configured_refuses_everything(packages: Packages, tmp_path: Path) -> None:
    """Without replay_targets nothing at all is replayed, not even a real target."""
    path = write_trace(tmp_path / "t.jsonl", [entry(f"{TARGET}.app", "add", {"a": 1, "b": 2}),
                                              exit_("add", 3)])
    result = replay_file(path, ()).only
    assert result.status == "not_replayable"
    assert "no replay_targets configured" in result.message
    assert "pyproject.toml" in result.message


def test_target_functions_do_run_with_recorded_arguments(packages: Packages,
                                                         tmp_path: Path) -> None:
    """The documented limit: a trace may call a *target* with arguments of its choosing.

    docs/security.md says so; this test keeps the statement honest.
    """
    victim = tmp_path / "written-by-replay.txt"
    path = write_trace(tmp_path / "t.jsonl", [
        entry(f"{TARGET}.app", "write_marker", {"path": str(victim), "text": "chosen by trace"}),
        exit_("write_marker", "chosen by trace"),
    ])
    result = replay_file(path, (TARGET,)).only
    assert result.status == "passed", result.message
    assert victim.read_text(encoding="utf-8") == "chosen by trace\n"


# ---------------------------------------------------------------- through pytest

_CONFTEST = '''
from __future__ import annotations

import json
import sys
from pathlib import Path


def pytest_sessionfinish(session):
    Path("modules.json").write_text(json.dumps(sorted(sys.modules)), encoding="utf-8")
'''


def test_pytest_run_fails_each_hostile_item_and_goes_on(pytester: pytest.Pytester) -> None:
    """Every hostile trace is one failing item whose report is the refusal; the rest pass."""
    made = write_packages(pytester.path)
    pytester.makepyprojecttoml(f"""
        [tool.pytest.ini_options]
        pythonpath = ["."]
        replay_targets = ["{TARGET}"]
        replay_paths = ["traces"]
    """)
    pytester.makeconftest(_CONFTEST)
    traces = pytester.path / "traces"
    cases = [c for c in CASES if c.targets == (TARGET,)]
    files = {trace_file(case, traces).stem: case for case in cases}
    write_trace(traces / "a_legit.jsonl", [entry(f"{TARGET}.app", "add", {"a": 2, "b": 3}),
                                           exit_("add", 5)])
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--junitxml=report.xml")
    result.assert_outcomes(passed=1, failed=len(cases))
    result.stdout.fnmatch_lines([
        "*assert replay of system[[]req_sec[]] == the recording*",
        "*refused: os:system: module 'os' is outside replay_targets (sec_target); "
        "refusing to import it*",
    ])
    failures = _junit_failures(pytester.path / "report.xml")
    assert sorted(failures) == sorted(files)
    for stem, text in failures.items():
        case = files[stem]
        expect = case.expect.removeprefix("^")
        assert re.search(expect, text), f"{case.id}: report {text!r} lacks {expect!r}"
        assert "Traceback" not in text, f"{case.id}: report shows a traceback:\n{text}"
    assert made.marks() == []
    modules = json.loads((pytester.path / "modules.json").read_text(encoding="utf-8"))
    assert [m for m in NEVER_IMPORTED if m in modules] == []


def _junit_failures(report: Path) -> dict[str, str]:
    """``{trace file stem: failure text}`` of every failed testcase."""
    failures: dict[str, str] = {}
    for case in ET.parse(report).iter("testcase"):
        failure = case.find("failure")
        if failure is None:
            continue
        stem = case.attrib["classname"].split(".")[-2]
        failures[stem] = (failure.attrib.get("message", "") + "\n" + (failure.text or ""))
    return failures


# ---------------------------------------------------------------- odd fields, clear answers


def test_out_of_range_timestamp_is_refused_not_raised(packages: Packages, tmp_path: Path) -> None:
    """A timestamp no clock can hold makes the root not replayable, naming the field.

    Today ``recorded_moment`` raises OverflowError out of ``ReplayEngine.replay``.
    """
    path = write_trace(tmp_path / "t.jsonl", [
        entry(f"{TARGET}.app", "add", {"a": 1, "b": 2}, timestamp_ns=10**30), exit_("add", 3)])
    result = replay_file(path, (TARGET,)).only
    assert result.status == "not_replayable"
    assert "timestamp_ns" in result.message


def test_bare_name_lookup_survives_a_target_module_that_raises(packages: Packages,
                                                               tmp_path: Path) -> None:
    """A seed-style trace still resolves when one target sub-package raises at import.

    Today the RuntimeError escapes ``pkgutil.walk_packages`` (no ``onerror``) and
    out of ``ReplayEngine.replay``.
    """
    path = write_trace(tmp_path / "t.jsonl", [
        entry(None, None, {"value": 4}, function_name="handle"), exit_("handle", 4)])
    result = replay_file(path, (BRITTLE,)).only
    assert result.status == "passed", result.message


def test_events_inside_a_root_import_nothing(packages: Packages, tmp_path: Path) -> None:
    """Only the root is resolved: child calls, errors and unknown events naming outside code
    are compared as data, never imported."""
    child = {**entry("antigravity", "fly", {"x": {"$type": "object", "class": "os:system"}},
                     cid="child"), "parent_correlation_id": "req_sec"}
    events = [
        entry(f"{TARGET}.app", "add", {"a": 1, "b": 2}), child,
        {"event_type": "variable_change", "timestamp_ns": 2, "correlation_id": "child",
         "variable_name": "payload", "value": {"$type": "object", "class": "subprocess:Popen"}},
        {"event_type": "error", "timestamp_ns": 3, "correlation_id": "child",
         "error_type": "Heavy", "error_module": "sec_lazy", "message": "x"},
        {"event_type": "import_module", "timestamp_ns": 4, "correlation_id": "req_sec",
         "module": "sec_outside.tools"},
        exit_("fly", 0, cid="child"), exit_("add", 3),
    ]
    before = set(sys.modules)
    result = replay_file(write_trace(tmp_path / "t.jsonl", events), (TARGET,)).only
    assert result.status in ("passed", "diverged"), result.message
    gained = [m for m in set(sys.modules) - before
              if not m.startswith((TARGET, "pytest_replay."))]  # the engine's own lazy imports
    assert gained == []
    assert [m for m in NEVER_IMPORTED if m in sys.modules] == []
    assert packages.marks() == []
