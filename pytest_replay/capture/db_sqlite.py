"""sqlite3: its Connection and Cursor are C types, so ``sqlite3.connect`` hands out subclasses.

``connect`` is wrapped to pass ``factory=CapturedConnection`` (unless the
caller brought a factory of its own, which is then left alone); that
connection's cursors are :class:`CapturedCursor`. Both are true subclasses,
so ``isinstance`` checks and SQLAlchemy's pysqlite dialect see nothing new.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Final

from pytest_replay.capture.db_patch import Patch
from pytest_replay.capture.db_record import (
    COMMIT,
    EXECUTE,
    EXECUTEMANY,
    EXECUTESCRIPT,
    ROLLBACK,
)
from pytest_replay.capture.db_sql import (
    wrap_close,
    wrap_execute,
    wrap_fetchall,
    wrap_fetchmany,
    wrap_fetchone,
    wrap_next,
    wrap_script,
    wrap_transaction,
)

SYSTEM: Final = "sqlite"
_Cursor = sqlite3.Cursor
_Connection = sqlite3.Connection

_IN_SCRIPT: ContextVar[bool] = ContextVar("replay_sqlite_in_script", default=False)
"""Set while ``executescript`` runs: the commit it makes first is part of it, not a call.

Python 3.10's C ``executescript`` calls ``connection.commit()`` (always);
3.11+ commits in C, unseen. Leaving it out keeps the events the same on both.
"""


def _script_commit_unrecorded(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def executescript(self: Any, *args: Any, **kwargs: Any) -> Any:
        token = _IN_SCRIPT.set(True)
        try:
            return method(self, *args, **kwargs)
        finally:
            _IN_SCRIPT.reset(token)

    return executescript


def _commit_outside_scripts(recorded: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(recorded)
    def commit(self: Any) -> Any:
        if _IN_SCRIPT.get():
            return _Connection.commit(self)
        return recorded(self)

    return commit


class CapturedCursor(sqlite3.Cursor):
    """A ``sqlite3.Cursor`` whose statements and fetched rows are recorded."""

    execute = wrap_execute(SYSTEM, EXECUTE, _Cursor.execute, params_name="parameters",
                           buffered=None, lastrowid=True)
    executemany = wrap_execute(SYSTEM, EXECUTEMANY, _Cursor.executemany,
                               params_name="seq_of_parameters", buffered=None, lastrowid=True)
    executescript = _script_commit_unrecorded(
        wrap_script(SYSTEM, EXECUTESCRIPT, _Cursor.executescript))
    fetchone = wrap_fetchone(_Cursor.fetchone)
    fetchmany = wrap_fetchmany(_Cursor.fetchmany)
    fetchall = wrap_fetchall(_Cursor.fetchall)
    close = wrap_close(_Cursor.close)

    __next__ = wrap_next(_Cursor.__next__)


class CapturedConnection(sqlite3.Connection):
    """A ``sqlite3.Connection`` whose cursors, commits and rollbacks are recorded."""

    commit = _commit_outside_scripts(
        wrap_transaction(SYSTEM, COMMIT, "COMMIT", _Connection.commit))
    rollback = wrap_transaction(SYSTEM, ROLLBACK, "ROLLBACK", _Connection.rollback)

    def cursor(self, factory: Callable[..., sqlite3.Cursor] | None = None) -> Any:
        """A :class:`CapturedCursor` unless another factory is asked for."""
        return _Connection.cursor(self, factory or CapturedCursor)

    # sqlite3's own shortcuts make plain cursors in C, never calling cursor()
    def execute(self, sql: str, *parameters: Any) -> Any:
        """Like ``sqlite3.Connection.execute``, through a recorded cursor."""
        return self.cursor().execute(sql, *parameters)

    def executemany(self, sql: str, *parameters: Any) -> Any:
        """Like ``sqlite3.Connection.executemany``, through a recorded cursor."""
        return self.cursor().executemany(sql, *parameters)

    def executescript(self, script: str) -> Any:
        """Like ``sqlite3.Connection.executescript``, through a recorded cursor."""
        return self.cursor().executescript(script)

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> Any:
        # the C context manager commits without calling commit(): do it visibly
        if exc_type is not None:
            self.rollback()
            return False
        try:
            self.commit()
        except Exception:
            self.rollback()
            raise
        return False


def _wrap_connect(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def connect(*args: Any, **kwargs: Any) -> Any:
        if len(args) < 6 and "factory" not in kwargs:
            kwargs["factory"] = CapturedConnection
        return original(*args, **kwargs)

    return connect


def install() -> list[Patch]:
    """Route ``sqlite3.connect`` (and ``sqlite3.dbapi2.connect``) through the subclasses."""
    from sqlite3 import dbapi2

    original = vars(sqlite3)["connect"]
    replacement = _wrap_connect(original)
    patches = [Patch(sqlite3, "connect", replacement)]
    if vars(dbapi2).get("connect") is original:
        patches.append(Patch(dbapi2, "connect", replacement))
    return [patch.apply() for patch in patches]
