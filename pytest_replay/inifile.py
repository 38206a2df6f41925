"""Read ``replay_*`` settings from the file pytest reads them from.

The command-line tools honour the same keys as the plugin, from the same
file: the first of ``pytest.ini``, ``.pytest.ini``, ``pyproject.toml``
(``[tool.pytest.ini_options]``), ``tox.ini`` (``[pytest]``) and ``setup.cfg``
(``[tool:pytest]``) that holds a pytest section, searching from a directory
upwards, as pytest does. :mod:`pytest_replay.config` builds the replay
configuration from it, and ``extract-traces`` reads its redaction keys here.
"""

from __future__ import annotations

import configparser
import sys
from pathlib import Path
from typing import Any, Final

IniValue = list[str] | str

_CANDIDATES: Final = (
    ("pytest.ini", "pytest"),
    (".pytest.ini", "pytest"),
    ("pyproject.toml", None),
    ("tox.ini", "pytest"),
    ("setup.cfg", "tool:pytest"),
)


class ConfigError(ValueError):
    """A configuration file that cannot be read; the message names the file."""


def find_config(start_dir: str | Path) -> Path | None:
    """The configuration file pytest would use for ``start_dir``, or None."""
    directory = Path(start_dir).resolve()
    for folder in (directory, *directory.parents):
        for name, section in _CANDIDATES:
            path = folder / name
            if not path.is_file():
                continue
            if name == "pyproject.toml":
                if _toml_section(path) is not None:
                    return path
            elif name.endswith("pytest.ini") or _ini_section(path, section or "") is not None:
                # pytest.ini wins even without a [pytest] section, as in pytest.
                return path
    return None


def read_ini(start_dir: str | Path) -> dict[str, IniValue]:
    """Every key of the pytest section that applies to ``start_dir``.

    TOML arrays come back as ``list[str]``, everything else as ``str``
    (INI values keep their line breaks; see :func:`as_lines`).
    """
    path = find_config(start_dir)
    if path is None:
        return {}
    if path.name == "pyproject.toml":
        table = _toml_section(path) or {}
        return {str(key): _toml_value(value) for key, value in table.items()}
    section = "tool:pytest" if path.name == "setup.cfg" else "pytest"
    return dict(_ini_section(path, section) or {})


def as_lines(value: IniValue | None) -> list[str]:
    """A ``linelist`` setting as a list: TOML arrays as they are, INI text split by line."""
    if value is None:
        return []
    if isinstance(value, list):
        return [item for item in value if item.strip()]
    return [line.strip() for line in value.splitlines() if line.strip()]


def _toml_value(value: Any) -> IniValue:
    if isinstance(value, list):
        return [str(item) for item in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _toml_section(path: Path) -> dict[str, Any] | None:
    loads = _toml_loader(path)
    try:
        data = loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    tool = data.get("tool")
    section = tool.get("pytest", {}).get("ini_options") if isinstance(tool, dict) else None
    return section if isinstance(section, dict) else None


def _toml_loader(path: Path) -> Any:
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib.loads
    try:  # pragma: no cover - Python 3.10 only
        import tomli
    except ImportError:  # pragma: no cover
        raise ConfigError(f"{path}: reading pyproject.toml on Python 3.10 needs 'tomli' "
                          "(pip install tomli)") from None
    return tomli.loads  # pragma: no cover


def _ini_section(path: Path, section: str) -> dict[str, str] | None:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    if not parser.has_section(section):
        return None
    return {key: value.strip() for key, value in parser.items(section)}
