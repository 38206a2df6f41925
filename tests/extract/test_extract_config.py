"""The configuration file pytest would read is the one the command-line tools read."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_replay.inifile import ConfigError, as_lines, find_config, read_ini


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_pyproject_values_keep_their_toml_types(tmp_path: Path) -> None:
    _write(tmp_path / "pyproject.toml", '[tool.pytest.ini_options]\n'
           'replay_redact_keys = ["a", "b"]\nreplay_float_tolerance = 0.01\nflag = true\n')
    assert read_ini(tmp_path) == {"replay_redact_keys": ["a", "b"],
                                  "replay_float_tolerance": "0.01", "flag": "true"}


def test_pytest_ini_wins_over_pyproject_in_the_same_directory(tmp_path: Path) -> None:
    _write(tmp_path / "pyproject.toml", '[tool.pytest.ini_options]\nreplay_redact_keys = ["x"]\n')
    _write(tmp_path / "pytest.ini", "[pytest]\nreplay_redact_keys =\n    one\n    two\n")
    values = read_ini(tmp_path)
    assert as_lines(values["replay_redact_keys"]) == ["one", "two"]


def test_an_empty_pytest_ini_still_wins(tmp_path: Path) -> None:
    _write(tmp_path / "pyproject.toml", '[tool.pytest.ini_options]\nreplay_redact_keys = ["x"]\n')
    _write(tmp_path / "pytest.ini", "")
    assert find_config(tmp_path) == (tmp_path / "pytest.ini").resolve()
    assert read_ini(tmp_path) == {}


def test_files_without_a_pytest_section_are_passed_over(tmp_path: Path) -> None:
    _write(tmp_path / "pyproject.toml", "[tool.black]\nline-length = 100\n")
    _write(tmp_path / "tox.ini", "[tox]\nenvlist = py311\n")
    _write(tmp_path / "setup.cfg", "[tool:pytest]\nreplay_redact_keys = from_setup_cfg\n")
    assert read_ini(tmp_path) == {"replay_redact_keys": "from_setup_cfg"}


def test_the_nearest_directory_wins(tmp_path: Path) -> None:
    _write(tmp_path / "tox.ini", "[pytest]\nreplay_redact_keys = outer\n")
    inner = tmp_path / "project"
    _write(inner / "pyproject.toml", '[tool.pytest.ini_options]\nreplay_redact_keys = "inner"\n')
    assert read_ini(inner / "deep" / "er") == {"replay_redact_keys": "inner"}
    assert read_ini(tmp_path) == {"replay_redact_keys": "outer"}


def test_as_lines_reads_both_forms() -> None:
    assert as_lines(None) == []
    assert as_lines(["a", " ", "b"]) == ["a", "b"]
    assert as_lines("\n  a\n\n  b c\n") == ["a", "b c"]


def test_a_broken_file_names_itself(tmp_path: Path) -> None:
    _write(tmp_path / "pyproject.toml", "[tool.pytest.ini_options\n")
    with pytest.raises(ConfigError, match=r"pyproject\.toml"):
        read_ini(tmp_path)


def test_the_replay_configuration_comes_from_the_same_file_with_regexes_intact(
        tmp_path: Path) -> None:
    from pytest_replay.config import load_config

    _write(tmp_path / "tox.ini", "[pytest]\nreplay_targets = shop\n"
           "replay_redact_patterns =\n    \\d{4}-\\d{4}\n    order [0-9]+\n")
    config = load_config(tmp_path / "deep")
    assert config.targets == ("shop",)
    assert config.redact_patterns == (r"\d{4}-\d{4}", "order [0-9]+")
    assert config.rootdir == tmp_path.resolve()
