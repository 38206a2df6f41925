"""The event vocabulary of trace format v1 (see docs/trace-format.md)."""

from __future__ import annotations

from typing import Any, Final

FORMAT_VERSION: Final = 1

FUNCTION_ENTRY: Final = "function_entry"
FUNCTION_EXIT: Final = "function_exit"
VARIABLE_CHANGE: Final = "variable_change"
LOOP_ITERATION: Final = "loop_iteration"
ERROR: Final = "error"
CONTEXT: Final = "context"
HTTP_CALL: Final = "http_call"
DB_CALL: Final = "db_call"
NONDETERMINISM: Final = "nondeterminism"

KNOWN_EVENT_TYPES: Final = frozenset(
    {
        FUNCTION_ENTRY,
        FUNCTION_EXIT,
        VARIABLE_CHANGE,
        LOOP_ITERATION,
        ERROR,
        CONTEXT,
        HTTP_CALL,
        DB_CALL,
        NONDETERMINISM,
    }
)

# Fields whose type the reader checks; a wrong type is an error naming the field.
STRING_FIELDS: Final = (
    "event_type",
    "correlation_id",
    "parent_correlation_id",
    "trace_id",
    "service",
    "function_name",
    "module",
    "qualname",
    "error_type",
    "message",
    "filename",
    "source_line",
    "variable_name",
    "loop_name",
)
INT_FIELDS: Final = ("timestamp_ns", "lineno", "duration_ns", "iteration", "v")
MAPPING_FIELDS: Final = ("args", "locals", "context")

Event = dict[str, Any]
"""One decoded trace line. Kept as a plain dict: it is what orjson gives, and cheap."""
