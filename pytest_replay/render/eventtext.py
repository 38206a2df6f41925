"""One event as one timeline line (plus detail lines): ``📥 ENTER process_order(...)``.

Each known event type has its own wording, taken from the seed; unknown
types are shown with their fields, never dropped. Missing or mistyped fields
print as ``?``.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from pytest_replay.format.events import Event
from pytest_replay.render.source import names_in, statement_text
from pytest_replay.render.style import Style
from pytest_replay.render.units import UTC, as_ns, duration, full_timestamp
from pytest_replay.render.values import format_args, short

# fields every event may carry; verbose mode lists them, the head line never does
_COMMON: Final = ("correlation_id", "parent_correlation_id", "trace_id", "service",
                  "module", "qualname", "v")
_MAX_LOCALS: Final = 6


@dataclass
class Described:
    """The parts of one drawn event: its icon, its words and detail lines below it."""

    kind: str
    text: str
    details: list[str] = field(default_factory=list)
    error: bool = False


def text_field(event: Mapping[str, Any], *names: str) -> str | None:
    """The first of ``names`` that holds a non-empty string."""
    for name in names:
        value = event.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def int_field(event: Mapping[str, Any], *names: str) -> int | None:
    """The first of ``names`` that holds an integer."""
    for name in names:
        value = as_ns(event.get(name))
        if value is not None:
            return value
    return None


def describe(
    event: Event,
    style: Style,
    *,
    verbose: bool = False,
    width: int = 80,
    name: str | None = None,
    tz: _dt.tzinfo | None = UTC,
) -> Described:
    """Words for ``event``; ``name`` names the call when an exit does not."""
    kind = event.get("event_type")
    kind_text = kind if isinstance(kind, str) else "?"
    handler = _HANDLERS.get(kind_text)
    described = (handler(event, style, width, name) if handler is not None
                 else _unknown(event, style, width, kind_text))
    if verbose:
        described.details.extend(_verbose_details(event, style, width, tz, described.kind))
    return described


def _word(style: Style, word: str, always: bool) -> str:
    return f"{word} " if always or not style.icons else ""


def _function_name(event: Mapping[str, Any], fallback: str | None) -> str:
    return text_field(event, "function_name", "qualname") or fallback or "?"


def _entry(event: Event, style: Style, width: int, name: str | None) -> Described:
    function = style.paint(_function_name(event, name), "name")
    args = format_args(event.get("args"), width, unicode=style.unicode)
    return Described("function_entry", f"ENTER {function}({args})")


def _exit(event: Event, style: Style, width: int, name: str | None) -> Described:
    function = style.paint(_function_name(event, name), "name")
    if event.get("error"):
        return Described("function_exit", f"EXIT {function} (error=True)", error=False)
    if "return_value" in event:
        value = short(event.get("return_value"), width // 2, unicode=style.unicode)
        return Described("function_exit", f"EXIT {function} (result={value})")
    return Described("function_exit", f"EXIT {function}")


def _variable(event: Event, style: Style, width: int, _name: str | None) -> Described:
    variable = text_field(event, "variable_name", "name") or "?"
    value = short(event.get("value"), width // 2, unicode=style.unicode)
    return Described("variable_change", f"SET {variable} = {value}")


def _loop(event: Event, style: Style, width: int, _name: str | None) -> Described:
    loop = text_field(event, "loop_name") or "loop"
    word = _word(style, "LOOP", always=False)
    total = int_field(event, "iterations")
    if total is not None:
        return Described("loop_iteration", f"{word}{loop}: {total} iterations in all")
    index = int_field(event, "iteration")
    at = f"[{index}]" if index is not None else ""
    if "value" in event:
        value = short(event.get("value"), width // 2, unicode=style.unicode)
        return Described("loop_iteration", f"{word}{loop}{at} = {value}")
    return Described("loop_iteration", f"{word}{loop}{at}")


def _error(event: Event, style: Style, width: int, name: str | None) -> Described:
    error_type = text_field(event, "error_type") or "Error"
    message = event.get("message")
    text = f"ERROR {error_type}: {message}" if isinstance(message, str) and message else (
        f"ERROR {error_type}")
    described = Described("error", style.paint(text, "error"), error=True)
    described.details.extend(error_details(event, style, width, name))
    return described


def error_details(event: Event, style: Style, width: int, name: str | None = None) -> list[str]:
    """``at calculate_tax:16 → <source>`` and the locals that line uses."""
    lines: list[str] = []
    function = text_field(event, "function_name") or name
    lineno = int_field(event, "lineno")
    source = statement_text(event.get("source_line"))
    if lineno is not None or source:
        where = f"{function or '?'}:{lineno}" if lineno is not None else (function or "?")
        arrow = style.glyph("arrow")
        lines.append(f"at {where} {arrow} {source}" if source else f"at {where}")
    local_values = event.get("locals")
    if not isinstance(local_values, Mapping) or not local_values:
        return lines
    used = [n for n in names_in(source) if n in local_values] if source else []
    if not used:
        lines.append("locals: " + format_args(local_values, width, unicode=style.unicode))
        return lines
    for variable in used[:_MAX_LOCALS]:
        value = short(local_values[variable], width, unicode=style.unicode)
        lines.append(f"{variable} = {style.paint(value, 'value')}")
    return lines


def _context(event: Event, style: Style, width: int, _name: str | None) -> Described:
    values = event.get("context")
    if not isinstance(values, Mapping):
        values = {k: v for k, v in event.items() if k not in (*_COMMON, "event_type",
                                                              "timestamp_ns")}
    return Described("context", "CONTEXT " + format_args(values, width, unicode=style.unicode))


def _status(event: Mapping[str, Any]) -> int | None:
    found = int_field(event, "status_code", "status")
    if found is not None:
        return found
    response = event.get("response")
    if isinstance(response, Mapping):
        return int_field(response, "status_code", "status")
    return None


def failure_text(event: Mapping[str, Any]) -> str | None:
    """What an external call's ``error`` / ``error_type`` fields say went wrong, if anything."""
    error = event.get("error")
    error_type = text_field(event, "error_type")
    message = text_field(event, "error_message", "message")
    if isinstance(error, str) and error:
        return f"{error_type}: {error}" if error_type and error_type not in error else error
    if isinstance(error, Mapping):
        inner_type = text_field(error, "type", "error_type") or error_type
        inner_message = text_field(error, "message")
        parts = [part for part in (inner_type, inner_message) if part]
        return ": ".join(parts) if parts else "error"
    if error_type:
        return f"{error_type}: {message}" if message else error_type
    if error is True:
        return message or "error"
    return None


def http_failed(event: Mapping[str, Any]) -> bool:
    """Whether an ``http_call`` failed: an error recorded or a 5xx answer."""
    status = _status(event)
    return failure_text(event) is not None or (status is not None and status >= 500)


def _http(event: Event, style: Style, width: int, _name: str | None) -> Described:
    method = (text_field(event, "method") or "?").upper()
    url = text_field(event, "url") or _joined_url(event) or "?"
    status = _status(event)
    failure = failure_text(event)
    outcome = str(status) if status is not None else (f"error: {failure}" if failure else "?")
    if status is not None and failure:
        outcome = f"{status} ({failure})"
    spent = as_ns(event.get("duration_ns"))
    timing = f" ({duration(spent, unicode=style.unicode)})" if spent is not None else ""
    url_text = url if len(url) <= width else url[:width] + style.glyph("ellipsis")
    arrow = style.glyph("arrow")
    text = f"{_word(style, 'HTTP', False)}{method} {url_text} {arrow} {outcome}{timing}"
    failed = http_failed(event)
    return Described("http_call", style.paint(text, "error") if failed else text, error=failed)


def _joined_url(event: Mapping[str, Any]) -> str | None:
    host = text_field(event, "host")
    path = text_field(event, "path") or ""
    return f"{host}{path}" if host else None


def _db(event: Event, style: Style, width: int, _name: str | None) -> Described:
    statement = text_field(event, "statement", "sql", "query", "operation", "command") or "?"
    statement = " ".join(statement.split())
    if len(statement) > width:
        statement = statement[:width] + style.glyph("ellipsis")
    rows = int_field(event, "rows_fetched")
    if rows is None and isinstance(event.get("rows"), list):
        rows = len(event["rows"])
    if rows is None:
        rows = int_field(event, "rowcount", "row_count", "rows_affected", "rows")
    failure = failure_text(event)
    arrow = style.glyph("arrow")
    if failure:
        outcome = f" {arrow} error: {failure}"
    elif rows is not None and rows >= 0:
        outcome = f" {arrow} {rows} row{'s' if rows != 1 else ''}"
    elif "result" in event:
        outcome = f" {arrow} {short(event.get('result'), width // 2, unicode=style.unicode)}"
    else:
        outcome = ""
    spent = as_ns(event.get("duration_ns"))
    timing = f" ({duration(spent, unicode=style.unicode)})" if spent is not None else ""
    text = f"{_word(style, 'DB', False)}{statement}{outcome}{timing}"
    failed = failure is not None
    return Described("db_call", style.paint(text, "error") if failed else text, error=failed)


def _nondeterminism(event: Event, style: Style, width: int, _name: str | None) -> Described:
    source = text_field(event, "source")
    if source is None:
        return Described("nondeterminism", "NONDETERMINISM " + _fields(event, style, width))
    key = event.get("key")
    where = f"{source}({short(key, 30, unicode=style.unicode)})" if key is not None else source
    value = short(event.get("value"), width // 2, unicode=style.unicode)
    text = f"{_word(style, 'DRAW', False)}{where} {style.glyph('arrow')} {value}"
    return Described("nondeterminism", text)


def _unknown(event: Event, style: Style, width: int, kind: str) -> Described:
    return Described("unknown", f"EVENT {kind}: {_fields(event, style, width)}")


def _fields(event: Event, style: Style, width: int) -> str:
    shown = {k: v for k, v in event.items()
             if k not in (*_COMMON, "event_type", "timestamp_ns")}
    return format_args(shown, width, unicode=style.unicode) or "(no fields)"


def _verbose_details(
    event: Event, style: Style, width: int, tz: _dt.tzinfo | None, kind: str
) -> list[str]:
    lines: list[str] = []
    stamp = event.get("timestamp_ns")
    if stamp is not None:
        lines.append(f"timestamp: {full_timestamp(stamp, tz)}")
    spent = event.get("duration_ns")
    if spent is not None:
        lines.append(f"duration: {duration(spent, unicode=style.unicode)}")
    skip = {"event_type", "timestamp_ns", "duration_ns"}
    if kind == "error":
        skip |= {"error_type", "message", "function_name", "lineno", "source_line"}
    for key, value in event.items():
        if key in skip:
            continue
        if key == "locals" and isinstance(value, Mapping):
            for local, item in value.items():
                lines.append(f"local {local} = {short(item, width * 2, unicode=style.unicode)}")
            continue
        lines.append(f"{key}: {short(value, width * 2, unicode=style.unicode)}")
    return lines


_Handler = Callable[[Event, Style, int, "str | None"], Described]
_HANDLERS: Final[dict[str, _Handler]] = {
    "function_entry": _entry,
    "function_exit": _exit,
    "variable_change": _variable,
    "loop_iteration": _loop,
    "error": _error,
    "context": _context,
    "http_call": _http,
    "db_call": _db,
    "nondeterminism": _nondeterminism,
}
