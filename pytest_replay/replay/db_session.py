"""The recorded ``db_call`` events of one replay, checked, and handed out as calls come in.

A call is answered by the first unused recorded call, in execution order
(``timestamp_ns``, the moment ``execute`` started), with the same system,
operation and statement (whitespace-insensitive) and the same encoded
parameters. Anything else is refused with :class:`UnrecordedCall`.

Every event is checked when serving starts: a field of the wrong type, rows
missing, or an error class outside the driver's own exceptions module is a
:class:`BadDatabaseRecording` naming the event's line and the field.
"""

from __future__ import annotations

import builtins
import importlib
from collections.abc import Sequence
from typing import Any, Final, final

import orjson

from pytest_replay.capture.db_record import (
    ABSENT,
    COMMAND,
    COMMIT,
    EXECUTE,
    EXECUTEMANY,
    EXECUTESCRIPT,
    PIPELINE,
    ROLLBACK,
    SQL_SYSTEMS,
    SYSTEMS,
    as_written,
    normalize_statement,
)
from pytest_replay.format.decode import DecodeError, decode, find_opaque
from pytest_replay.format.values import TAG
from pytest_replay.replay.external import ServedCalls, UnrecordedCall

_OPERATIONS: Final = {
    "sql": frozenset({EXECUTE, EXECUTEMANY, EXECUTESCRIPT, COMMIT, ROLLBACK}),
    "redis": frozenset({COMMAND, PIPELINE}),
}
_STATEMENTS: Final = frozenset({EXECUTE, EXECUTEMANY, EXECUTESCRIPT})
_NO_PARAMETERS: Final = frozenset({COMMIT, ROLLBACK, EXECUTESCRIPT})

ERROR_MODULES: Final = {
    "postgresql": ("psycopg.errors", frozenset({"psycopg", "psycopg.errors"})),
    "mysql": ("pymysql.err", frozenset({"pymysql", "pymysql.err"})),
    "sqlite": ("sqlite3", frozenset({"sqlite3", "sqlite3.dbapi2"})),
    "redis": ("redis.exceptions", frozenset({"redis", "redis.exceptions"})),
}
"""Per system: the one module errors are looked up in, and the module names a trace may give.

Classes are only ever taken from these fixed modules (or ``builtins``), by
name: a trace never makes replay import a module of its choosing.
"""


class BadDatabaseRecording(ValueError):
    """A recorded ``db_call`` replay cannot use; the message names the event and the field."""

    def __init__(self, label: str, field: str, problem: str) -> None:
        super().__init__(f"db_call event at {label}: field {field!r}: {problem}")
        self.label = label
        self.field = field


def event_label(event: dict[str, Any], index: int) -> str:
    """``line 12`` when the engine says where the event came from, else its position."""
    line = event.get("_line")
    if isinstance(line, int):
        return f"line {line}"
    return f"position {index + 1} of the recorded db_call events"


def resolve_error(system: str, module: str, name: str) -> type[Exception] | None:
    """The exception class ``module.name`` names, looked up only where ``system`` allows."""
    if module == "builtins":
        found = getattr(builtins, name, None)
    else:
        home, allowed = ERROR_MODULES[system]
        if module not in allowed:
            return None
        found = getattr(importlib.import_module(home), name, None)
    if isinstance(found, type) and issubclass(found, Exception):
        return found
    return None


def truncated_at(value: Any, path: str = "") -> str | None:
    """Where inside an encoded value capture cut something short, if anywhere."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, dict):
            if item.get(TAG) is not None and item.get("truncated") is True:
                return where or "the value"
            stack.extend((child, f"{where}.{key}") for key, child in item.items())
        elif isinstance(item, list):
            stack.extend((child, f"{where}[{index}]") for index, child in enumerate(item))
    return None


@final
class Recorded:
    """One recorded call, checked, waiting to be served."""

    __slots__ = ("_rows", "error_class", "event", "index", "label", "operation",
                 "parameters", "statement", "system", "used")

    def __init__(self, event: dict[str, Any], index: int) -> None:
        self.event = event
        self.index = index
        self.label = event_label(event, index)
        self.system: str = event["system"]
        self.operation: str = event["operation"]
        statement: str = event["statement"]
        self.statement = (normalize_statement(statement) if self.system in SQL_SYSTEMS
                          else statement)
        self.parameters = (None if self.operation in _NO_PARAMETERS
                           else _canonical(event.get("parameters")))
        self.error_class: type[Exception] | None = None
        self.used = False
        self._rows: list[tuple[Any, ...]] | None = None

    def matches(self, system: str, operation: str, statement: str, parameters: bytes | None
                ) -> bool:
        """Whether this recording answers that call."""
        return (not self.used and self.system == system and self.operation == operation
                and self.statement == statement and self.parameters == parameters)

    def describe(self) -> str:
        """One line for reports: system, operation, statement, where."""
        return f"{self.system} {self.operation} {self.statement!r} ({self.label})"

    def error(self) -> Exception | None:
        """The exception the database raised here, rebuilt as the driver's own class."""
        cls = self.error_class
        if cls is None:
            return None
        message = self.event.get("message", "")
        args: list[Any] = [message]
        if "error_args" in self.event:
            args = list(decode(self.event["error_args"]))
        try:
            return cls(*args)
        except Exception:  # a constructor wanting other arguments still gets the message
            return cls(message)


def _canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _check(event: Any, index: int) -> Recorded | None:
    """Validate one recorded event; None for systems replay does not serve."""
    if not isinstance(event, dict):
        raise BadDatabaseRecording(f"position {index + 1} of the recorded db_call events",
                                   "event", f"expected an object, got {type(event).__name__}")
    label = event_label(event, index)

    def field(name: str, kinds: type | tuple[type, ...], what: str, *, required: bool = True
              ) -> Any:
        if name not in event:
            if required:
                raise BadDatabaseRecording(label, name, f"missing (expected {what})")
            return None
        value = event[name]
        if not isinstance(value, kinds) or (type(value) is bool and kinds is int):
            raise BadDatabaseRecording(label, name,
                                       f"expected {what}, got {type(value).__name__}")
        return value

    system = field("system", str, "a string")
    if system not in SYSTEMS:
        return None
    operation = field("operation", str, "a string")
    family = "redis" if system == "redis" else "sql"
    if operation not in _OPERATIONS[family]:
        raise BadDatabaseRecording(label, "operation", f"{operation!r} is not a {system} "
                                   f"operation replay serves ({sorted(_OPERATIONS[family])})")
    field("statement", str, "a string")
    field("timestamp_ns", int, "an integer", required=False)
    recorded = Recorded(event, index)
    if "error_type" in event:
        name = field("error_type", str, "an exception class name")
        module = field("error_module", str, "a module name")
        field("message", str, "a string", required=False)
        field("error_args", list, "a list", required=False)
        cls = resolve_error(system, module, name)
        if cls is None:
            home = ERROR_MODULES[system][0]
            raise BadDatabaseRecording(label, "error_type", f"{module}.{name} is not an "
                                       f"exception of {home} (or builtins); replay only "
                                       "raises the driver's own exception classes")
        recorded.error_class = cls
        return recorded
    if family == "redis":
        if "result" not in event:
            raise BadDatabaseRecording(label, "result", "missing (a Redis call that did not "
                                       "fail must record its reply)")
        return recorded
    if operation in _STATEMENTS:
        field("rowcount", int, "an integer")
        lastrowid = event.get("lastrowid")
        if lastrowid is not None and type(lastrowid) is not int:
            raise BadDatabaseRecording(label, "lastrowid", "expected an integer or null, got "
                                       f"{type(lastrowid).__name__}")
        _check_rows(event, label)
    return recorded


def _check_rows(event: dict[str, Any], label: str) -> None:
    names = event.get("description")
    if names is None:
        return
    if not (isinstance(names, list) and all(isinstance(name, str) for name in names)):
        raise BadDatabaseRecording(label, "description", "expected a list of column names")
    if "rows" not in event:
        raise BadDatabaseRecording(label, "rows", "missing (a statement with a description "
                                   "must record the rows it returned)")
    rows = event["rows"]
    if not isinstance(rows, list):
        raise BadDatabaseRecording(label, "rows",
                                   f"expected a list of rows, got {type(rows).__name__}")
    for number, row in enumerate(rows):
        if not isinstance(row, list):
            shown = row.get("class", row.get(TAG)) if isinstance(row, dict) else (
                type(row).__name__)
            raise BadDatabaseRecording(label, f"rows[{number}]", "expected a list of column "
                                       f"values, got {shown} (rows of that type cannot be "
                                       "served)")
        if len(row) != len(names):
            raise BadDatabaseRecording(label, f"rows[{number}]", f"has {len(row)} values but "
                                       f"the description has {len(names)} columns")
    for name in ("exhausted", "rows_truncated"):
        if name in event and not isinstance(event[name], bool):
            raise BadDatabaseRecording(label, name, "expected true or false, got "
                                       f"{type(event[name]).__name__}")


@final
class DatabaseSession:
    """The calls one replay may make, and what it asked that was not recorded."""

    __slots__ = ("calls", "foreign", "recorded")

    def __init__(self, events: Sequence[dict[str, Any]], calls: ServedCalls) -> None:
        self.calls = calls
        checked: list[Recorded] = []
        self.foreign: list[str] = []
        for index, event in enumerate(events):
            recorded = _check(event, index)
            if recorded is None:
                self.foreign.append(f"{event.get('system')!r} call ({event_label(event, index)})")
            else:
                checked.append(recorded)
        # execution order: events are written when a result is finished, which may be
        # after later statements ran; timestamp_ns is when each one started
        if all(isinstance(r.event.get("timestamp_ns"), int) for r in checked):
            checked.sort(key=lambda r: (r.event["timestamp_ns"], r.index))
        self.recorded = checked

    def take(self, system: str, operation: str, statement: str, parameters: Any = ABSENT
             ) -> Recorded:
        """The recording that answers this call, or raise :class:`UnrecordedCall`.

        The call is compared as capture would have written it: secret-shaped text
        in its statement and parameters scrubbed, as it is in the recording.
        """
        statement = as_written(statement)
        if system in SQL_SYSTEMS:
            statement = normalize_statement(statement)
        if parameters is not ABSENT:
            parameters = as_written(parameters)
        key = None if parameters is ABSENT else _canonical(parameters)
        for recorded in self.recorded:
            if recorded.matches(system, operation, statement, key):
                recorded.used = True
                self.calls.served += 1
                return recorded
        raise self.unrecorded(system, operation, statement, parameters)

    def unrecorded(self, system: str, operation: str, statement: str, parameters: Any
                   ) -> UnrecordedCall:
        """The refusal for a call nothing recorded answers (kept on :attr:`calls`)."""
        detail = f"unrecorded database call: {system} {operation} {statement}"
        if parameters is not ABSENT and parameters is not None:
            detail += f" with parameters {_short(parameters)}"
        same = [r for r in self.recorded if not r.used and r.system == system
                and r.operation == operation and r.statement == statement]
        if same:
            shown = ", ".join(f"{_short(r.event.get('parameters'))} ({r.label})" for r in same[:3])
            detail += f"; recorded with other parameters: {shown}"
        else:
            waiting = next((r for r in self.recorded if not r.used and r.system == system), None)
            if waiting is not None:
                detail += f"; next unused recorded {system} call: {waiting.describe()}"
            else:
                detail += f"; no {system} call of the recording is left"
        return self.calls.refuse(f"{system} {operation}: {statement}", detail)

    def refuse(self, recorded: Recorded, request: str, problem: str) -> UnrecordedCall:
        """Refuse a call the recording holds only in part (rows never fetched, cut short)."""
        return self.calls.refuse(
            f"{recorded.system} {recorded.operation}: {recorded.statement}",
            f"unrecorded database call: {request}: {problem} ({recorded.label})",
        )

    def decoded(self, recorded: Recorded, value: Any, where: str) -> Any:
        """Decode a recorded value, refusing what capture cut short or cannot rebuild."""
        cut = truncated_at(value)
        if cut is not None:
            raise self.refuse(recorded, where, f"the recorded value at {cut} was truncated at "
                              "capture (raise Limits.max_str / max_items in production)")
        try:
            decoded = decode(value)
        except DecodeError as exc:
            raise BadDatabaseRecording(recorded.label, where, str(exc)) from None
        opaque = find_opaque(decoded)
        if opaque is not None:
            raise self.refuse(recorded, where, f"the recorded {opaque.class_name} cannot be "
                              f"rebuilt ({opaque.reason})")
        return decoded

    def unused(self) -> list[str]:
        """Recorded calls the replay never made, in execution order."""
        return [r.describe() for r in self.recorded if not r.used] + self.foreign


def _short(value: Any, limit: int = 200) -> str:
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = "<unencodable>"
    return text if len(text) <= limit else text[:limit] + "..."


# -- the session replay's served connections answer from -----------------------------------

_ACTIVE: list[DatabaseSession] = []


class ReplayConnectionUsedOutside(RuntimeError):
    """A connection made during a replay was used after serving ended."""


def current_session() -> DatabaseSession:
    """The session serving now (served connections look it up at each call)."""
    if not _ACTIVE:
        raise ReplayConnectionUsedOutside(
            "a database connection opened during a replay was used after serve_database() "
            "ended; it has no server behind it"
        )
    return _ACTIVE[-1]


def activate(session: DatabaseSession) -> None:
    """Make ``session`` the one served connections answer from."""
    if _ACTIVE:
        raise RuntimeError("serve_database() is already active; replays of one process do "
                           "not nest")
    _ACTIVE.append(session)


def deactivate(session: DatabaseSession) -> None:
    """End ``session``."""
    if _ACTIVE and _ACTIVE[-1] is session:
        _ACTIVE.pop()
