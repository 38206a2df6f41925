"""Wrappers for DB-API cursor and connection methods, shared by the SQL driver adapters.

Outside a sampled request each wrapper costs an attribute read and, for
fetches, one dictionary lookup. Inside one, the statement, its parameters
and the outcome are handed to :mod:`pytest_replay.capture.db_record`; the
driver's own return value and exceptions pass through untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, Final

from pytest_replay.capture.db_open import OPEN
from pytest_replay.capture.db_record import (
    ABSENT,
    EXECUTEMANY,
    Call,
    capture_failed,
    column_names,
    ids_for,
    open_call,
    transaction_call,
)

Method = Callable[..., Any]
Buffered = Callable[[Any], bool]
Names = Callable[[Any], "list[str] | None"]

_HELD: Final = OPEN.held
"""``id(cursor) -> (call, ref)`` of open results; read directly, it is on every call's path."""

_INSIDE: ContextVar[bool] = ContextVar("replay_db_inside_statement", default=False)
"""Set while a recorded statement runs, so a driver's own nested execute is not recorded twice."""


def description_names(cursor: Any) -> list[str] | None:
    """Column names from the DB-API ``description`` (None: the statement returned no rows)."""
    return column_names(cursor.description)


def finish_statement(cursor: Any, call: Call, buffered: Buffered | None, lastrowid: bool,
                     names_of: Names = description_names) -> None:
    """Read what the statement produced off ``cursor`` and record it (open if it has rows)."""
    try:
        names = names_of(cursor)
        rowcount = cursor.rowcount
        last = cursor.lastrowid if lastrowid else ABSENT
        expected = None
        if (names is not None and buffered is not None and type(rowcount) is int
                and rowcount >= 0 and buffered(cursor)):
            expected = rowcount
    except Exception as exc:
        capture_failed(exc)
        call.done()
        return
    if call.returned(names, rowcount, last, expected):
        OPEN.hold(cursor, call)


def wrap_execute(system: str, operation: str, original: Method, *, params_name: str,
                 buffered: Buffered | None, lastrowid: bool, guard: bool = False,
                 names: Names = description_names) -> Method:
    """``execute``/``executemany``/``executescript`` recording one ``db_call``.

    ``guard`` marks drivers whose ``executemany`` calls ``execute`` itself.
    """
    many = operation == EXECUTEMANY

    def execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        if _HELD:
            OPEN.release(self)
        ids = ids_for(system)
        if ids is None or (guard and _INSIDE.get()):
            return original(self, query, *args, **kwargs)
        pulled: list[Any] | None = None
        if many and args and not isinstance(args[0], (list, tuple)):
            # the driver pulls a generator one set at a time (and runs the sets before one
            # that fails): hand it one that keeps each set as it goes, recorded afterwards
            pulled = []
            args = (_kept(args[0], pulled), *args[1:])
        params = args[0] if pulled is None and args else kwargs.get(params_name)
        call = open_call(system, operation, ids, query, [] if pulled is not None else params)
        if call is None:
            return original(self, query, *args, **kwargs)
        token = _INSIDE.set(True) if guard else None
        try:
            result = original(self, query, *args, **kwargs)
        except Exception as exc:
            if pulled is not None:
                call.pulled(pulled)
            call.failed(exc)
            raise
        finally:
            if token is not None:
                _INSIDE.reset(token)
        if pulled is not None:
            call.pulled(pulled)
        finish_statement(self, call, buffered, lastrowid, names)
        return result

    return _named(execute, original)


def _kept(sets: Any, pulled: list[Any]) -> Iterator[Any]:
    """``sets`` as the driver pulls them, each kept in ``pulled`` on the way."""
    for item in sets:
        pulled.append(item)
        yield item


def wrap_script(system: str, operation: str, original: Method) -> Method:
    """``executescript``: many statements, no rows."""

    def executescript(self: Any, script: Any, *args: Any, **kwargs: Any) -> Any:
        if _HELD:
            OPEN.release(self)
        ids = ids_for(system)
        if ids is None:
            return original(self, script, *args, **kwargs)
        call = open_call(system, operation, ids, script)
        if call is None:
            return original(self, script, *args, **kwargs)
        try:
            result = original(self, script, *args, **kwargs)
        except Exception as exc:
            call.failed(exc)
            raise
        finish_statement(self, call, None, False)
        return result

    return _named(executescript, original)


def _fetch_wrapper(original: Method, feed: Callable[[Any, Any, Any], None]) -> Method:
    """A ``fetch*`` method that hands what it fetched to ``feed`` (the open call's result)."""

    def fetch(self: Any, *args: Any, **kwargs: Any) -> Any:
        entry = _HELD.get(id(self)) if _HELD else None
        call = None if entry is None else entry[0]
        if call is None or call.busy:
            return original(self, *args, **kwargs)
        call.busy = True
        try:
            fetched = original(self, *args, **kwargs)
        finally:
            call.busy = False
        feed(self, call, fetched)
        return fetched

    return _named(fetch, original)


def wrap_fetchone(original: Method) -> Method:
    """``fetchone`` feeding the open call of its cursor."""
    return _fetch_wrapper(original, OPEN.one)


def wrap_fetchmany(original: Method) -> Method:
    """``fetchmany`` feeding the open call of its cursor."""
    return _fetch_wrapper(original, OPEN.many)


def wrap_fetchall(original: Method) -> Method:
    """``fetchall`` feeding the open call of its cursor, then finishing it."""
    return _fetch_wrapper(original, OPEN.all)


def wrap_next(original: Method) -> Method:
    """``__next__`` of a cursor that is its own iterator (psycopg, sqlite3)."""

    def __next__(self: Any) -> Any:
        entry = _HELD.get(id(self)) if _HELD else None
        call = None if entry is None else entry[0]
        if call is None or call.busy:
            return original(self)
        try:
            row = original(self)
        except StopIteration:
            OPEN.end(self, call)
            raise
        OPEN.row(self, call, row)
        return row

    return _named(__next__, original)


def wrap_close(original: Method) -> Method:
    """``close``: a result still open is finished as it stands."""

    def close(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _HELD:
            OPEN.release(self)
        return original(self, *args, **kwargs)

    return _named(close, original)


def wrap_transaction(system: str, operation: str, statement: str, original: Method) -> Method:
    """``commit``/``rollback`` recording one ``db_call``."""

    def transaction(self: Any, *args: Any, **kwargs: Any) -> Any:
        ids = ids_for(system)
        if ids is None:
            return original(self, *args, **kwargs)
        call = transaction_call(system, operation, ids, statement)
        if call is None:
            return original(self, *args, **kwargs)
        try:
            result = original(self, *args, **kwargs)
        except Exception as exc:
            call.failed(exc)
            raise
        call.done()
        return result

    return _named(transaction, original)


def _named(wrapper: Method, original: Method) -> Method:
    wrapper.__name__ = getattr(original, "__name__", wrapper.__name__)
    wrapper.__qualname__ = getattr(original, "__qualname__", wrapper.__qualname__)
    wrapper.__doc__ = getattr(original, "__doc__", None)
    wrapper.__wrapped__ = original  # type: ignore[attr-defined]
    return wrapper
