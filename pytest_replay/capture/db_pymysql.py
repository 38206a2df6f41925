"""PyMySQL: buffered and unbuffered (``SSCursor``) cursors, commit and rollback."""

from __future__ import annotations

from typing import Any, Final

import pymysql
import pymysql.cursors

from pytest_replay.capture.db_patch import Patch
from pytest_replay.capture.db_record import COMMIT, EXECUTE, EXECUTEMANY, ROLLBACK, quietly
from pytest_replay.capture.db_sql import (
    wrap_close,
    wrap_execute,
    wrap_fetchall,
    wrap_fetchmany,
    wrap_fetchone,
    wrap_transaction,
)

SYSTEM: Final = "mysql"


def buffered(cursor: Any) -> bool:
    """Every cursor but the ``SSCursor`` family reads the whole result in ``execute``."""
    return not isinstance(cursor, pymysql.cursors.SSCursor)


def install() -> list[Patch]:
    """Wrap PyMySQL's cursor and connection methods."""
    cursor = pymysql.cursors.Cursor
    raw = vars(cursor)
    unbuffered = pymysql.cursors.SSCursor
    ss_raw = vars(unbuffered)
    connection = pymysql.connections.Connection
    conn_raw = vars(connection)
    patches = [
        # executemany runs execute itself: the guard keeps that inner call unrecorded
        Patch(cursor, "execute", wrap_execute(SYSTEM, EXECUTE, raw["execute"], params_name="args",
                                              buffered=buffered, lastrowid=True, guard=True)),
        Patch(cursor, "executemany", wrap_execute(SYSTEM, EXECUTEMANY, raw["executemany"],
                                                  params_name="args", buffered=buffered,
                                                  lastrowid=True, guard=True)),
        Patch(cursor, "fetchone", wrap_fetchone(raw["fetchone"])),
        Patch(cursor, "fetchmany", wrap_fetchmany(raw["fetchmany"])),
        Patch(cursor, "fetchall", wrap_fetchall(raw["fetchall"])),
        Patch(cursor, "close", wrap_close(raw["close"])),
        Patch(unbuffered, "fetchone", wrap_fetchone(ss_raw["fetchone"])),
        Patch(unbuffered, "fetchmany", wrap_fetchmany(ss_raw["fetchmany"])),
        Patch(unbuffered, "fetchall", wrap_fetchall(ss_raw["fetchall"])),
        Patch(unbuffered, "close", wrap_close(ss_raw["close"])),
        Patch(connection, "commit", wrap_transaction(SYSTEM, COMMIT, "COMMIT",
                                                     conn_raw["commit"])),
        Patch(connection, "rollback", wrap_transaction(SYSTEM, ROLLBACK, "ROLLBACK",
                                                       conn_raw["rollback"])),
        # what a real connect reads (TLS settings) is not the application's doing
        Patch(connection, "__init__", quietly(conn_raw["__init__"])),
    ]
    return [patch.apply() for patch in patches]
