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


class CapturedCursor(sqlite3.Cursor):
    """A ``sqlite3.Cursor`` whose statements and fetched rows are recorded."""

    execute = wrap_execute(SYSTEM, EXECUTE, _Cursor.execute, params_name="parameters",
                           buffered=None, lastrowid=True)
    executemany = wrap_execute(SYSTEM, EXECUTEMANY, _Cursor.executemany,
                               params_name="seq_of_parameters", buffered=None, lastrowid=True)
    executescript = wrap_script(SYSTEM, EXECUTESCRIPT, _Cursor.executescript)
    fetchone = wrap_fetchone(_Cursor.fetchone)
    fetchmany = wrap_fetchmany(_Cursor.fetchmany)
    fetchall = wrap_fetchall(_Cursor.fetchall)
    close = wrap_close(_Cursor.close)

    __next__ = wrap_next(_Cursor.__next__)


class CapturedConnection(sqlite3.Connection):
    """A ``sqlite3.Connection`` whose cursors, commits and rollbacks are recorded."""

    commit = wrap_transaction(SYSTEM, COMMIT, "COMMIT", _Connection.commit)
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
