"""Every renderer takes arbitrary JSON-shaped events and answers with text, never an exception."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_replay.render import (
    build_distributed,
    build_profile,
    export_bytes,
    find_root_cause,
    render_distributed,
    render_profile,
    render_root_cause,
    render_step,
    render_timeline,
    short,
    steps,
)
from pytest_replay.render.style import Style

KINDS = ["function_entry", "function_exit", "variable_change", "loop_iteration", "error",
         "context", "http_call", "db_call", "nondeterminism", "mystery"]
IDS = st.sampled_from(["a", "b", "c", "", None, 5])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=4),
    max_leaves=12,
)
tagged = st.fixed_dictionaries(
    {"$type": st.sampled_from(["str", "list", "dict", "object", "dataclass", "bytes", "int",
                               "redacted", "enum", "timedelta", "decimal", "weird"])},
    optional={"items": json_values, "class": json_values, "head": json_values,
              "len": json_values, "b64": json_values, "value": json_values,
              "attrs": json_values, "fields": json_values, "truncated": json_values},
)
values = json_values | tagged
event = st.fixed_dictionaries(
    {"event_type": st.sampled_from(KINDS) | st.integers()},
    optional={
        "timestamp_ns": st.integers(min_value=-(2**63), max_value=2**63) | st.text(max_size=3),
        "correlation_id": IDS, "parent_correlation_id": IDS,
        "function_name": st.text(max_size=8) | st.integers(), "args": values,
        "return_value": values, "error": values, "value": values, "locals": values,
        "message": values, "error_type": st.sampled_from(
            ["ZeroDivisionError", "KeyError", "IndexError", "AttributeError", "TypeError",
             "ValueError"]) | values,
        "source_line": st.sampled_from(["a / b", "x = d[k]", "max(s)", "s[0]", "u.name",
                                        "if a % b:", ")(", ""]) | values,
        "lineno": values, "duration_ns": st.integers() | values, "service": IDS,
        "url": values, "status": values, "statement": values, "rows": values,
        "loop_name": values, "iterations": values, "variable_name": values,
    },
)
events = st.lists(event | values, max_size=25)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events)
def test_every_renderer_survives(items: list[Any]) -> None:
    for style in (Style.plain(), Style.fancy()):
        assert isinstance(render_timeline(items, style, verbose=True), str)
        assert isinstance(render_timeline(items, style, summary=True), str)
    assert isinstance(render_root_cause(find_root_cause(items)), str)
    assert isinstance(render_profile(build_profile(items, items)), str)
    assert isinstance(render_distributed(build_distributed([items, items[::-1]])), str)
    for step in steps(items):
        assert isinstance(render_step(step, stack=True), str)
    for fmt in ("perfetto", "speedscope"):
        json.loads(export_bytes(items, fmt))
    assert export_bytes(items, "html").startswith(b"<!DOCTYPE html>")


@settings(max_examples=200, deadline=None)
@given(values)
def test_short_survives(value: Any) -> None:
    text = short(value, 30)
    assert isinstance(text, str) and len(text) <= 60
