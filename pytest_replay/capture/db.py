"""Database and Redis capture: every statement a sampled request runs becomes a ``db_call``.

``install_db_capture()`` wraps the DB-API layer of the drivers that are
installed (sqlite3, psycopg 3, PyMySQL) and redis-py's command entry points.
SQLAlchemy engines over those drivers go through the same DB-API calls, so
they are covered too. Importing this module imports no driver; installing
imports only the drivers that are present and skips the others.

What one event holds is described in ``docs/external-calls-db.md``; how it
is built lives in :mod:`pytest_replay.capture.db_record`, shared with replay.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from collections.abc import Iterable, Iterator
from typing import Final

from pytest_replay.capture.db_patch import Patch, restore_all
from pytest_replay.capture.db_record import DEFAULT_MAX_ROWS, SETTINGS, SYSTEMS

DRIVERS: Final = {"postgresql": "psycopg", "mysql": "pymysql", "sqlite": "sqlite3",
                  "redis": "redis"}
"""Which importable driver each system's capture needs."""

_ADAPTERS: Final = {
    "postgresql": "pytest_replay.capture.db_psycopg",
    "mysql": "pytest_replay.capture.db_pymysql",
    "sqlite": "pytest_replay.capture.db_sqlite",
    "redis": "pytest_replay.capture.db_redis",
}
_lock = threading.Lock()
_installed: dict[str, list[Patch]] = {}


def install_db_capture(systems: Iterable[str] | None = None, *,
                       max_rows: int = DEFAULT_MAX_ROWS) -> tuple[str, ...]:
    """Wrap the installed drivers of ``systems`` (default: all); returns what is captured.

    Idempotent and thread-safe. A system whose driver is not installed is
    skipped. ``max_rows`` caps the fetched rows one event keeps. Connections
    to sqlite made before installation are not captured (sqlite3's types are
    wrapped through ``sqlite3.connect``), so install early.
    """
    chosen = tuple(SYSTEMS if systems is None else systems)
    unknown = sorted(set(chosen) - set(SYSTEMS))
    if unknown:
        raise ValueError(f"unknown database system(s) {unknown}; choose from {list(SYSTEMS)}")
    if max_rows < 0:
        raise ValueError(f"max_rows must be >= 0, got {max_rows!r}")
    with _lock:
        SETTINGS.max_rows = max_rows
        for system in chosen:
            if system in _installed:
                continue
            try:
                importlib.import_module(DRIVERS[system])
            except ImportError:
                continue  # not installed here: nothing of it to capture
            adapter = importlib.import_module(_ADAPTERS[system])
            _installed[system] = adapter.install()
        SETTINGS.enabled = frozenset(_installed)
        return tuple(system for system in SYSTEMS if system in _installed)


def uninstall_db_capture() -> None:
    """Put every wrapped driver attribute back (idempotent)."""
    with _lock:
        SETTINGS.enabled = frozenset()
        for patches in _installed.values():
            restore_all(patches)
        _installed.clear()


@contextlib.contextmanager
def recording(systems: Iterable[str]) -> Iterator[None]:
    """Record calls of ``systems`` for a while, wrapped drivers or not.

    Replay's served connections report to the recorder themselves; this makes
    sure they are heard even when the real drivers were never wrapped.
    """
    with _lock:
        SETTINGS.enabled = frozenset(_installed) | frozenset(systems)
    try:
        yield
    finally:
        with _lock:
            SETTINGS.enabled = frozenset(_installed)


def captured_systems() -> tuple[str, ...]:
    """The systems whose calls are being captured now."""
    return tuple(system for system in SYSTEMS if system in SETTINGS.enabled)


__all__ = ["DRIVERS", "captured_systems", "install_db_capture", "recording",
           "uninstall_db_capture"]
