"""Collection: ``*.jsonl`` under ``replay_paths`` become one item per recorded root."""

from __future__ import annotations

from tests.plugin.replay_project import HEALTHY, HEALTHY_2, INCIDENT, REGRESSED_777, ReplayProject


def test_one_item_per_root_with_trace_file_ids(project: ReplayProject) -> None:
    project.record("incident_abc123.jsonl", [INCIDENT])
    project.record("healthy.jsonl", [HEALTHY, HEALTHY_2])
    result = project.run("--collect-only", "-q")
    result.stdout.fnmatch_lines([
        "traces/healthy.jsonl::process_order[[]req_ok777[]]",
        "traces/healthy.jsonl::process_order[[]req_ok4242[]]",
        "traces/incident_abc123.jsonl::process_order[[]req_abc123[]]",
        "3 tests collected*",
    ])


def test_only_jsonl_files_under_replay_paths_are_collected(project: ReplayProject) -> None:
    project.record("healthy.jsonl", [HEALTHY])
    (project.traces / "notes.json").write_text("{}", encoding="utf-8")
    (project.traces / "README.txt").write_text("traces", encoding="utf-8")
    elsewhere = project.path / "logs"
    elsewhere.mkdir()
    (elsewhere / "production.jsonl").write_bytes((project.traces / "healthy.jsonl").read_bytes())
    result = project.run("--collect-only", "-q")
    result.stdout.fnmatch_lines(["traces/healthy.jsonl::process_order[[]req_ok777[]]",
                                 "1 test collected*"])


def test_a_bare_pytest_with_testpaths_also_collects_the_traces(project: ReplayProject) -> None:
    project.configure('testpaths = ["tests"]')
    project.record("healthy.jsonl", [HEALTHY])
    (project.path / "tests").mkdir()
    (project.path / "tests" / "test_unit.py").write_text("def test_unit():\n    pass\n",
                                                        encoding="utf-8")
    result = project.run()
    result.assert_outcomes(passed=2)


def test_k_selects_items_by_request_id(project: ReplayProject) -> None:
    project.record("healthy.jsonl", [HEALTHY, HEALTHY_2])
    result = project.run("-k", "req_ok4242", "-v")
    result.assert_outcomes(passed=1, deselected=1)
    result.stdout.fnmatch_lines(["traces/healthy.jsonl::process_order[[]req_ok4242[]] PASSED*"])


def test_lf_reruns_only_the_roots_that_failed(project: ReplayProject) -> None:
    project.record("incident_abc123.jsonl", [INCIDENT])
    project.record("healthy.jsonl", [HEALTHY, HEALTHY_2])
    project.run().assert_outcomes(passed=2, failed=1)
    result = project.run("--lf", "-v")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "run-last-failure: rerun previous 1 failure*",
        "*traces/incident_abc123.jsonl::process_order[[]req_abc123[]] FAILED*",
    ])


def test_a_corrupt_line_fails_its_traces_items_naming_file_and_line(
        project: ReplayProject) -> None:
    project.record("healthy.jsonl", [HEALTHY])
    lines = project.record("cut.jsonl", [HEALTHY_2]).read_text(encoding="utf-8").splitlines()
    assert '"variable_change"' in lines[2]
    cut = [*lines[:2], lines[2][:30], *lines[3:]]  # a line cut in the middle of an event
    project.write_trace("cut.jsonl", cut)
    typed = [*lines[:2], lines[2].replace('"timestamp_ns":', '"timestamp_ns":"soon","t":', 1),
             *lines[3:]]
    project.write_trace("typed.jsonl", typed)
    project.write_trace("garbage.jsonl", ["this is not json"])
    project.write_trace("empty.jsonl", [])
    result = project.run()
    result.assert_outcomes(passed=1, failed=4)
    result.stdout.fnmatch_lines_random([
        "*/traces/cut.jsonl:3:*: not valid JSON*",
        "*/traces/typed.jsonl:3: field 'timestamp_ns': must be an integer, got string",
        "*/traces/garbage.jsonl:1:1: not valid JSON*",
        "*/traces/empty.jsonl: no function_entry without a parent: nothing to replay",
        "FAILED traces/cut.jsonl::process_order[[]req_ok4242[]]*",
        "FAILED traces/typed.jsonl::process_order[[]req_ok4242[]]*",
        "FAILED traces/garbage.jsonl::trace*",
        "FAILED traces/empty.jsonl::trace*",
    ])
    assert result.ret == 1


HOSTILE = [
    ("h1", {"module": "os", "qualname": "system", "args": {"command": "touch {marker}"}}),
    ("h2", {"module": "subprocess", "qualname": "run", "args": {"args": ["touch", "{marker}"]}}),
    ("h3", {"module": "builtins", "qualname": "eval",
            "args": {"source": "open('{marker}', 'w')"}}),
    ("h4", {"module": "app.shop", "qualname": "os.system", "args": {"command": "touch {marker}"}}),
    ("h5", {"module": "app.shop", "qualname": "run_command",
            "args": {"args": ["touch", "{marker}"]}}),
    ("h6", {"module": "app.shop", "qualname": "calculate_tax.__class__.__subclasses__",
            "args": {}}),
    ("h7", {"function_name": "system", "args": {"command": "touch {marker}"}}),
    ("h8", {"module": "evil", "qualname": "run", "args": {}}),
]


def test_hostile_traces_are_refused_and_nothing_is_called(project: ReplayProject) -> None:
    marker = project.path / "called"
    (project.path / "evil.py").write_text(f"open({str(marker)!r}, 'w').close()\n"
                                          "def run():\n    pass\n", encoding="utf-8")
    lines = []
    for cid, fields in HOSTILE:
        text = repr(fields).replace("{marker}", str(marker))
        event = {"event_type": "function_entry", "timestamp_ns": 1698765432123456789,
                 "correlation_id": cid, "function_name": cid,
                 **eval_free_literal(text)}
        lines.append(event)
    project.write_trace("hostile.jsonl", lines)
    result = project.run()
    result.assert_outcomes(failed=len(HOSTILE))
    result.stdout.fnmatch_lines_random([
        "*h1*refused: os:system: module 'os' is outside replay_targets (app); refusing to "
        "import it",
        "*h2*refused: subprocess:run: module 'subprocess' is outside replay_targets*",
        "*h3*refused: builtins:eval: module 'builtins' is outside replay_targets*",
        "*h4*refused: app.shop:os.system: 'os' is a module (os)*",
        "*h5*refused: app.shop:run_command: resolves to a function defined in 'subprocess'*",
        "*h6*refused: *dunder attribute paths are never replayed",
        "*h7*refused: function 'system' is not defined in replay_targets (app)",
        "*h8*refused: evil:run: module 'evil' is outside replay_targets*",
    ])
    assert not marker.exists()


def eval_free_literal(text: str) -> dict[str, object]:
    """Parse the dict literal back (``ast.literal_eval``: no code runs)."""
    import ast

    value = ast.literal_eval(text)
    assert isinstance(value, dict)
    return value


def test_a_divergent_trace_never_stops_the_others(project: ReplayProject) -> None:
    project.record("a.jsonl", [HEALTHY])
    project.record("b.jsonl", [HEALTHY_2])
    project.write_trace("c.jsonl", ["{"])
    project.write_app(REGRESSED_777)
    result = project.run()
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines_random(["FAILED traces/a.jsonl::process_order[[]req_ok777[]]*",
                                        "FAILED traces/c.jsonl::trace*"])


def test_conftest_files_in_subdirectories_do_not_break_the_session(
        project: ReplayProject) -> None:
    """pluggy keeps plugins in sets when a conftest applies to some items only."""
    project.record("healthy.jsonl", [HEALTHY])
    for name in ("a", "b"):
        folder = project.path / "tests" / name
        folder.mkdir(parents=True)
        (folder / "conftest.py").write_text("def pytest_runtest_setup(item):\n    pass\n",
                                            encoding="utf-8")
        (folder / f"test_{name}.py").write_text("def test_it():\n    pass\n", encoding="utf-8")
    result = project.run("traces", "tests")
    result.assert_outcomes(passed=3)
    result.stdout.no_fnmatch_line("*INTERNALERROR*")


def test_symlinks_are_followed_where_they_lead(project: ReplayProject) -> None:
    """A trace counts as under replay_paths when its real location is (as before caching)."""
    project.record("healthy.jsonl", [HEALTHY])
    outside = project.path / "logs"
    outside.mkdir()
    (outside / "stray.jsonl").write_bytes((project.traces / "healthy.jsonl").read_bytes())
    (project.traces / "linked_out.jsonl").symlink_to(outside / "stray.jsonl")
    (project.traces / "linked_dir").symlink_to(outside, target_is_directory=True)
    (outside / "linked_in.jsonl").symlink_to(project.traces / "healthy.jsonl")
    result = project.run("--collect-only", "-q", "traces", "logs")
    result.stdout.fnmatch_lines(["traces/healthy.jsonl::process_order[[]req_ok777[]]",
                                 "traces/linked_dir/linked_in.jsonl::process_order[[]req_ok777[]]",
                                 "logs/linked_in.jsonl::process_order[[]req_ok777[]]",
                                 "3 tests collected*"])


def test_an_item_lets_its_verdict_go_once_reported(project: ReplayProject) -> None:
    """Kept by every item of a long session, verdicts slowed garbage collection down."""
    project.record("healthy.jsonl", [HEALTHY])
    project.record("incident.jsonl", [INCIDENT])
    project.pytester.makeconftest("""
        from pathlib import Path

        import pytest

        @pytest.hookimpl(wrapper=True)
        def pytest_runtest_makereport(item, call):
            report = yield
            with Path("kept.txt").open("a") as out:
                out.write(f"{item.name} {call.when} {item.result is not None}\\n")
            return report
    """)
    result = project.run()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*incident reproduces: ZeroDivisionError*"])
    kept = sorted((project.path / "kept.txt").read_text().splitlines())
    assert kept == [
        "process_order[req_abc123] call True", "process_order[req_abc123] setup False",
        "process_order[req_abc123] teardown False",
        "process_order[req_ok777] call True", "process_order[req_ok777] setup False",
        "process_order[req_ok777] teardown False",
    ]
