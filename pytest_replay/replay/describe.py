"""Short human descriptions of events and encoded values, for divergence reports."""

from __future__ import annotations

from typing import Any

import orjson

from pytest_replay.format import events as ev
from pytest_replay.format.values import TAG


def short_value(value: Any, limit: int = 120) -> str:
    """An encoded value as a short Python-like text (``0.08``, ``'abc'``, ``Order(...)``)."""
    text = _render(value, limit)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _render(value: Any, limit: int) -> str:
    if isinstance(value, dict):
        tag = value.get(TAG)
        if tag is None:
            inner = ", ".join(f"{k!r}: {_render(v, limit)}" for k, v in list(value.items())[:8])
            more = ", ..." if len(value) > 8 else ""
            return "{" + inner + more + "}"
        return _render_tagged(str(tag), value, limit)
    if isinstance(value, list):
        inner = ", ".join(_render(v, limit) for v in value[:8])
        return "[" + inner + (", ..." if len(value) > 8 else "") + "]"
    if isinstance(value, str):
        return repr(value if len(value) <= limit else value[:limit] + "...")
    return repr(value)


def _render_tagged(tag: str, value: dict[str, Any], limit: int) -> str:
    if tag == "redacted":
        return "<redacted>"
    if tag in ("datetime", "date", "time", "decimal", "uuid", "int", "float"):
        return f"{tag}({value.get('value')})"
    if tag in ("tuple", "set", "frozenset", "list"):
        items = value.get("items", [])
        inner = ", ".join(_render(v, limit) for v in items[:8]) if isinstance(items, list) else ""
        suffix = f", ... {value.get('len')} in all" if value.get("truncated") else ""
        return f"{tag}([{inner}{suffix}])"
    if tag in ("object", "dataclass"):
        name = str(value.get("class", "?")).rsplit(":", 1)[-1]
        attrs = value.get("attrs") or value.get("fields") or {}
        if isinstance(attrs, dict):
            inner = ", ".join(f"{k}={_render(v, limit)}" for k, v in list(attrs.items())[:6])
            return f"{name}({inner})"
        return f"{name}(...)"
    if tag == "str":
        return repr(str(value.get("head", ""))[:limit]) + f"... ({value.get('len')} chars)"
    if tag == "exception":
        return f"{str(value.get('class', '?')).rsplit(':', 1)[-1]}({value.get('message')!r})"
    return orjson.dumps(value).decode()


def describe_event(event: dict[str, Any]) -> str:
    """``ENTER calculate_tax(amount=100.0, rate=0.08)``-style one-liner for any event."""
    kind = event.get("event_type")
    name = event.get("function_name") or event.get("qualname") or "?"
    if kind == ev.FUNCTION_ENTRY:
        args = event.get("args") or {}
        inner = ", ".join(f"{k}={short_value(v, 40)}" for k, v in args.items()) if isinstance(
            args, dict) else ""
        return f"ENTER {name}({inner})"
    if kind == ev.FUNCTION_EXIT:
        if event.get("error"):
            what = event.get("error_type") or "error"
            return f"EXIT {name} raised {what}: {event.get('message', '')}".rstrip(": ")
        if "return_value" in event:
            return f"EXIT {name} -> {short_value(event.get('return_value'), 60)}"
        return f"EXIT {name}"
    if kind == ev.VARIABLE_CHANGE:
        return f"SET {event.get('variable_name')} = {short_value(event.get('value'), 60)}"
    if kind == ev.LOOP_ITERATION:
        return (f"LOOP {event.get('loop_name')} #{event.get('iteration')} = "
                f"{short_value(event.get('value'), 40)}")
    if kind == ev.ERROR:
        where = f" in {event['function_name']}" if event.get("function_name") else ""
        line = f" at line {event['lineno']}" if event.get("lineno") else ""
        return f"ERROR {event.get('error_type')}: {event.get('message', '')}{where}{line}"
    if kind == ev.HTTP_CALL:
        return f"HTTP {event.get('method')} {event.get('url')} -> {event.get('status')}"
    if kind == ev.DB_CALL:
        return f"DB {event.get('system', '')} {short_value(event.get('statement'), 60)}"
    return f"{kind} event"
