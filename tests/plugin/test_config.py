"""Configuration: ``replay_*`` ini keys and ``--replay-*`` options, their effects and errors."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pytest_replay.config import ReplayConfig
from pytest_replay.format.values import Limits
from pytest_replay.plugin import STASH_KEY
from tests.plugin.replay_project import HEALTHY, SHOP, ReplayProject

TOTAL_ROUNDED = SHOP.replace('"total": round(amount + tax, 2)', '"total": round(amount + tax)')
"""Only ``process_order``'s ``return_value.total`` changes (215.4 -> 215)."""
TAX_NUDGED = SHOP.replace("    return round((amount - discount_amount) * rate, 2)\n",
                          "    return round((amount - discount_amount) * rate, 2) * (1 + 1e-7)\n")
"""``calculate_tax`` returns 15.4 * (1 + 1e-7): a relative change of 1e-7."""


def resolved(project: ReplayProject, *args: str) -> ReplayConfig:
    config = project.pytester.parseconfigure(*args)
    return config.stash[STASH_KEY].config


def test_ini_keys_are_read_from_pyproject(project: ReplayProject) -> None:
    project.configure('replay_paths = ["prod_traces", "more"]\n'
                      'replay_ignore = ["process_order.return_value.total"]\n'
                      'replay_float_tolerance = "1e-6"\n'
                      'replay_allowed_types = ["fractions:Fraction"]')
    config = resolved(project)
    assert config.targets == ("app",)
    assert config.paths == ("prod_traces", "more")
    assert config.ignore == ("process_order.return_value.total",)
    assert config.float_tolerance == 1e-6
    assert config.allowed_types == ("fractions:Fraction",)
    assert config.rootdir == project.path


def test_defaults(project: ReplayProject) -> None:
    config = resolved(project)
    assert (config.paths, config.ignore, config.float_tolerance) == (("traces",), (), 1e-9)


def test_pytest_ini_works_as_well(project: ReplayProject) -> None:
    (project.path / "pyproject.toml").unlink()
    project.pytester.makefile(".ini", pytest="[pytest]\nreplay_targets =\n    app\n    lib\n")
    assert resolved(project).targets == ("app", "lib")


def test_the_command_line_overrides_the_ini_targets(project: ReplayProject) -> None:
    assert resolved(project, "--replay-targets", "app,billing").targets == ("app", "billing")


@pytest.mark.parametrize(("ini", "args", "error"), [
    ('replay_targets = ["os;rm"]', (), "*replay_targets: 'os;rm' is not a module or package name "
                                       "(dotted identifiers, no dunders)"),
    ('replay_targets = ["app.__init__"]', (), "*'app.__init__' is not a module or package name*"),
    ('replay_float_tolerance = "lots"', (), "*replay_float_tolerance must be a number like 1e-6, "
                                            "got 'lots'"),
    ('replay_float_tolerance = "2"', (), "*replay_float_tolerance must be in [[]0, 1), got 2.0"),
    ("", ("--replay-targets", "__main__"), "*--targets: '__main__' is not a module or package*"),
    ('replay_capture_limits = ["max_strr = 1"]', (),
     "*replay_capture_limits: 'max_strr = 1' must be 'name = number' with name one of max_str*"),
    ('replay_capture_limits = ["max_str = lots"]', (),
     "*replay_capture_limits: max_str must be a whole number, got 'lots'"),
    ('replay_capture_limits = ["max_items = 0"]', (),
     "*replay_capture_limits: max_items must be at least 1, got 0"),
])
def test_bad_values_are_usage_errors_naming_the_key(project: ReplayProject, ini: str,
                                                   args: tuple[str, ...], error: str) -> None:
    if ini.startswith("replay_targets"):
        (project.path / "pyproject.toml").write_text(
            f'[tool.pytest.ini_options]\npythonpath = ["."]\n{ini}\n', encoding="utf-8")
    else:
        project.configure(ini)
    result = project.run(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {error}"])


def test_without_replay_targets_items_fail_saying_how_to_configure(
        project: ReplayProject) -> None:
    project.record("healthy.jsonl", [HEALTHY])
    (project.path / "pyproject.toml").write_text('[tool.pytest.ini_options]\npythonpath = ["."]\n',
                                                 encoding="utf-8")
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*refused: app.shop:process_order: no replay_targets configured; "
                                 "add the package that holds 'app.shop' to replay_targets in "
                                 "pyproject.toml [[]tool.pytest.ini_options[]]"])


def test_replay_paths_chooses_where_traces_are_collected(project: ReplayProject) -> None:
    project.record("healthy.jsonl", [HEALTHY])
    (project.path / "prod_traces").mkdir()
    (project.traces / "healthy.jsonl").rename(project.path / "prod_traces" / "incident.jsonl")
    project.record("ignored.jsonl", [HEALTHY])
    project.configure('replay_paths = ["prod_traces"]')
    result = project.run("--collect-only", "-q")
    result.stdout.fnmatch_lines(["prod_traces/incident.jsonl::process_order[[]req_ok777[]]",
                                 "1 test collected*"])


def test_replay_ignore_skips_a_field(project: ReplayProject) -> None:
    project.record("healthy.jsonl", [HEALTHY])
    project.write_app(TOTAL_ROUNDED)
    failed = project.run()
    failed.assert_outcomes(failed=1)
    failed.stdout.fnmatch_lines(["*first divergent event #7 at process_order: "
                                 "return_value.total: recorded 215.4, now 215"])
    project.configure('replay_ignore = ["process_order.return_value.total"]')
    project.run().assert_outcomes(passed=1)


def test_replay_float_tolerance_is_honoured(project: ReplayProject) -> None:
    project.record("healthy.jsonl", [HEALTHY])
    project.write_app(TAX_NUDGED)
    failed = project.run()
    failed.assert_outcomes(failed=1)
    failed.stdout.fnmatch_lines(["*at process_order > calculate_tax: return_value: recorded 15.4,"
                                 " now 15.40000154*"])
    project.configure('replay_float_tolerance = "1e-6"')
    project.run().assert_outcomes(passed=1)


def test_replay_allowed_types_lets_one_outside_class_decode(project: ReplayProject) -> None:
    project.write_app("from types import SimpleNamespace\n\nimport pytest_replay as replay\n\n\n"
                      "@replay.traced\ndef share(part: SimpleNamespace) -> str:\n"
                      "    return f'{part.numerator}/{part.denominator * 2}'\n", module="billing")
    project.record("share.jsonl", [("req_share", "share", (SimpleNamespace(numerator=1,
                                                                           denominator=3),))],
                   module="app.billing")
    refused = project.run()
    refused.assert_outcomes(failed=1)
    refused.stdout.fnmatch_lines(["*argument 'part' holds a recorded types:SimpleNamespace that "
                                  "replay may not rebuild*replay_allowed_types*"])
    project.configure('replay_allowed_types = ["types:SimpleNamespace"]')
    project.run().assert_outcomes(passed=1)


def test_replay_capture_limits_caps_values_as_production_did(project: ReplayProject) -> None:
    project.write_app("import pytest_replay as replay\n\n\n@replay.traced\n"
                      "def shout(text: str) -> str:\n    return text.upper()\n", module="notes")
    project.record("long.jsonl", [("req_long", "shout", ("a" * 3000,))], module="app.notes",
                   limits=Limits(max_str=4096))  # production kept strings up to 4096
    cut_short = project.run()  # replay's capture, at the default 2048, cuts them
    cut_short.assert_outcomes(failed=1)
    cut_short.stdout.fnmatch_lines(["*first divergent event*shout*"])
    project.configure('replay_capture_limits = ["max_str = 4096", "max_items = 200"]')
    assert resolved(project).capture_limits == (("max_str", 4096), ("max_items", 200))
    project.run().assert_outcomes(passed=1)


def test_the_replay_config_fixture_shows_the_resolved_settings(project: ReplayProject) -> None:
    project.pytester.makepyfile(test_settings="""
        def test_settings(replay_config):
            assert replay_config.targets == ("app",)
            assert replay_config.paths == ("traces",)
    """)
    project.run("test_settings.py").assert_outcomes(passed=1)


def test_capture_limits_split_into_value_caps_and_the_http_body_cap() -> None:
    config = ReplayConfig(capture_limits=(("max_str", 4096), ("max_body", 65_536)))
    limits = config.value_limits()
    assert (limits.max_str, limits.max_items) == (4096, Limits().max_items)
    assert config.http_max_body() == 65_536
    assert ReplayConfig().http_max_body() == 16 * 1024  # capture's own default
