"""How one database or Redis call becomes one ``db_call`` event.

The driver wrappers (capture) and replay's served connections both build
their events here, so a replayed call writes the same event as the recorded
one by construction. A call that returns rows stays open while the
application fetches and is written once its result is finished: exhausted,
closed, executed again, or its cursor gone (see :mod:`.db_open`).
Everything here runs on the
request path: it never raises into the application (a failure costs the
event, counted in ``pytest_replay.stats()``).
"""

from __future__ import annotations

import functools
import re
import sys
import time
from collections.abc import Callable
from contextvars import ContextVar, Token
from typing import Any, Final, TypeVar, final

from pytest_replay.capture.clock import wall_ns
from pytest_replay.capture.runtime import RUNTIME, current_ids
from pytest_replay.format import events as ev
from pytest_replay.format.values import redacted

T = TypeVar("T")

SYSTEMS: Final = ("postgresql", "mysql", "sqlite", "redis")
SQL_SYSTEMS: Final = frozenset({"postgresql", "mysql", "sqlite"})

EXECUTE: Final = "execute"
EXECUTEMANY: Final = "executemany"
EXECUTESCRIPT: Final = "executescript"
COMMIT: Final = "commit"
ROLLBACK: Final = "rollback"
COMMAND: Final = "command"
PIPELINE: Final = "pipeline"

DEFAULT_MAX_ROWS: Final = 1000
STATEMENT_LIMIT: Final = 16384
DB_CAPTURE_ERROR: Final = "db_capture_error"

Ids = tuple[str, "str | None"]


@final
class Settings:
    """Which systems are captured, and how many fetched rows one event keeps."""

    __slots__ = ("enabled", "max_rows")

    def __init__(self) -> None:
        self.enabled: frozenset[str] = frozenset()
        self.max_rows = DEFAULT_MAX_ROWS


SETTINGS: Final = Settings()


def ids_for(system: str) -> Ids | None:
    """``(correlation_id, trace_id)`` to record a ``system`` call under, or None (don't)."""
    if not RUNTIME.active or system not in SETTINGS.enabled:
        return None
    cid, trace_id = current_ids()
    if cid is None:
        return None
    return cid, trace_id


def capture_failed(exc: BaseException) -> None:
    """Count an event lost to a capture bug or a hostile value (never raised)."""
    RUNTIME.drop(f"db capture failed: {type(exc).__name__}: {exc}", DB_CAPTURE_ERROR)


# -- what drivers do inside a call ---------------------------------------------------------

_NONDETERMINISM: Final = "pytest_replay.capture.nondeterminism"
Quiet = tuple[ContextVar[bool], Token[bool]]


def quiet_nondeterminism() -> Quiet | None:
    """Stop chance/environment capture from recording what a driver reads inside a call.

    A real ``connect`` reads ``PG*`` variables and TLS settings; a served one
    reads nothing, so recording those reads would make replays diverge.
    Returns what :func:`restore_nondeterminism` needs (None when that capture
    is not loaded).
    """
    module = sys.modules.get(_NONDETERMINISM)
    inside = getattr(module, "_INSIDE", None)  # INTEGRATION: a public switch would be better
    if not isinstance(inside, ContextVar):
        return None
    return inside, inside.set(True)


def restore_nondeterminism(state: Quiet | None) -> None:
    """Undo :func:`quiet_nondeterminism`."""
    if state is not None:
        state[0].reset(state[1])


def quietly(original: Callable[..., Any]) -> Callable[..., Any]:
    """``original`` run with chance/environment capture quiet (for driver connects)."""

    @functools.wraps(original)
    def quiet(*args: Any, **kwargs: Any) -> Any:
        state = quiet_nondeterminism()
        try:
            return original(*args, **kwargs)
        finally:
            restore_nondeterminism(state)

    return quiet


# -- statements ---------------------------------------------------------------------------

_QUOTED: Final = re.compile(
    r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|`[^`]*`|\$(\w*)\$.*?\$\1\$""", re.DOTALL
)
_SPACE: Final = re.compile(r"\s+")


@functools.lru_cache(maxsize=4096)
def normalize_statement(sql: str) -> str:
    """``sql`` with every run of whitespace outside quotes made one space, and stripped.

    This is both what a ``db_call`` records and what replay matches on, so a
    statement reformatted (indentation, line breaks) still finds its recording.
    """
    if "'" not in sql and '"' not in sql and "`" not in sql and "$" not in sql:
        text = " ".join(sql.split())
    else:
        parts: list[str] = []
        position = 0
        for match in _QUOTED.finditer(sql):
            parts.append(_SPACE.sub(" ", sql[position:match.start()]))
            parts.append(match.group(0))
            position = match.end()
        parts.append(_SPACE.sub(" ", sql[position:]))
        text = "".join(parts).strip()
    if len(text) > STATEMENT_LIMIT:
        return text[:STATEMENT_LIMIT] + "..."
    return text


def statement_text(query: Any) -> str:
    """The normalized SQL of what a driver was given (str, bytes or a psycopg ``sql`` object)."""
    if type(query) is str:
        return normalize_statement(query)
    if isinstance(query, (bytes, bytearray, memoryview)):
        return normalize_statement(bytes(query).decode("utf-8", "replace"))
    if isinstance(query, str):
        return normalize_statement(str.__str__(query))
    kind = type(query)
    if kind.__module__.startswith("psycopg"):
        text = query.as_string(None)  # composed SQL, quoted without a connection
        if isinstance(text, str):
            return normalize_statement(text)
    return f"<{kind.__module__}.{kind.__qualname__}>"


_INT64: Final = 2**63


def _plain(values: Any) -> list[Any] | None:
    """``values`` as a JSON list when every item is a short string or a plain number.

    The common case of a statement's parameters and of a fetched row, encoded
    without going through the general encoder; None sends the caller there.
    """
    limit = RUNTIME.max_str
    for value in values:
        kind = type(value)
        if kind is str:
            if len(value) > limit:
                return None
        elif kind is int:
            if not -_INT64 <= value < _INT64:
                return None
        elif kind is float:
            if value - value != 0.0:  # nan and the infinities get tags
                return None
        elif value is not None and kind is not bool:
            return None
    return list(values)


_SQL_TOKEN: Final = re.compile(r"""
    (?P<literal>'(?:[^']|'')*'?)
  | (?P<quoted>"(?:[^"]|"")*"?|`[^`]*`?)
  | (?P<place>\?|%s|\$(?P<number>\d+))
  | (?P<word>[A-Za-z_][\w.$]*)
  | (?P<compare><>|!=|<=|>=|=|<|>)
  | (?P<open>\()
  | (?P<close>\))
  | (?P<comma>,)
""", re.VERBOSE)
_INSERT_COLUMNS: Final = re.compile(
    r"\bINSERT\s+(?:OR\s+\w+\s+)?INTO\s+[\w.\"`]+\s*\(([^)]*)\)\s*VALUES\s*", re.IGNORECASE)
_CLAUSE_WORDS: Final = frozenset({"and", "or", "not", "where", "set", "on", "when", "then",
                                  "else", "end", "having", "limit", "offset", "returning"})
_SECRET_PLACES: dict[str, tuple[int, ...]] = {}


def secret_parameters(statement: str) -> tuple[int, ...]:
    """Positions of the positional parameters a statement binds to secret columns.

    ``INSERT INTO t (owner, api_token) VALUES (?, ?), (?, ?)`` binds the second
    of each row to ``api_token`` (also wrapped: ``lower(?)``); ``UPDATE t SET
    password = crypt(%s, 'bf') WHERE id = %s`` the first; ``$2`` is the second
    parameter wherever it stands. Columns are judged as dict keys are. One pass
    over the statement, its answer cached per statement.
    """
    generation = _refresh_caches()
    found = _SECRET_PLACES.get(statement)
    if found is not None:
        return found
    is_secret = RUNTIME.is_secret
    insert = _INSERT_COLUMNS.search(statement)
    columns = ([column.strip().strip('"`') for column in insert.group(1).split(",")]
               if insert is not None else [])
    values_at = insert.end() if insert is not None else len(statement) + 1
    places: set[int] = set()
    ordinal = 0
    depth = 0
    row_item = 0          # which column of the current VALUES row
    last_word: str | None = None
    pending: tuple[str, int] | None = None  # (column, depth) of "column <op>" being read
    for token in _SQL_TOKEN.finditer(statement):
        kind = token.lastgroup
        if kind == "number":
            kind = "place"
        if kind == "place":
            number = token.group("number")
            index = int(number) - 1 if number is not None else ordinal
            ordinal += 1
            column = None
            if token.start() >= values_at and depth >= 1:
                column = columns[row_item] if row_item < len(columns) else None
            elif pending is not None and depth >= pending[1]:
                column = pending[0]
            if column is not None and index >= 0 and is_secret(column):
                places.add(index)
            last_word = None
        elif kind == "word":
            word = token.group(0)
            if depth == (pending[1] if pending is not None else -1) \
                    and word.lower() in _CLAUSE_WORDS:
                pending = None
            last_word = word.rsplit(".", 1)[-1]
        elif kind == "quoted":
            last_word = token.group(0)[1:-1]
        elif kind == "compare":
            if last_word is not None:
                pending = (last_word, depth)
            last_word = None
        elif kind == "open":
            depth += 1
            if token.start() >= values_at and depth == 1:
                row_item = 0  # a new row of VALUES
            last_word = None
        elif kind == "close":
            depth -= 1
            if pending is not None and depth < pending[1]:
                pending = None
            last_word = None
        elif kind == "comma":
            if token.start() >= values_at and depth == 1:
                row_item += 1
            if pending is not None and depth == pending[1]:
                pending = None
            last_word = None
        else:  # a literal
            last_word = None
    found = tuple(sorted(places))
    if len(_SECRET_PLACES) < 1024 and RUNTIME.generation == generation:
        _SECRET_PLACES[statement] = found  # not an answer of a configuration just replaced
    return found


def _refresh_caches() -> int:
    """Forget the column answers of an earlier configuration (both caches at once);
    returns the generation the answers about to be made belong to."""
    generation = RUNTIME.generation
    if _secret_generation[0] != generation:
        _SECRET_PLACES.clear()
        _SECRET_COLUMNS.clear()
        _secret_generation[0] = generation
    return generation


def _hide_places(encoded: Any, places: tuple[int, ...]) -> Any:
    """One encoded parameter set with the values at ``places`` redacted."""
    if type(encoded) is list:
        items = list(encoded)
    elif type(encoded) is dict and encoded.get("$type") == "tuple":
        items = list(encoded.get("items", ()))
    else:
        return encoded
    for place in places:
        if place < len(items):
            items[place] = redacted()
    return items if type(encoded) is list else {**encoded, "items": items}


def encode_parameters(params: Any, statement: str | None = None, *, many: bool = False
                      ) -> Any:
    """The recorded (and matched) form of a statement's parameters.

    With the ``statement``, positional parameters bound to secret columns are
    redacted (:func:`secret_parameters`); ``many`` for ``executemany``'s list of sets.
    """
    encoded = _encode_parameters(params)
    if statement is None or params is None or type(params) is dict:
        return encoded
    places = secret_parameters(statement)
    if not places:
        return encoded
    if many:
        if type(encoded) is not list:
            return encoded
        return [_hide_places(item, places) for item in encoded]
    return _hide_places(encoded, places)


def _encode_parameters(params: Any) -> Any:
    """The recorded (and matched) form of a statement's parameters, as given."""
    if params is None:
        return None
    kind = type(params)
    if (kind is tuple or kind is list) and len(params) <= RUNTIME.limits.max_items:
        items = _plain(params)
        if items is not None:
            return items if kind is list else {"$type": "tuple", "items": items}
    elif kind is dict and len(params) <= RUNTIME.limits.max_items:
        is_secret = RUNTIME.is_secret
        if "$type" not in params and all(type(k) is str and not is_secret(k) for k in params):
            values = _plain(params.values())
            if values is not None:
                return dict(zip(params, values, strict=True))
    return RUNTIME.encode(params)


# -- rows ---------------------------------------------------------------------------------

def column_names(description: Any) -> list[str] | None:
    """Column names of a DB-API ``description`` (None when the statement returns no rows)."""
    if description is None:
        return None
    return [str(column[0]) for column in description]


def row_values(row: Any) -> tuple[Any, ...] | list[Any] | None:
    """A fetched row as its column values, whatever shape the driver gave it.

    Tuples, lists, dicts (dict cursors, ``dict_row``) and ``sqlite3.Row``-like
    rows are understood; None for anything else (a ``class_row`` object).
    """
    kind = type(row)
    if kind is tuple or kind is list:
        return row  # type: ignore[no-any-return]
    if isinstance(row, dict):
        return list(row.values())
    if isinstance(row, (tuple, list)):
        return tuple(row)
    if hasattr(kind, "keys") and hasattr(kind, "__len__") and hasattr(kind, "__getitem__"):
        return tuple(row[index] for index in range(len(row)))
    return None


_SECRET_COLUMNS: dict[tuple[str, ...], tuple[int, ...]] = {}
_secret_generation = [-1]


def secret_columns(names: list[str]) -> tuple[int, ...]:
    """Indexes of the columns whose values are redacted (names like ``password``)."""
    generation = _refresh_caches()
    key = tuple(names)
    found = _SECRET_COLUMNS.get(key)
    if found is None:
        is_secret = RUNTIME.is_secret
        found = tuple(index for index, name in enumerate(names) if is_secret(name))
        if len(_SECRET_COLUMNS) < 1024 and RUNTIME.generation == generation:
            _SECRET_COLUMNS[key] = found
    return found


# -- one call -----------------------------------------------------------------------------

ABSENT: Final[Any] = object()
"""Marks a field the driver does not have (psycopg has no ``lastrowid``)."""


@final
class Call:
    """One database call being recorded; its event is emitted exactly once."""

    __slots__ = ("busy", "epoch", "event", "exhausted", "expected", "fetched", "open",
                 "rows", "secret", "started", "truncated")

    def __init__(self, system: str, operation: str, ids: Ids, statement: str,
                 parameters: Any = ABSENT) -> None:
        cid, trace_id = ids
        event: dict[str, Any] = {"event_type": ev.DB_CALL, "timestamp_ns": wall_ns(),
                                 "correlation_id": cid}
        if trace_id is not None and trace_id != cid:
            event["trace_id"] = trace_id
        event["system"] = system
        event["operation"] = operation
        event["statement"] = statement
        if parameters is not ABSENT:
            event["parameters"] = parameters
        self.event = event
        self.rows: list[Any] = []
        self.secret: tuple[int, ...] = ()
        self.expected: int | None = None
        self.fetched = 0
        self.open = True
        self.busy = False
        self.truncated = False
        self.exhausted = False
        self.epoch = RUNTIME.epoch
        self.started = time.perf_counter_ns()

    # -- outcomes -----------------------------------------------------------------------

    def failed(self, exc: BaseException) -> None:
        """The database raised: write the error and emit."""
        try:
            self.event["duration_ns"] = time.perf_counter_ns() - self.started
            self.event.update(error_fields(exc))
        except Exception as problem:
            capture_failed(problem)
        self._emit()

    def pulled(self, sets: list[Any]) -> None:
        """The parameter sets an ``executemany`` pulled from a generator, now known."""
        try:
            self.event["parameters"] = encode_parameters(
                sets, self.event.get("statement"), many=True)
        except Exception as problem:
            capture_failed(problem)

    def done(self) -> None:
        """A call with nothing to report but its duration (commit, rollback, a script)."""
        self.event["duration_ns"] = time.perf_counter_ns() - self.started
        self._emit()

    def result(self, value: Any, hide: Callable[[Any], Any] | None = None) -> None:
        """A Redis reply: write it (``hide`` redacts parts of the encoded reply) and emit."""
        try:
            self.event["duration_ns"] = time.perf_counter_ns() - self.started
            encoded = RUNTIME.encode(value)
            self.event["result"] = encoded if hide is None else hide(encoded)
        except Exception as problem:
            capture_failed(problem)
        self._emit()

    def returned(self, names: list[str] | None, rowcount: Any, lastrowid: Any = ABSENT,
                 expected: int | None = None) -> bool:
        """A statement ran. True when it produced rows: the caller holds the call open.

        ``expected`` is the number of rows a buffered cursor holds; when that
        many were fetched the result is known to be exhausted.
        """
        event = self.event
        event["duration_ns"] = time.perf_counter_ns() - self.started
        event["rowcount"] = rowcount if type(rowcount) is int else -1
        if lastrowid is not ABSENT:
            event["lastrowid"] = lastrowid if type(lastrowid) is int else None
        if names is None:
            self._emit()
            return False
        event["description"] = names
        self.secret = secret_columns(names) if names else ()
        self.expected = expected
        if expected is not None and expected <= 0:
            self.finish(True)
            return False
        return True

    # -- rows ---------------------------------------------------------------------------

    def add(self, row: Any) -> None:
        """One fetched row."""
        self.fetched += 1
        rows = self.rows
        if len(rows) < SETTINGS.max_rows:
            rows.append(self._encode_row(row))
        else:
            self.truncated = True

    def _encode_row(self, row: Any) -> Any:
        values = row_values(row)
        if values is None:
            return RUNTIME.encode(row)  # shown by readers; replay refuses to serve it
        out = _plain(values)
        if out is None:
            encode = RUNTIME.encode
            out = [encode(value) for value in values]
        for index in self.secret:
            if index < len(out):
                out[index] = redacted()
        return out

    def reached_expected(self) -> bool:
        """Whether a buffered cursor has handed out every row it holds."""
        expected = self.expected
        return expected is not None and self.fetched >= expected

    def finish(self, exhausted: bool) -> None:
        """The result is finished (or abandoned): write the rows and emit, once."""
        if not self.open:
            return
        self.open = False
        event = self.event
        event["rows"] = self.rows
        event["exhausted"] = exhausted
        if self.truncated:
            event["rows_truncated"] = True
            event["rows_fetched"] = self.fetched
        self._emit_now()

    def _emit(self) -> None:
        self.open = False
        self._emit_now()

    def _emit_now(self) -> None:
        if not RUNTIME.active:
            return
        if RUNTIME.epoch != self.epoch:
            # finished after capture was reconfigured (another replay, a new sink):
            # the line belongs to a stream that is gone, not to the current one
            RUNTIME.stats.drop(1, "a db_call finished after capture was reconfigured",
                               DB_CAPTURE_ERROR)
            return
        emit(self.event)


def emit(event: dict[str, Any]) -> None:
    """Encode and send one ``db_call`` (scanned, stamped and copied as every event is)."""
    RUNTIME.emit(event, "db_call")


def as_written(value: T) -> T:
    """A statement or its parameters as a written ``db_call`` holds them: scanned.

    Every event, database calls included, goes through the value scan when it
    is written (:meth:`Runtime.emit`); replay scans a live call's statement and
    parameters the same way before matching them with a recording.
    """
    redaction = RUNTIME.redaction
    if not redaction.value_patterns:
        return value
    scrubbed: T = redaction.scrub_encoded(value)  # type: ignore[assignment]
    return scrubbed


def error_fields(exc: BaseException) -> dict[str, Any]:
    """``error_type``/``error_module``/``message`` (and ``error_args`` when they say more)."""
    kind = type(exc)
    try:
        message = str(exc)
    except Exception:
        message = "<unprintable message>"
    limit = RUNTIME.max_str
    fields: dict[str, Any] = {
        "error_type": kind.__name__,
        "error_module": kind.__module__,
        "message": message if len(message) <= limit else message[:limit] + "...",
    }
    args = exc.args
    if args and args != (message,):
        fields["error_args"] = RUNTIME.encode(list(args))
    return fields


def open_call(system: str, operation: str, ids: Ids, query: Any,
              params: Any = ABSENT) -> Call | None:
    """Start recording a statement; None when even that fails (counted, never raised)."""
    try:
        statement = statement_text(query)
        parameters = ABSENT if params is ABSENT else encode_parameters(
            params, statement, many=operation == EXECUTEMANY)
        return Call(system, operation, ids, statement, parameters)
    except Exception as exc:
        capture_failed(exc)
        return None


def transaction_call(system: str, operation: str, ids: Ids, statement: str) -> Call | None:
    """Start recording a commit or rollback."""
    try:
        return Call(system, operation, ids, statement)
    except Exception as exc:
        capture_failed(exc)
        return None
