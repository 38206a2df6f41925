"""Redact one trace event: everything users put in, nothing the call tree hangs on.

Structural fields stay as they are, so ids still link frames and the tree is
intact: event type, ids, names of what was called, timestamps, durations,
line numbers, the source line (it is code, not data). Everything else
(arguments, locals, variables, context, return values, messages, recorded
HTTP and database calls) goes through :class:`Redactor`.
"""

from __future__ import annotations

from typing import Any, Final

from pytest_replay.format.events import LOOP_ITERATION, NONDETERMINISM, VARIABLE_CHANGE
from pytest_replay.redaction.redactor import Redactor

STRUCTURAL_FIELDS: Final = frozenset({
    "event_type", "timestamp_ns", "correlation_id", "parent_correlation_id", "trace_id",
    "service", "function_name", "module", "qualname", "v", "duration_ns", "lineno",
    "filename", "source_line", "error_type", "error_module", "variable_name", "loop_name",
    "iteration", "iterations", "truncated",
})
"""Top-level fields never redacted."""


def redact_event(event: dict[str, Any], redactor: Redactor) -> dict[str, Any]:
    """A copy of ``event`` with personal data replaced by tokens (the input is not changed).

    A variable's value is judged under the variable's name, so
    ``variable("password", ...)`` is redacted like a ``password`` key; a loop
    value under the loop's name; an environment read under the variable name.
    """
    kind = event.get("event_type")
    named = None
    if kind == VARIABLE_CHANGE:
        named = event.get("variable_name")
    elif kind == LOOP_ITERATION:
        named = event.get("loop_name")
    elif kind == NONDETERMINISM:
        named = event.get("key")  # os.environ.get("DB_PASSWORD") records key and value
    out: dict[str, Any] = {}
    for key, value in event.items():
        if key in STRUCTURAL_FIELDS:
            out[key] = value
        elif key == "value" and isinstance(named, str):
            out[key] = redactor.value(value, named)
        else:
            out[redactor.text(key)] = redactor.value(value, key)
    return out
