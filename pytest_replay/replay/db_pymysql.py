"""PyMySQL during a replay: ``pymysql.connect`` returns a connection with no socket behind it.

Rows take the shape of the cursor class asked for (tuples, or
``dict_type`` for the ``DictCursor`` family); unbuffered (``SSCursor``)
cursors keep their rule that the end is only known when it is reached.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Final

import pymysql
import pymysql.converters
import pymysql.cursors
import pymysql.err

from pytest_replay.capture.db_patch import Patch
from pytest_replay.capture.db_pymysql import SYSTEM
from pytest_replay.capture.db_record import ABSENT, COMMIT, EXECUTE, EXECUTEMANY, ROLLBACK
from pytest_replay.replay.db_cursor import (
    ServedResult,
    close_cursor,
    fetch_all,
    fetch_many,
    fetch_one,
    many_parameters,
    served_statement,
    served_transaction,
)
from pytest_replay.replay.db_session import current_session

SERVER_VERSION: Final = "8.0.36-served"
"""What ``get_server_info()`` says (the recording does not hold the server's)."""


class ServedConnection:
    """A ``pymysql.connections.Connection`` look-alike answering from the recording."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.host = kwargs.get("host") or "localhost"
        self.port = int(kwargs.get("port") or 3306)
        self.user = kwargs.get("user")
        self.db = kwargs.get("database") or kwargs.get("db")
        self.charset = kwargs.get("charset") or "utf8mb4"
        self.encoding = "utf8"
        self.cursorclass: Any = kwargs.get("cursorclass") or pymysql.cursors.Cursor
        self.autocommit_mode = bool(kwargs.get("autocommit", False))
        self.encoders = dict(pymysql.converters.encoders)
        self.server_version = SERVER_VERSION
        self.server_status = 0
        self._closed = False
        self.insert_id_value = 0
        self.affected = 0

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        """``isinstance(conn, pymysql.connections.Connection)`` holds, as in production."""
        cls: type = pymysql.connections.Connection
        return cls

    @property
    def open(self) -> bool:
        """Whether :meth:`close` was not called."""
        return not self._closed

    def _check(self) -> None:
        if self._closed:
            raise pymysql.err.InterfaceError(0, "")

    def cursor(self, cursor: Any = None) -> ServedCursor:
        """A served cursor shaped like ``cursor`` (or the connection's ``cursorclass``)."""
        self._check()
        return ServedCursor(self, cursor or self.cursorclass)

    def commit(self) -> None:
        """Serve a recorded commit."""
        self._check()
        served_transaction(SYSTEM, COMMIT, "COMMIT")

    def rollback(self) -> None:
        """Serve a recorded rollback."""
        self._check()
        served_transaction(SYSTEM, ROLLBACK, "ROLLBACK")

    def close(self) -> None:
        """Close, as PyMySQL does (twice is an error)."""
        if self._closed:
            raise pymysql.err.Error("Already closed")
        self._closed = True

    def ping(self, reconnect: bool = True) -> None:
        """Alive unless closed without ``reconnect``."""
        if self._closed:
            if not reconnect:
                raise pymysql.err.Error("Already closed")
            self._closed = False

    def begin(self) -> None:
        """Accepted (``BEGIN`` is not recorded by capture either)."""

    def autocommit(self, value: bool) -> None:
        """Set the autocommit mode."""
        self.autocommit_mode = bool(value)

    def get_autocommit(self) -> bool:
        """The autocommit mode."""
        return self.autocommit_mode

    def get_server_info(self) -> str:
        """A fixed server version."""
        return self.server_version

    def character_set_name(self) -> str:
        """The charset asked for at connect."""
        return str(self.charset)

    def select_db(self, db: str) -> None:
        """Remember the database (``USE`` is not recorded by capture either)."""
        self.db = db

    def insert_id(self) -> int:
        """The ``lastrowid`` of the last served statement."""
        return self.insert_id_value

    def affected_rows(self) -> int:
        """The row count of the last served statement."""
        return self.affected

    def thread_id(self) -> int:
        """No server thread."""
        return 0

    def show_warnings(self) -> tuple[Any, ...]:
        """No warnings are recorded."""
        return ()

    def escape(self, obj: Any, mapping: Any = None) -> str:
        """Escape a value as PyMySQL does (pure Python)."""
        if isinstance(obj, str):
            return "'" + self.escape_string(obj) + "'"
        if isinstance(obj, (bytes, bytearray)):
            return str(pymysql.converters.escape_bytes_prefixed(bytes(obj)))
        return str(pymysql.converters.escape_item(obj, "utf8", mapping=mapping or self.encoders))

    def literal(self, obj: Any) -> str:
        """Alias of :meth:`escape`."""
        return self.escape(obj, self.encoders)

    def escape_string(self, s: str) -> str:
        """Escape a string as PyMySQL does."""
        return str(pymysql.converters.escape_string(s))

    def __enter__(self) -> ServedConnection:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc_val: BaseException | None,
                 exc_tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<served pymysql.Connection {self.host}:{self.port}/{self.db}>"


class ServedCursor:
    """A PyMySQL cursor over recorded results."""

    def __init__(self, connection: ServedConnection, cursorclass: Any) -> None:
        self.connection: ServedConnection | None = connection
        self.arraysize = 1
        self._dict_type: Any = None
        if isinstance(cursorclass, type) and issubclass(cursorclass,
                                                        pymysql.cursors.DictCursorMixin):
            self._dict_type = getattr(cursorclass, "dict_type", dict)
        self._buffered = not (isinstance(cursorclass, type)
                              and issubclass(cursorclass, pymysql.cursors.SSCursor))
        self._result: ServedResult | None = None
        self._executed: Any = None

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

    @property
    def rownumber(self) -> int:
        """Index of the next row."""
        return 0 if self._result is None else self._result.position

    def _connection(self) -> ServedConnection:
        if self.connection is None:
            raise pymysql.err.ProgrammingError("Cursor closed")
        self.connection._check()
        return self.connection

    def _make_row(self, values: tuple[Any, ...]) -> Any:
        if self._dict_type is None:
            return values
        names = self._result.names if self._result is not None else None
        return self._dict_type(zip(names or (), values, strict=False))

    def _serve(self, operation: str, query: Any, params: Any) -> int:
        connection = self._connection()
        self._result = None
        self._executed = query
        result = served_statement(self, SYSTEM, operation, query, params,
                                  buffered=self._buffered)
        self._result = result
        connection.affected = result.rowcount
        if isinstance(result.lastrowid, int):
            connection.insert_id_value = result.lastrowid
        return result.rowcount

    def execute(self, query: Any, args: Any = None) -> int:
        """Serve one statement; returns the recorded row count."""
        return self._serve(EXECUTE, query, args)

    def executemany(self, query: Any, args: Any) -> int:
        """Serve one ``executemany``; returns the recorded row count."""
        return self._serve(EXECUTEMANY, query, many_parameters(args))

    def _rows(self) -> ServedResult | None:
        self._connection()
        if self._executed is None:
            raise pymysql.err.ProgrammingError("execute() first")
        result = self._result
        return None if result is None or result.names is None else result

    def _container(self, rows: list[Any]) -> Any:
        # a plain buffered cursor hands out tuples of rows; dict and unbuffered ones lists
        return tuple(rows) if self._buffered and self._dict_type is None else rows

    def fetchone(self) -> Any:
        """The next recorded row, or None."""
        result = self._rows()
        return None if result is None else fetch_one(self, result, self._make_row)

    def fetchmany(self, size: int | None = None) -> Any:
        """Up to ``size`` recorded rows."""
        result = self._rows()
        if result is None:
            return ()
        return self._container(fetch_many(self, result, self._make_row,
                                          size or self.arraysize))

    def fetchall(self) -> Any:
        """Every remaining recorded row."""
        result = self._rows()
        if result is None:
            return []
        return self._container(fetch_all(self, result, self._make_row))

    def __iter__(self) -> Any:
        return iter(self.fetchone, None)

    def nextset(self) -> None:
        """Only one result set is recorded."""
        return None

    def scroll(self, value: int, mode: str = "relative") -> None:
        """Not served: the recording holds rows in the order they were fetched."""
        raise pymysql.err.NotSupportedError("scroll() is not served during a replay")

    def close(self) -> None:
        """Close; an open result is written as it stands."""
        close_cursor(self)
        self.connection = None

    def __enter__(self) -> ServedCursor:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc_val: BaseException | None,
                 exc_tb: TracebackType | None) -> None:
        self.close()


def served_connect(*args: Any, **kwargs: Any) -> ServedConnection:
    """``pymysql.connect`` while serving: no connection is opened."""
    current_session()
    return ServedConnection(*args, **kwargs)


def serve() -> list[Patch]:
    """Swap PyMySQL's entry points for served ones (restored by the caller)."""
    patches = [Patch(pymysql, "connect", served_connect), Patch(pymysql, "Connect", served_connect)]
    return [patch.apply() for patch in patches]
