"""The event vocabulary of trace format v1 (see docs/trace-format.md)."""

from __future__ import annotations

from typing import Any, Final

FORMAT_VERSION: Final = 1
"""The version this code writes and fully understands (field ``v``; absent means 1)."""

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
# ``null`` is accepted for all of them except ``event_type`` (emitters write
# ``"correlation_id": null`` for events outside any request).
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
    "error_module",
    "message",
    "filename",
    "source_line",
    "variable_name",
    "loop_name",
)
INT_FIELDS: Final = (
    "timestamp_ns",
    "lineno",
    "duration_ns",
    "iteration",
    "iterations",
    "v",
)
BOOL_FIELDS: Final = ("error", "truncated")
MAPPING_FIELDS: Final = ("args", "locals", "context")

_NONE: Final = type(None)
FIELD_TYPES: Final[dict[str, tuple[frozenset[type], str]]] = {
    **{name: (frozenset({str, _NONE}), "a string") for name in STRING_FIELDS},
    **{name: (frozenset({int, _NONE}), "an integer") for name in INT_FIELDS},
    **{name: (frozenset({bool, _NONE}), "true or false") for name in BOOL_FIELDS},
    **{name: (frozenset({dict, _NONE}), "an object") for name in MAPPING_FIELDS},
    "event_type": (frozenset({str}), "a string"),
}
"""Checked field -> (the exact JSON-decoded types allowed, how to say it in an error).

Exact ``type()`` membership, not ``isinstance``: ``true`` is not an integer here.
"""

Event = dict[str, Any]
"""One decoded trace line. Kept as a plain dict: it is what orjson gives, and cheap."""
