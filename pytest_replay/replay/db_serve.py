"""Serve a replay's database and Redis calls from the recorded ``db_call`` events.

While :func:`serve_database` is active, ``psycopg.connect``,
``pymysql.connect``, ``sqlite3.connect`` (and SQLAlchemy engines over
them) return served connections that open nothing, and redis-py's
commands are answered from the recording. Capture stays installed through
all of it, so each served call writes a ``db_call`` equal to the recorded
one (timestamps, durations and correlation ids aside).

One :class:`ServedCalls` of kind ``"database"`` covers SQL and Redis; each
refused request names its system first (``postgresql execute: SELECT ...``,
``redis command: GET ...``).
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Iterator, Sequence
from typing import Any, Final

from pytest_replay.capture.db import DRIVERS, recording
from pytest_replay.capture.db_open import OPEN
from pytest_replay.capture.db_patch import Patch, restore_all
from pytest_replay.replay.db_session import (
    BadDatabaseRecording,
    DatabaseSession,
    ReplayConnectionUsedOutside,
    activate,
    deactivate,
)
from pytest_replay.replay.external import ServedCalls

_SERVERS: Final = {
    "postgresql": "pytest_replay.replay.db_psycopg",
    "mysql": "pytest_replay.replay.db_pymysql",
    "sqlite": "pytest_replay.replay.db_sqlite",
    "redis": "pytest_replay.replay.db_redis",
}


def serve_database(recorded: Sequence[dict[str, Any]]
                   ) -> contextlib.AbstractContextManager[ServedCalls]:
    """Answer database and Redis calls from ``recorded`` (one root's ``db_call`` events).

    The events are checked now: a malformed one raises
    :class:`BadDatabaseRecording` naming its line and field before anything
    runs. Calls the recording does not hold raise ``UnrecordedCall`` and are
    kept in the yielded :class:`ServedCalls`; recorded calls never made end
    up in its ``unused`` list.
    """
    calls = ServedCalls("database")
    session = DatabaseSession(recorded, calls)
    return _serving(session)


@contextlib.contextmanager
def _serving(session: DatabaseSession) -> Iterator[ServedCalls]:
    patches: list[Patch] = []
    servers = _installed_servers()
    activate(session)
    try:
        for _system, server in servers:
            patches.extend(server.serve())
        with recording([system for system, _server in servers]):
            yield session.calls
    finally:
        OPEN.release_all()  # results still open are written into this replay's stream
        restore_all(patches)
        deactivate(session)
        session.calls.unused = session.unused()


_INSTALLED: dict[tuple[str, ...], tuple[tuple[str, Any], ...]] = {}
"""``sys.path`` -> the servers of the drivers importable under it."""


def _installed_servers() -> tuple[tuple[str, Any], ...]:
    """``(system, server module)`` for each driver installed here, found once per process.

    A driver that is not installed would otherwise be looked for on every
    replay (a failed import searches the whole path each time); the answer
    is kept until ``sys.path`` changes.
    """
    path = tuple(sys.path)
    found = _INSTALLED.get(path)
    if found is None:
        servers: list[tuple[str, Any]] = []
        for system, module in _SERVERS.items():
            try:
                importlib.import_module(DRIVERS[system])
            except ImportError:
                continue  # not installed: the application cannot call it either
            servers.append((system, importlib.import_module(module)))
        _INSTALLED.clear()
        found = _INSTALLED[path] = tuple(servers)
    return found


__all__ = ["BadDatabaseRecording", "ReplayConnectionUsedOutside", "serve_database"]
