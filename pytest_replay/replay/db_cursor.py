"""What every served SQL cursor does, whatever the driver it stands in for.

A served ``execute`` finds its recording, raises the recorded error as the
driver's own class, or holds the recorded rows and hands them out in the
order production fetched them. It reports to the capture recorder exactly
as the real driver's wrappers do, so the replayed ``db_call`` equals the
recorded one. Fetching a row production never fetched is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, final

from pytest_replay.capture.db_open import OPEN
from pytest_replay.capture.db_record import (
    ABSENT,
    EXECUTEMANY,
    Call,
    encode_parameters,
    ids_for,
    statement_text,
)
from pytest_replay.replay.db_session import DatabaseSession, Recorded, current_session
from pytest_replay.replay.external import UnrecordedCall

RowMaker = Callable[[tuple[Any, ...]], Any]


class ServedColumn(NamedTuple):
    """One column of a served ``description``: only the name was recorded."""

    name: str
    type_code: Any = None
    display_size: Any = None
    internal_size: Any = None
    precision: Any = None
    scale: Any = None
    null_ok: Any = None


@final
class ServedResult:
    """The recorded outcome of one served statement, and how far it has been fetched."""

    __slots__ = ("description", "exhausted", "lastrowid", "names", "position", "recorded",
                 "rowcount", "rows", "session", "truncated")

    def __init__(self, session: DatabaseSession, recorded: Recorded) -> None:
        event = recorded.event
        self.session = session
        self.recorded = recorded
        names = event.get("description")
        self.names: list[str] | None = names
        self.description = (None if names is None
                             else [ServedColumn(name) for name in names])
        self.rowcount: int = event.get("rowcount", -1)
        self.lastrowid: Any = event.get("lastrowid", ABSENT)
        self.exhausted = bool(event.get("exhausted", False))
        self.truncated = bool(event.get("rows_truncated", False))
        self.rows = [tuple(session.decoded(recorded, row, f"rows[{index}]"))
                     for index, row in enumerate(event.get("rows") or ())]
        self.position = 0

    def next_values(self) -> tuple[Any, ...] | None:
        """The next row's values; None past the end (when production saw the end)."""
        position = self.position
        if position < len(self.rows):
            self.position = position + 1
            return self.rows[position]
        if self.exhausted:
            return None
        if self.truncated:
            problem = (f"only the first {len(self.rows)} fetched rows were recorded "
                       "(rows_truncated; raise max_rows of install_db_capture)")
        else:
            problem = (f"row {position + 1} was never fetched when this was recorded, so "
                       "what it holds is unknown")
        raise self.session.refuse(self.recorded, "fetch", problem)


def served_statement(cursor: Any, system: str, operation: str, query: Any, params: Any, *,
                     buffered: bool) -> ServedResult:
    """Serve one statement on ``cursor``: the recorded result, or the recorded error raised."""
    if OPEN:
        OPEN.release(cursor)
    session = current_session()
    statement = statement_text(query)
    parameters = ABSENT if params is ABSENT else encode_parameters(
        params, statement, many=operation == EXECUTEMANY)
    ids = ids_for(system)
    call = Call(system, operation, ids, statement, parameters) if ids is not None else None
    try:
        recorded = session.take(system, operation, statement, parameters)
        result = ServedResult(session, recorded) if recorded.error_class is None else None
    except UnrecordedCall as exc:
        if call is not None:
            call.failed(exc)
        raise
    if result is None:
        error = recorded.error()
        assert error is not None
        if call is not None:
            call.failed(error)
        raise error
    if call is not None:
        expected = None
        if buffered and result.names is not None and result.rowcount >= 0:
            expected = result.rowcount
        if call.returned(result.names, result.rowcount, result.lastrowid, expected):
            OPEN.hold(cursor, call)
    return result


def served_transaction(system: str, operation: str, statement: str) -> None:
    """Serve a commit or rollback (raising what the database raised then, if it did)."""
    session = current_session()
    ids = ids_for(system)
    call = Call(system, operation, ids, statement) if ids is not None else None
    try:
        recorded = session.take(system, operation, statement)
    except UnrecordedCall as exc:
        if call is not None:
            call.failed(exc)
        raise
    error = recorded.error()
    if error is not None:
        if call is not None:
            call.failed(error)
        raise error
    if call is not None:
        call.done()


def _open_call(cursor: Any) -> Call | None:
    call = OPEN.get(cursor) if OPEN else None
    return None if call is None or call.busy else call


def fetch_one(cursor: Any, result: ServedResult, make_row: RowMaker) -> Any:
    """``fetchone()`` over served rows."""
    call = _open_call(cursor)
    values = result.next_values()
    row = None if values is None else make_row(values)
    if call is not None:
        OPEN.one(cursor, call, row)
    return row


def fetch_many(cursor: Any, result: ServedResult, make_row: RowMaker, size: int) -> list[Any]:
    """``fetchmany(size)`` over served rows."""
    call = _open_call(cursor)
    rows: list[Any] = []
    while len(rows) < size:
        values = result.next_values()
        if values is None:
            break
        rows.append(make_row(values))
    if call is not None:
        OPEN.many(cursor, call, rows)
    return rows


def fetch_all(cursor: Any, result: ServedResult, make_row: RowMaker) -> list[Any]:
    """``fetchall()`` over served rows."""
    call = _open_call(cursor)
    rows: list[Any] = []
    while True:
        values = result.next_values()
        if values is None:
            break
        rows.append(make_row(values))
    if call is not None:
        OPEN.all(cursor, call, rows)
    return rows


def fetch_next(cursor: Any, result: ServedResult, make_row: RowMaker) -> Any:
    """``next(cursor)`` over served rows."""
    call = _open_call(cursor)
    values = result.next_values()
    if values is None:
        if call is not None:
            OPEN.end(cursor, call)
        raise StopIteration
    row = make_row(values)
    if call is not None:
        OPEN.row(cursor, call, row)
    return row


def close_cursor(cursor: Any) -> None:
    """A closed cursor's open result is written as it stands (as capture does)."""
    if OPEN:
        OPEN.release(cursor)


def many_parameters(params_seq: Any) -> Any:
    """``executemany``'s parameters as capture records them (a generator becomes a list)."""
    if isinstance(params_seq, (list, tuple)):
        return params_seq
    return list(params_seq)
