"""psycopg 3: client-side cursors, connection commit/rollback and ``transaction()`` blocks.

Named (server-side) cursors and async connections are not captured.
"""

from __future__ import annotations

from typing import Any, Final

import psycopg
from psycopg import pq

from pytest_replay.capture.db_patch import Patch
from pytest_replay.capture.db_record import (
    COMMIT,
    EXECUTE,
    EXECUTEMANY,
    ROLLBACK,
    ids_for,
    quietly,
)
from pytest_replay.capture.db_sql import (
    Method,
    wrap_close,
    wrap_execute,
    wrap_fetchall,
    wrap_fetchmany,
    wrap_fetchone,
    wrap_next,
    wrap_transaction,
)

SYSTEM: Final = "postgresql"


_ROWS: Final = frozenset(
    getattr(pq.ExecStatus, name) for name in ("TUPLES_OK", "SINGLE_TUPLE", "TUPLES_CHUNK")
    if hasattr(pq.ExecStatus, name)
)


def column_names(cursor: Any) -> list[str] | None:
    """The result's column names, read off ``pgresult`` (``description`` builds objects)."""
    result = cursor.pgresult
    if result is None:
        return None
    count = result.nfields
    status = result.status
    if status not in _ROWS and not (status == pq.ExecStatus.COMMAND_OK and count):
        return None
    return [result.fname(index).decode("utf-8", "replace") for index in range(count)]


def buffered(_cursor: Any) -> bool:
    """Client-side cursors hold every row once ``execute`` returns."""
    return True


def block_statement(committed: bool, savepoint: bool) -> str:
    """What a ``transaction()`` block's end is recorded as."""
    if savepoint:
        return "RELEASE SAVEPOINT" if committed else "ROLLBACK TO SAVEPOINT"
    return "COMMIT" if committed else "ROLLBACK"


def install() -> list[Patch]:
    """Wrap psycopg's cursor and connection methods."""
    cursor = psycopg.Cursor
    raw = vars(cursor)
    connection = psycopg.Connection
    conn_raw = vars(connection)
    patches = [
        Patch(cursor, "execute", wrap_execute(SYSTEM, EXECUTE, raw["execute"],
                                              params_name="params", buffered=buffered,
                                              lastrowid=False, names=column_names)),
        Patch(cursor, "executemany", wrap_execute(SYSTEM, EXECUTEMANY, raw["executemany"],
                                                  params_name="params_seq", buffered=buffered,
                                                  lastrowid=False, names=column_names)),
        Patch(cursor, "fetchone", wrap_fetchone(raw["fetchone"])),
        Patch(cursor, "fetchmany", wrap_fetchmany(raw["fetchmany"])),
        Patch(cursor, "fetchall", wrap_fetchall(raw["fetchall"])),
        Patch(cursor, "__next__", wrap_next(raw["__next__"])),
        Patch(cursor, "close", wrap_close(raw["close"])),
        Patch(connection, "commit", wrap_transaction(SYSTEM, COMMIT, "COMMIT",
                                                     conn_raw["commit"])),
        Patch(connection, "rollback", wrap_transaction(SYSTEM, ROLLBACK, "ROLLBACK",
                                                       conn_raw["rollback"])),
        Patch(psycopg.Transaction, "__exit__",
              _wrap_block_exit(vars(psycopg.Transaction)["__exit__"])),
        # what a real connect reads (PG* variables) is not the application's doing
        Patch(connection, "connect", classmethod(quietly(conn_raw["connect"].__func__))),
        Patch(psycopg, "connect", quietly(vars(psycopg)["connect"])),
    ]
    return [patch.apply() for patch in patches]


def _wrap_block_exit(original: Method) -> Method:
    from pytest_replay.capture.db_record import transaction_call

    def __exit__(self: Any, exc_type: Any, exc_val: Any, exc_tb: Any) -> Any:
        ids = ids_for(SYSTEM)
        if ids is None:
            return original(self, exc_type, exc_val, exc_tb)
        committed = exc_val is None and not self.force_rollback
        statement = block_statement(committed, bool(self.savepoint_name))
        call = transaction_call(SYSTEM, COMMIT if committed else ROLLBACK, ids, statement)
        if call is None:
            return original(self, exc_type, exc_val, exc_tb)
        try:
            result = original(self, exc_type, exc_val, exc_tb)
        except Exception as exc:
            call.failed(exc)
            raise
        call.done()
        return result

    __exit__.__wrapped__ = original  # type: ignore[attr-defined]
    return __exit__
