"""sqlite3 during a replay: ``sqlite3.connect`` opens no file.

Rows follow the cursor's ``row_factory``: tuples by default, a
:class:`ServedRow` where production used ``sqlite3.Row`` (which only a real
sqlite3 cursor can build), or whatever a custom factory makes of the
recorded values.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from types import TracebackType
from typing import Any, Final, Literal

from pytest_replay.capture.db_patch import Patch
from pytest_replay.capture.db_record import (
    ABSENT,
    COMMIT,
    EXECUTE,
    EXECUTEMANY,
    EXECUTESCRIPT,
    ROLLBACK,
)
from pytest_replay.capture.db_sqlite import SYSTEM
from pytest_replay.replay.db_cursor import (
    ServedResult,
    close_cursor,
    fetch_all,
    fetch_many,
    fetch_next,
    fetch_one,
    many_parameters,
    served_statement,
    served_transaction,
)
from pytest_replay.replay.db_session import current_session

_WRITES: Final = ("INSERT", "UPDATE", "DELETE", "REPLACE")


class ServedRow:
    """Stands in for ``sqlite3.Row``: index by position or (case-insensitive) name."""

    __slots__ = ("_names", "_values")

    def __init__(self, names: list[str], values: tuple[Any, ...]) -> None:
        self._names = names
        self._values = values

    def keys(self) -> list[str]:
        """Column names."""
        return list(self._names)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            lowered = key.lower()
            for index, name in enumerate(self._names):
                if name.lower() == lowered:
                    return self._values[index]
            raise IndexError("No item with that key")
        return self._values[key]

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ServedRow):
            return self._names == other._names and self._values == other._values
        return NotImplemented

    def __hash__(self) -> int:
        return hash((tuple(self._names), self._values))

    def __repr__(self) -> str:
        return f"<served sqlite3.Row {dict(zip(self._names, self._values, strict=False))!r}>"


class ServedConnection:
    """A ``sqlite3.Connection`` look-alike answering from the recording."""

    def __init__(self, database: Any = ":memory:", *args: Any, **kwargs: Any) -> None:
        self.database = database
        self.row_factory: Any = None
        self.text_factory: Any = str
        self.isolation_level: str | None = kwargs.get("isolation_level", "")
        self.total_changes = 0
        self._in_transaction = False
        self._closed = False

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        """``isinstance(conn, sqlite3.Connection)`` holds, as in production."""
        return sqlite3.Connection

    @property
    def in_transaction(self) -> bool:
        """Whether a served write is not yet committed."""
        return self._in_transaction

    def check_open(self) -> None:
        """Raise as sqlite3 does on a closed connection."""
        if self._closed:
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")

    def after_statement(self, statement: Any) -> None:
        """Writes open an implicit transaction, as sqlite3's legacy mode does."""
        if self.isolation_level is not None and isinstance(statement, str) and (
                statement.lstrip().upper().startswith(_WRITES)):
            self._in_transaction = True

    def cursor(self, factory: Any = None) -> ServedCursor:
        """A served cursor (a custom cursor factory cannot be built without a real one)."""
        self.check_open()
        return ServedCursor(self)

    def execute(self, sql: str, *parameters: Any) -> ServedCursor:
        """``cursor().execute(...)``."""
        return self.cursor().execute(sql, *parameters)

    def executemany(self, sql: str, *parameters: Any) -> ServedCursor:
        """``cursor().executemany(...)``."""
        return self.cursor().executemany(sql, *parameters)

    def executescript(self, script: str) -> ServedCursor:
        """``cursor().executescript(...)``."""
        return self.cursor().executescript(script)

    def commit(self) -> None:
        """Serve a recorded commit."""
        self.check_open()
        served_transaction(SYSTEM, COMMIT, "COMMIT")
        self._in_transaction = False

    def rollback(self) -> None:
        """Serve a recorded rollback."""
        self.check_open()
        served_transaction(SYSTEM, ROLLBACK, "ROLLBACK")
        self._in_transaction = False

    def close(self) -> None:
        """Close (no file was opened)."""
        self._closed = True

    def __enter__(self) -> ServedConnection:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc_val: BaseException | None,
                 exc_tb: TracebackType | None) -> Literal[False]:
        if exc_type is not None:
            self.rollback()
            return False
        try:
            self.commit()
        except Exception:
            self.rollback()
            raise
        return False

    # registrations change what SQL computes on the server side, which is recorded
    def create_function(self, *args: Any, **kwargs: Any) -> None:
        """Accepted (results are served, not computed)."""

    def create_aggregate(self, *args: Any, **kwargs: Any) -> None:
        """Accepted."""

    def create_collation(self, *args: Any, **kwargs: Any) -> None:
        """Accepted."""

    def create_window_function(self, *args: Any, **kwargs: Any) -> None:
        """Accepted."""

    def set_authorizer(self, *args: Any, **kwargs: Any) -> None:
        """Accepted."""

    def set_progress_handler(self, *args: Any, **kwargs: Any) -> None:
        """Accepted."""

    def set_trace_callback(self, *args: Any, **kwargs: Any) -> None:
        """Accepted."""

    def enable_load_extension(self, *args: Any, **kwargs: Any) -> None:
        """Accepted."""

    def interrupt(self) -> None:
        """Nothing runs, so nothing to interrupt."""

    def load_extension(self, *args: Any, **kwargs: Any) -> None:
        """Extensions are not served."""
        raise sqlite3.NotSupportedError("load_extension() is not served during a replay")

    def backup(self, *args: Any, **kwargs: Any) -> None:
        """Backups are not served."""
        raise sqlite3.NotSupportedError("backup() is not served during a replay")

    def iterdump(self) -> Iterator[str]:
        """Dumps are not served."""
        raise sqlite3.NotSupportedError("iterdump() is not served during a replay")

    def __repr__(self) -> str:
        return f"<served sqlite3.Connection {self.database!r}>"


class ServedCursor:
    """A sqlite3 cursor over recorded results."""

    def __init__(self, connection: ServedConnection) -> None:
        self.connection = connection
        self.row_factory: Any = connection.row_factory
        self.arraysize = 1
        self._result: ServedResult | None = None
        self._closed = False

    @property
    def description(self) -> Any:
        """The recorded column names."""
        return None if self._result is None else self._result.description

    @property
    def rowcount(self) -> int:
        """The recorded row count."""
        return -1 if self._result is None else self._result.rowcount

    @property
    def lastrowid(self) -> Any:
        """The recorded ``lastrowid``."""
        if self._result is None or self._result.lastrowid is ABSENT:
            return None
        return self._result.lastrowid

    def _check(self) -> None:
        if self._closed:
            raise sqlite3.ProgrammingError("Cannot operate on a closed cursor.")
        self.connection.check_open()

    def _make_row(self, values: tuple[Any, ...]) -> Any:
        factory = self.row_factory
        if factory is None:
            return values
        if factory is sqlite3.Row:
            names = self._result.names if self._result is not None else None
            return ServedRow(names or [], values)
        return factory(self, values)

    def _serve(self, operation: str, statement: Any, params: Any) -> ServedCursor:
        self._check()
        self._result = None
        self._result = served_statement(self, SYSTEM, operation, statement, params,
                                        buffered=False)
        self.connection.after_statement(statement)
        return self

    def execute(self, sql: str, *parameters: Any) -> ServedCursor:
        """Serve one statement."""
        return self._serve(EXECUTE, sql, parameters[0] if parameters else None)

    def executemany(self, sql: str, seq_of_parameters: Any) -> ServedCursor:
        """Serve one ``executemany``."""
        return self._serve(EXECUTEMANY, sql, many_parameters(seq_of_parameters))

    def executescript(self, script: str) -> ServedCursor:
        """Serve one script."""
        return self._serve(EXECUTESCRIPT, script, ABSENT)

    def _rows(self) -> ServedResult | None:
        self._check()
        result = self._result
        return None if result is None or result.names is None else result

    def fetchone(self) -> Any:
        """The next recorded row, or None."""
        result = self._rows()
        return None if result is None else fetch_one(self, result, self._make_row)

    def fetchmany(self, size: int | None = None) -> list[Any]:
        """Up to ``size`` recorded rows."""
        result = self._rows()
        if result is None:
            return []
        return fetch_many(self, result, self._make_row, self.arraysize if size is None else size)

    def fetchall(self) -> list[Any]:
        """Every remaining recorded row."""
        result = self._rows()
        return [] if result is None else fetch_all(self, result, self._make_row)

    def __iter__(self) -> ServedCursor:
        return self

    def __next__(self) -> Any:
        result = self._rows()
        if result is None:
            raise StopIteration
        return fetch_next(self, result, self._make_row)

    def close(self) -> None:
        """Close; an open result is written as it stands."""
        close_cursor(self)
        self._closed = True

    def setinputsizes(self, *args: Any) -> None:
        """Accepted (DB-API no-op)."""

    def setoutputsize(self, *args: Any) -> None:
        """Accepted (DB-API no-op)."""


def served_connect(*args: Any, **kwargs: Any) -> ServedConnection:
    """``sqlite3.connect`` while serving: no file is opened."""
    current_session()
    return ServedConnection(*args, **kwargs)


def serve() -> list[Patch]:
    """Swap ``sqlite3.connect`` (and ``sqlite3.dbapi2.connect``) for the served one."""
    from sqlite3 import dbapi2

    patches = [Patch(sqlite3, "connect", served_connect), Patch(dbapi2, "connect", served_connect)]
    return [patch.apply() for patch in patches]
