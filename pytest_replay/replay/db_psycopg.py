"""psycopg 3 during a replay: ``psycopg.connect`` returns a connection with no socket behind it.

The served connection says it is a ``psycopg.Connection`` (``isinstance``
holds, so SQLAlchemy and ``TypeInfo.fetch`` accept it) and emulates what
applications and SQLAlchemy read off one: transaction status, ``info``,
``transaction()`` blocks, row factories. ``psycopg.Cursor(conn)`` built
directly on a served connection gives a served cursor too.
"""

from __future__ import annotations

import datetime as _dt
import logging
from types import TracebackType
from typing import Any, Final

import psycopg
import psycopg.conninfo
import psycopg.rows
from psycopg import pq

from pytest_replay.capture.db_patch import Patch
from pytest_replay.capture.db_psycopg import SYSTEM, block_statement
from pytest_replay.capture.db_record import COMMIT, EXECUTE, EXECUTEMANY, ROLLBACK
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

SERVER_VERSION: Final = 160000
"""What ``info.server_version`` says (the recording does not hold the server's)."""

_log = logging.getLogger("pytest_replay.replay")
_NOT_CONNINFO: Final = ("autocommit", "prepare_threshold", "context", "row_factory",
                        "cursor_factory")


class ServedInfo:
    """``connection.info``: what the connection parameters say, and a fixed server version."""

    vendor = "PostgreSQL"
    server_version = SERVER_VERSION
    encoding = "utf-8"
    backend_pid = 0
    error_message = ""
    timezone = _dt.timezone.utc
    status = pq.ConnStatus.OK
    pipeline_status = pq.PipelineStatus.OFF

    def __init__(self, connection: ServedConnection, params: dict[str, Any]) -> None:
        self._connection = connection
        self._params = params
        self.host = str(params.get("host", ""))
        self.hostaddr = str(params.get("hostaddr", ""))
        self.port = int(params.get("port", 5432) or 5432)
        self.dbname = str(params.get("dbname", ""))
        self.user = str(params.get("user", ""))
        self.options = str(params.get("options", ""))

    @property
    def transaction_status(self) -> pq.TransactionStatus:
        """IDLE, INTRANS or INERROR, as the served statements left it."""
        return self._connection.transaction_state

    @property
    def dsn(self) -> str:
        """The connection parameters, without the password."""
        return " ".join(f"{k}={v}" for k, v in self._params.items() if k != "password")

    def get_parameters(self) -> dict[str, str]:
        """The non-default connection parameters (no password)."""
        return {k: str(v) for k, v in self._params.items() if k != "password"}

    def parameter_status(self, name: str) -> str | None:
        """A server parameter: only the encoding and version are known."""
        known = {"client_encoding": "UTF8", "server_encoding": "UTF8",
                 "server_version": f"{SERVER_VERSION // 10000}.0", "TimeZone": "UTC",
                 "standard_conforming_strings": "on"}
        return known.get(name)


class ServedPGconn:
    """The few ``pgconn`` attributes psycopg's pure-Python helpers read."""

    _encoding = "utf-8"
    status = pq.ConnStatus.OK
    server_version = SERVER_VERSION

    def __init__(self, connection: ServedConnection) -> None:
        self._connection = connection

    @property
    def transaction_status(self) -> pq.TransactionStatus:
        """As :attr:`ServedInfo.transaction_status`."""
        return self._connection.transaction_state

    def parameter_status(self, name: bytes) -> bytes | None:
        """A server parameter as bytes."""
        value = self._connection.info.parameter_status(name.decode())
        return None if value is None else value.encode()


class ServedPGresult:
    """The ``pgresult`` row factories read column names from."""

    status = pq.ExecStatus.TUPLES_OK

    def __init__(self, names: list[str]) -> None:
        self._names = [name.encode() for name in names]
        self.nfields = len(names)

    def fname(self, index: int) -> bytes:
        """The name of column ``index``."""
        return self._names[index]


class ServedConnection:
    """A ``psycopg.Connection`` look-alike answering from the recording."""

    def __init__(self, conninfo: str = "", **kwargs: Any) -> None:
        self.autocommit = bool(kwargs.get("autocommit", False))
        self.row_factory: Any = kwargs.get("row_factory") or psycopg.rows.tuple_row
        self.cursor_factory: Any = kwargs.get("cursor_factory") or psycopg.Cursor
        self.prepare_threshold: Any = kwargs.get("prepare_threshold", 5)
        self.isolation_level: Any = None
        self.read_only: Any = None
        self.deferrable: Any = None
        self.transaction_state = pq.TransactionStatus.IDLE
        self.blocks = 0
        self._closed = False
        self._adapters: Any = kwargs.get("context")
        params = {k: v for k, v in kwargs.items() if k not in _NOT_CONNINFO}
        try:
            parsed = psycopg.conninfo.conninfo_to_dict(conninfo, **params)
        except psycopg.ProgrammingError:
            parsed = {}
        self.info = ServedInfo(self, parsed)
        self.pgconn = ServedPGconn(self)

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        """``isinstance(conn, psycopg.Connection)`` holds, as it does in production."""
        return psycopg.Connection

    # -- state ----------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def broken(self) -> bool:
        """Never: there is no socket to break."""
        return False

    @property
    def adapters(self) -> Any:
        """An adapters map of its own, as a real connection has."""
        if self._adapters is None or not hasattr(self._adapters, "register_loader"):
            from psycopg.adapt import AdaptersMap

            self._adapters = AdaptersMap(psycopg.adapters)
        return self._adapters

    def check_open(self) -> None:
        """Raise as psycopg does on a closed connection."""
        if self._closed:
            raise psycopg.OperationalError("the connection is closed")

    def after_statement(self, failed: bool) -> None:
        """Follow the transaction status a real server would report."""
        if self.autocommit and not self.blocks:
            self.transaction_state = pq.TransactionStatus.IDLE
        else:
            self.transaction_state = (pq.TransactionStatus.INERROR if failed
                                      else pq.TransactionStatus.INTRANS)

    # -- the DB-API -------------------------------------------------------------------------

    def cursor(self, name: str = "", *, binary: bool = False, row_factory: Any = None,
               scrollable: bool | None = None, withhold: bool = False) -> ServedCursor:
        """A served cursor (named cursors are served as plain ones)."""
        self.check_open()
        return ServedCursor(self, row_factory=row_factory)

    def execute(self, query: Any, params: Any = None, *, prepare: bool | None = None,
                binary: bool = False) -> ServedCursor:
        """``cursor().execute(...)``."""
        return self.cursor().execute(query, params, prepare=prepare, binary=binary)

    def commit(self) -> None:
        """Serve a recorded commit."""
        self.check_open()
        served_transaction(SYSTEM, COMMIT, "COMMIT")
        self.transaction_state = pq.TransactionStatus.IDLE

    def rollback(self) -> None:
        """Serve a recorded rollback."""
        self.check_open()
        served_transaction(SYSTEM, ROLLBACK, "ROLLBACK")
        self.transaction_state = pq.TransactionStatus.IDLE

    def transaction(self, savepoint_name: str | None = None, force_rollback: bool = False
                    ) -> ServedTransaction:
        """A ``with`` block that commits or rolls back as recorded."""
        self.check_open()
        return ServedTransaction(self, savepoint_name, force_rollback)

    def close(self) -> None:
        """Close (nothing to release)."""
        self._closed = True

    def __enter__(self) -> ServedConnection:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc_val: BaseException | None,
                 exc_tb: TracebackType | None) -> None:
        if self._closed:
            return
        if exc_type is not None:
            try:
                self.rollback()
            except Exception as exc2:  # psycopg does the same: warn, keep the first error
                _log.warning("error ignored in rollback on %s: %s", self, exc2)
        else:
            self.commit()
        self.close()

    # -- settings and things replay has no server for -------------------------------------

    def set_autocommit(self, value: bool) -> None:
        """Set :attr:`autocommit`."""
        self.autocommit = bool(value)

    def set_isolation_level(self, value: Any) -> None:
        """Set :attr:`isolation_level`."""
        self.isolation_level = value

    def set_read_only(self, value: Any) -> None:
        """Set :attr:`read_only`."""
        self.read_only = value

    def set_deferrable(self, value: Any) -> None:
        """Set :attr:`deferrable`."""
        self.deferrable = value

    def add_notice_handler(self, callback: Any) -> None:
        """Accepted; a served connection gets no notices."""

    def remove_notice_handler(self, callback: Any) -> None:
        """Accepted."""

    def add_notify_handler(self, callback: Any) -> None:
        """Accepted; a served connection gets no notifications."""

    def remove_notify_handler(self, callback: Any) -> None:
        """Accepted."""

    def cancel(self) -> None:
        """Nothing runs, so nothing to cancel."""

    def cancel_safe(self, *args: Any, **kwargs: Any) -> None:
        """Nothing runs, so nothing to cancel."""

    def pipeline(self) -> Any:
        """Pipeline mode is not served."""
        raise psycopg.NotSupportedError("psycopg pipeline mode is not served during a replay")

    def notifies(self, *args: Any, **kwargs: Any) -> Any:
        """LISTEN/NOTIFY is not served."""
        raise psycopg.NotSupportedError("notifications are not served during a replay")

    def fileno(self) -> int:
        """There is no socket."""
        raise psycopg.NotSupportedError("a served connection has no socket")

    def __repr__(self) -> str:
        return f"<served psycopg.Connection {self.info.dsn!r}>"


class ServedTransaction:
    """``connection.transaction()``: commit, release or roll back as recorded."""

    def __init__(self, connection: ServedConnection, savepoint_name: str | None,
                 force_rollback: bool) -> None:
        self.connection = connection
        self._savepoint_name = savepoint_name or ""
        self.force_rollback = force_rollback
        self._outer = False

    @property
    def savepoint_name(self) -> str | None:
        """The savepoint's name (psycopg's rule: one is used unless the connection was idle)."""
        return self._savepoint_name

    def __enter__(self) -> ServedTransaction:
        connection = self.connection
        self._outer = connection.transaction_state == pq.TransactionStatus.IDLE
        if not self._outer and not self._savepoint_name:
            self._savepoint_name = f"_pg3_{connection.blocks + 1}"
        connection.blocks += 1
        connection.transaction_state = pq.TransactionStatus.INTRANS
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc_val: BaseException | None,
                 exc_tb: TracebackType | None) -> bool:
        connection = self.connection
        connection.blocks -= 1
        committed = exc_val is None and not self.force_rollback
        statement = block_statement(committed, bool(self._savepoint_name))
        served_transaction(SYSTEM, COMMIT if committed else ROLLBACK, statement)
        if self._outer:
            connection.transaction_state = pq.TransactionStatus.IDLE
        if isinstance(exc_val, psycopg.Rollback):
            target: object = exc_val.transaction
            return target is None or target is self
        return False


class ServedCursor:
    """A psycopg client-side cursor over recorded results."""

    def __init__(self, connection: ServedConnection, row_factory: Any = None,
                 **_ignored: Any) -> None:
        self._conn = connection
        self._row_factory: Any = row_factory or connection.row_factory
        self._result: ServedResult | None = None
        self._make_row: Any = None
        self._closed = False
        self.arraysize = 1
        self.format = pq.Format.TEXT

    # -- what a cursor tells ---------------------------------------------------------------

    @property
    def connection(self) -> ServedConnection:
        """The served connection."""
        return self._conn

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def row_factory(self) -> Any:
        """How rows are built (re-applied to the recorded column values)."""
        return self._row_factory

    @row_factory.setter
    def row_factory(self, factory: Any) -> None:
        self._row_factory = factory
        if self._result is not None and self._result.names is not None:
            self._make_row = factory(self)

    @property
    def description(self) -> Any:
        """The recorded column names."""
        return None if self._result is None else self._result.description

    @property
    def rowcount(self) -> int:
        """The recorded row count."""
        return -1 if self._result is None else self._result.rowcount

    @property
    def rownumber(self) -> int | None:
        """Index of the next row."""
        return None if self._result is None else self._result.position

    @property
    def statusmessage(self) -> str | None:
        """Not recorded."""
        return None

    @property
    def pgresult(self) -> ServedPGresult | None:
        """Enough of a result for psycopg's row factories."""
        result = self._result
        if result is None or result.names is None:
            return None
        return ServedPGresult(result.names)

    @property
    def _encoding(self) -> str:
        return "utf-8"

    # -- running ------------------------------------------------------------------------

    def _check(self) -> None:
        if self._closed:
            raise psycopg.InterfaceError("the cursor is closed")
        self._conn.check_open()

    def execute(self, query: Any, params: Any = None, *, prepare: bool | None = None,
                binary: bool | None = None) -> ServedCursor:
        """Serve one statement."""
        self._check()
        self._result = None
        self._make_row = None
        try:
            self._result = served_statement(self, SYSTEM, EXECUTE, query, params,
                                            buffered=True)
        except BaseException:
            self._conn.after_statement(True)
            raise
        self._conn.after_statement(False)
        if self._result.names is not None:
            self._make_row = self._row_factory(self)
        return self

    def executemany(self, query: Any, params_seq: Any, *, returning: bool = False) -> None:
        """Serve one ``executemany``."""
        self._check()
        self._result = None
        self._make_row = None
        try:
            self._result = served_statement(self, SYSTEM, EXECUTEMANY, query,
                                            many_parameters(params_seq), buffered=True)
        except BaseException:
            self._conn.after_statement(True)
            raise
        self._conn.after_statement(False)
        if self._result.names is not None:
            self._make_row = self._row_factory(self)

    def _rows(self) -> ServedResult:
        self._check()
        result = self._result
        if result is None:
            raise psycopg.ProgrammingError("no result available")
        if result.names is None:
            raise psycopg.ProgrammingError("the last operation didn't produce records")
        return result

    def fetchone(self) -> Any:
        """The next recorded row, or None."""
        return fetch_one(self, self._rows(), self._make_row)

    def fetchmany(self, size: int = 0) -> list[Any]:
        """Up to ``size`` recorded rows (``arraysize`` by default)."""
        return fetch_many(self, self._rows(), self._make_row, size or self.arraysize)

    def fetchall(self) -> list[Any]:
        """Every remaining recorded row."""
        return fetch_all(self, self._rows(), self._make_row)

    def __iter__(self) -> ServedCursor:
        return self

    def __next__(self) -> Any:
        return fetch_next(self, self._rows(), self._make_row)

    def nextset(self) -> bool | None:
        """Only one result set is recorded."""
        return None

    def scroll(self, value: int, mode: str = "relative") -> None:
        """Not served: the recording holds rows in the order they were fetched."""
        raise psycopg.NotSupportedError("scroll() is not served during a replay")

    def close(self) -> None:
        """Close; an open result is written as it stands."""
        close_cursor(self)
        self._closed = True

    def __enter__(self) -> ServedCursor:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc_val: BaseException | None,
                 exc_tb: TracebackType | None) -> None:
        self.close()


def served_connect(conninfo: str = "", **kwargs: Any) -> ServedConnection:
    """``psycopg.connect`` while serving: no connection is opened."""
    current_session()
    return ServedConnection(conninfo, **kwargs)


def _dispatching_new(cls: type, *args: Any, **kwargs: Any) -> Any:
    """``psycopg.Cursor.__new__``: a served cursor on a served connection, else the usual."""
    connection = args[0] if args else kwargs.get("connection")
    if type(connection) is ServedConnection:
        return ServedCursor(connection, row_factory=kwargs.get("row_factory"))
    return object.__new__(cls)


def _route_direct_cursors() -> None:
    """Make ``psycopg.Cursor(conn)`` on a served connection give a served cursor.

    psycopg builds cursors that way itself (``TypeInfo.fetch``, which
    SQLAlchemy calls on first connect). Installed once and left in place:
    CPython keeps a class's ``__new__`` slot pointing at the Python-level
    lookup after the attribute is deleted, so deleting it would break every
    later ``Cursor(...)``; outside a replay the dispatcher simply builds the
    real cursor.
    """
    if vars(psycopg.Cursor).get("__new__") is not _DISPATCHER:
        psycopg.Cursor.__new__ = _DISPATCHER  # type: ignore[method-assign]


_DISPATCHER: Final = staticmethod(_dispatching_new)


def _connect_method(_cls: type, /, conninfo: str = "", **kwargs: Any) -> ServedConnection:
    return served_connect(conninfo, **kwargs)


def serve() -> list[Patch]:
    """Swap psycopg's entry points for served ones (restored by the caller)."""
    patches = [
        Patch(psycopg, "connect", served_connect),
        Patch(psycopg.Connection, "connect", classmethod(_connect_method)),
    ]
    _route_direct_cursors()
    return [patch.apply() for patch in patches]
