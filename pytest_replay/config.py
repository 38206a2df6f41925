"""Replay configuration: the ``replay_*`` keys, read where pytest reads its own.

The pytest plugin gets the values from pytest's config; the command-line
tools call :func:`find_ini` and read the same keys from the same file, so a
project configures telemetry-replay once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from pytest_replay.capture.http_state import DEFAULT_MAX_BODY
from pytest_replay.format.values import Limits
from pytest_replay.inifile import ConfigError as IniError
from pytest_replay.inifile import as_lines, find_config, read_ini

INI_KEYS: Final[dict[str, tuple[str, str]]] = {
    "replay_targets": ("linelist", "Packages whose callables replay may call (required)."),
    "replay_paths": ("linelist", "Where trace files (*.jsonl) are collected (default: traces)."),
    "replay_ignore": ("linelist", "Fields or event paths never compared (fnmatch patterns)."),
    "replay_float_tolerance": ("string", "Relative tolerance for comparing floats (default 1e-9)."),
    "replay_allowed_types": ("linelist", "Extra module:Class names recorded values may decode to."),
    "replay_http_match_on": ("linelist", "What identifies a recorded HTTP call (method, url...)."),
    "replay_redact_keys": ("linelist", "Extra secret key names, redacted by every writer."),
    "replay_redact_patterns": ("linelist", "Regexes whose matches every writer redacts."),
    "replay_capture_limits": ("linelist", "Capture caps production used (max_str = 4096, "
                              "max_body = 65536...), so replay caps values alike."),
}
CAPTURE_LIMITS: Final = ("max_str", "max_items", "max_depth", "max_repr", "max_nodes", "max_body")
"""What ``replay_capture_limits`` may set: the fields of ``Limits``, and HTTP's ``max_body``."""


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
    capture_limits: tuple[tuple[str, int], ...] = ()
    """``(name, value)`` caps production's capture used (see :data:`CAPTURE_LIMITS`)."""
    rootdir: Path = field(default_factory=Path.cwd)
    source: str = "defaults"

    def value_limits(self) -> Limits:
        """The caps replay's capture puts on values: production's, when the ini says them."""
        caps = {name: value for name, value in self.capture_limits if name != "max_body"}
        return Limits(**caps)

    def http_max_body(self) -> int:
        """The cap on HTTP bodies replay's capture keeps (production's, when said)."""
        return dict(self.capture_limits).get("max_body", DEFAULT_MAX_BODY)

    def with_targets(self, targets: Iterable[str]) -> ReplayConfig:
        """A copy with ``targets`` instead (``--targets`` on the command line)."""
        return replace(self, targets=_validated_targets(list(targets), "--targets"))


def from_values(values: Mapping[str, Any], rootdir: Path, source: str) -> ReplayConfig:
    """Build a config from raw ini values (lists or strings), validating each key."""

    def lines(key: str) -> list[str]:
        # A linelist, as pytest reads it: one entry per line (regexes keep their backslashes).
        raw = values.get(key)
        if isinstance(raw, tuple):
            raw = list(raw)
        if raw is None or isinstance(raw, (str, list)):
            return as_lines([str(item) for item in raw] if isinstance(raw, list) else raw)
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
        capture_limits=_capture_limits(lines("replay_capture_limits"), source),
        rootdir=rootdir,
        source=source,
    )


def _capture_limits(entries: list[str], source: str) -> tuple[tuple[str, int], ...]:
    """``name = value`` lines into validated caps (the last of a repeated name wins)."""
    caps: dict[str, int] = {}
    for entry in entries:
        name, equals, raw = (part.strip() for part in entry.partition("="))
        if not equals or name not in CAPTURE_LIMITS:
            raise ConfigError(f"{source}: replay_capture_limits: {entry!r} must be "
                              f"'name = number' with name one of {', '.join(CAPTURE_LIMITS)}")
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{source}: replay_capture_limits: {name} must be a whole "
                              f"number, got {raw!r}") from None
        if value < (0 if name == "max_body" else 1):
            raise ConfigError(f"{source}: replay_capture_limits: {name} must be at least "
                              f"{0 if name == 'max_body' else 1}, got {value}")
        caps[name] = value
    return tuple(caps.items())


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
    """The directory of the config file pytest would use from ``start``, and its keys."""
    here = (start or Path.cwd()).resolve()
    try:
        path = find_config(here)
        values = read_ini(here) if path is not None else {}
    except IniError as exc:
        raise ConfigError(str(exc)) from None
    return (path.parent if path is not None else here), values


def load_config(start: Path | None = None) -> ReplayConfig:
    """The project's replay configuration, as the command-line tools see it."""
    rootdir, values = find_ini(start)
    return from_values(values, rootdir, str(rootdir))
