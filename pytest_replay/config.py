"""Replay configuration: the ``replay_*`` keys, read where pytest reads its own.

The pytest plugin gets the values from pytest's config; the command-line
tools call :func:`find_ini` and read the same keys from the same file, so a
project configures telemetry-replay once.
"""

from __future__ import annotations

import configparser
import shlex
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

INI_KEYS: Final[dict[str, tuple[str, str]]] = {
    "replay_targets": ("linelist", "Packages whose callables replay may call (required)."),
    "replay_paths": ("linelist", "Where trace files (*.jsonl) are collected (default: traces)."),
    "replay_ignore": ("linelist", "Fields or event paths never compared (fnmatch patterns)."),
    "replay_float_tolerance": ("string", "Relative tolerance for comparing floats (default 1e-9)."),
    "replay_allowed_types": ("linelist", "Extra module:Class names recorded values may decode to."),
    "replay_http_match_on": ("linelist", "What identifies a recorded HTTP call (method, url...)."),
    "replay_redact_keys": ("linelist", "Extra secret key names, redacted by every writer."),
    "replay_redact_patterns": ("linelist", "Regexes whose matches every writer redacts."),
}


class ConfigError(ValueError):
    """A configuration value is unusable; the message names the key and the file."""


@dataclass(frozen=True)
class ReplayConfig:
    """Everything a replay needs to know, resolved and validated once."""

    targets: tuple[str, ...] = ()
    paths: tuple[str, ...] = ("traces",)
    ignore: tuple[str, ...] = ()
    float_tolerance: float = 1e-9
    allowed_types: tuple[str, ...] = ()
    http_match_on: tuple[str, ...] = ("method", "url", "body")
    redact_keys: tuple[str, ...] = ()
    redact_patterns: tuple[str, ...] = ()
    rootdir: Path = field(default_factory=Path.cwd)
    source: str = "defaults"

    def with_targets(self, targets: Iterable[str]) -> ReplayConfig:
        """A copy with ``targets`` instead (``--targets`` on the command line)."""
        return replace(self, targets=_validated_targets(list(targets), "--targets"))


def from_values(values: Mapping[str, Any], rootdir: Path, source: str) -> ReplayConfig:
    """Build a config from raw ini values (lists or strings), validating each key."""

    def lines(key: str) -> list[str]:
        raw = values.get(key)
        if raw is None or raw == "":
            return []
        if isinstance(raw, str):
            return [item for line in raw.splitlines() for item in shlex.split(line)]
        if isinstance(raw, (list, tuple)):
            return [str(item) for item in raw]
        raise ConfigError(f"{source}: {key} must be a list of strings, got {type(raw).__name__}")

    tolerance_raw = values.get("replay_float_tolerance")
    tolerance = 1e-9
    if tolerance_raw not in (None, ""):
        try:
            tolerance = float(str(tolerance_raw))
        except ValueError:
            raise ConfigError(
                f"{source}: replay_float_tolerance must be a number like 1e-6, "
                f"got {tolerance_raw!r}"
            ) from None
        if not 0 <= tolerance < 1:
            raise ConfigError(f"{source}: replay_float_tolerance must be in [0, 1), "
                              f"got {tolerance}")
    return ReplayConfig(
        targets=_validated_targets(lines("replay_targets"), f"{source}: replay_targets"),
        paths=tuple(lines("replay_paths")) or ("traces",),
        ignore=tuple(lines("replay_ignore")),
        float_tolerance=tolerance,
        allowed_types=tuple(lines("replay_allowed_types")),
        http_match_on=tuple(lines("replay_http_match_on")) or ("method", "url", "body"),
        redact_keys=tuple(lines("replay_redact_keys")),
        redact_patterns=tuple(lines("replay_redact_patterns")),
        rootdir=rootdir,
        source=source,
    )


def _validated_targets(targets: list[str], where: str) -> tuple[str, ...]:
    out = []
    for target in targets:
        parts = target.split(".")
        if not all(part.isidentifier() and not part.startswith("__") for part in parts):
            raise ConfigError(f"{where}: {target!r} is not a module or package name "
                              "(dotted identifiers, no dunders)")
        out.append(target)
    return tuple(out)


def find_ini(start: Path | None = None) -> tuple[Path, dict[str, Any]]:
    """Find the config file pytest would use from ``start`` upward; return its dir and keys.

    Order as in pytest: ``pytest.ini``, ``pyproject.toml`` with
    ``[tool.pytest.ini_options]``, ``tox.ini`` with ``[pytest]``, ``setup.cfg``
    with ``[tool:pytest]``; the first directory that has one wins.
    """
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        found = _read_dir(directory)
        if found is not None:
            return directory, found
    return here, {}


def _read_dir(directory: Path) -> dict[str, Any] | None:
    pytest_ini = directory / "pytest.ini"
    if pytest_ini.is_file():
        return _read_cfg(pytest_ini, "pytest") or {}
    pyproject = directory / "pyproject.toml"
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, OSError) as exc:
            raise ConfigError(f"{pyproject}: cannot read: {exc}") from exc
        options = data.get("tool", {}).get("pytest", {}).get("ini_options")
        if isinstance(options, dict):
            return options
    for name, section in (("tox.ini", "pytest"), ("setup.cfg", "tool:pytest")):
        path = directory / name
        if path.is_file():
            values = _read_cfg(path, section)
            if values is not None:
                return values
    return None


def _read_cfg(path: Path, section: str) -> dict[str, Any] | None:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, OSError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    if not parser.has_section(section):
        return None
    return dict(parser.items(section))


def load_config(start: Path | None = None) -> ReplayConfig:
    """The project's replay configuration, as the command-line tools see it."""
    rootdir, values = find_ini(start)
    return from_values(values, rootdir, str(rootdir))
