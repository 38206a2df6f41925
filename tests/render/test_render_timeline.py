"""The execution timeline: the seed's tree from real and hand-made traces, and bad input."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from pytest_replay.format.events import Event
from pytest_replay.model import Trace, load_trace
from pytest_replay.render.style import Style
from pytest_replay.render.summary import summarize
from pytest_replay.render.timeline import render_timeline, timeline_lines
from tests.render.rendersupport import MS, T0, ev, untimed

PLAIN = Style.plain()
FANCY = Style(unicode=True, color=False)


def tree_of(text: str) -> list[str]:
    """The lines after ``Execution Timeline:``, times replaced by ``[T]``."""
    lines = untimed(text).splitlines()
    return lines[lines.index("Execution Timeline:") + 1:]


def test_demo_incident_ascii(incident: Trace) -> None:
    text = render_timeline(incident.roots[0], PLAIN)
    assert text.splitlines()[0].startswith("Replaying incident from ")
    assert "Loading 10 telemetry events..." in text
    assert tree_of(text) == [
        "|- [T] ENTER process_order(order_id=12345, user_id=67890)",
        "|  |- [T] CONTEXT user_id=67890",
        "|  |- [T] CONTEXT environment='production', region='us-west-2'",
        "|  |- [T] SET tax_rate = 0.08",
        "|  |- [T] ENTER calculate_tax(amount=100.0, rate=0.08)",
        "|  |  |- [T] ENTER active_discounts(amount=100.0)",
        "|  |  |- [T] EXIT active_discounts (result=[])",
        "|  |  `- [T] ERROR ZeroDivisionError: division by zero",
        "|  |     at calculate_tax:16 -> discount_amount = sum(discounts) / discount_count",
        "|  |     discounts = []",
        "|  |     discount_count = 0",
        "|  `- [T] EXIT calculate_tax (error=True)",
        "`- [T] EXIT process_order (error=True)",
    ]
    assert text.isascii()


def test_demo_incident_unicode_like_the_seed(incident: Trace) -> None:
    text = render_timeline(incident.roots[0], FANCY)
    assert text.startswith("🎬 Replaying incident from ")
    tree = tree_of(text)
    assert tree[0] == "├─ [T] 📥 ENTER process_order(order_id=12345, user_id=67890)"
    assert "│  ├─ [T] 📝 SET tax_rate = 0.08" in tree
    assert "│  │  ❌ [T] ERROR ZeroDivisionError: division by zero" in tree
    assert ("│  │     at calculate_tax:16 → discount_amount = sum(discounts) / discount_count"
            in tree)
    assert "│  └─ [T] 📤 EXIT calculate_tax (error=True)" in tree
    assert tree[-1] == "└─ [T] 📤 EXIT process_order (error=True)"


def test_healthy_trace_shows_results(healthy: Trace) -> None:
    text = render_timeline(healthy, PLAIN)
    assert text.startswith("Replaying request from ")
    assert "EXIT calculate_tax (result=15.4)" in text
    assert "EXIT active_discounts (result=[5.0, 10.0])" in text


def test_colour_is_ansi_only_when_asked(incident: Trace) -> None:
    assert "\x1b[" in render_timeline(incident, Style.fancy())
    assert "\x1b[" not in render_timeline(incident, FANCY)


def test_the_seeds_own_lines_partial_recording() -> None:
    seed = [
        {"event_type": "function_entry", "timestamp_ns": 1698765432123456789,
         "function_name": "process_order", "args": {"order_id": 12345, "user_id": 67890},
         "correlation_id": "req_abc123"},
        {"event_type": "variable_change", "timestamp_ns": 1698765432123567890,
         "variable_name": "tax_rate", "value": 0.08, "correlation_id": "req_abc123"},
        {"event_type": "function_entry", "timestamp_ns": 1698765432124000000,
         "function_name": "calculate_tax", "args": {"amount": 100.0, "rate": 0.08},
         "parent_correlation_id": "req_abc123", "correlation_id": "func_xyz789"},
        {"event_type": "error", "timestamp_ns": 1698765432124100000,
         "error_type": "ZeroDivisionError", "message": "division by zero",
         "correlation_id": "func_xyz789"},
        {"event_type": "function_exit", "timestamp_ns": 1698765432124200000,
         "function_name": "calculate_tax", "error": True, "correlation_id": "func_xyz789"},
    ]
    text = render_timeline(seed, PLAIN)
    assert "Replaying incident from 2023-10-31 15:17:12.123456789 UTC" in text
    assert tree_of(text) == [
        "|- [T] ENTER process_order(order_id=12345, user_id=67890)",
        "|  |- [T] SET tax_rate = 0.08",
        "|  |- [T] ENTER calculate_tax(amount=100.0, rate=0.08)",
        "|  |  `- [T] ERROR ZeroDivisionError: division by zero",
        "|  `- [T] EXIT calculate_tax (error=True)",
        "`- ... no EXIT recorded for process_order (the call's end is missing)",
    ]


def request(*inner: Event) -> list[Event]:
    """A root call ``handle`` around ``inner`` events (all in the root's frame)."""
    body = [dict(event, correlation_id=event.get("correlation_id", "r")) for event in inner]
    return [ev("function_entry", 0, function_name="handle", correlation_id="r", args={}),
            *body, ev("function_exit", 900, function_name="handle", correlation_id="r",
                      return_value=None)]


def test_loops_are_summarised_unless_verbose() -> None:
    events = request(*(ev("loop_iteration", 1 + i, loop_name="items", iteration=i,
                          value=f"item{i}") for i in range(3)))
    plain = tree_of(render_timeline(events, PLAIN))
    assert "|  `- [T] LOOP items: 3 iterations" in plain
    assert sum("LOOP" in line for line in plain) == 1
    fancy = tree_of(render_timeline(events, FANCY))
    assert "│  └─ [T] 🔁 items: 3 iterations" in fancy
    verbose = tree_of(render_timeline(events, PLAIN, verbose=True))
    assert any("LOOP items[0] = 'item0'" in line for line in verbose)
    assert any("LOOP items[2] = 'item2'" in line for line in verbose)


def test_truncated_loop_counts_all_iterations() -> None:
    events = request(*(ev("loop_iteration", 1, loop_name="rows", iteration=i, value=i)
                       for i in range(100)),
                     ev("loop_iteration", 2, loop_name="rows", iterations=250, truncated=True))
    assert "LOOP rows: 250 iterations (100 recorded)" in render_timeline(events, PLAIN)


def test_external_calls_and_context() -> None:
    events = request(
        ev("context", 1, context={"environment": "production", "region": "us-west-2"}),
        ev("http_call", 2, method="POST", url="https://api.payments/charge", status=200,
           duration_ns=12 * MS, request_headers={}, response_body="{}"),
        ev("db_call", 3, system="postgresql", operation="execute",
           statement="SELECT id\n  FROM orders WHERE user_id = %s", rows=[[1], [2], [3]],
           rowcount=3, duration_ns=2 * MS),
        ev("http_call", 4, method="get", url="https://slow.example/x", duration_ns=5000 * MS,
           error_type="ReadTimeout", error_message="timed out"),
        ev("db_call", 5, system="redis", operation="GET", statement="GET k", result="v"),
    )
    fancy = render_timeline(events, FANCY)
    assert "🧭 CONTEXT environment='production', region='us-west-2'" in fancy
    assert "🌐 POST https://api.payments/charge → 200 (12 ms)" in fancy
    assert "🗄️ SELECT id FROM orders WHERE user_id = %s → 3 rows (2.0 ms)" in fancy
    assert "❌ [14:23:45.127] GET https://slow.example/x → error: ReadTimeout: timed out (5.0 s)" \
        in fancy
    assert "🗄️ GET k → 'v'" in fancy
    plain = render_timeline(events, PLAIN)
    assert "HTTP POST https://api.payments/charge -> 200 (12 ms)" in plain
    assert "DB SELECT id FROM orders WHERE user_id = %s -> 3 rows (2.0 ms)" in plain


def test_unknown_event_types_are_shown_not_dropped() -> None:
    events = request(ev("cache_hit", 1, key="user:1", hit=True),
                     ev("nondeterminism", 2, source="random.random", value=0.5),
                     ev("nondeterminism", 3, source="os.environ.get", key="HOME", value="/r"),
                     ev("nondeterminism", 4, odd="shape"))
    text = render_timeline(events, PLAIN)
    assert "EVENT cache_hit: key='user:1', hit=True" in text
    assert "DRAW random.random -> 0.5" in text
    assert "DRAW os.environ.get('HOME') -> '/r'" in text
    assert "NONDETERMINISM odd='shape'" in text
    assert "🎲 random.random → 0.5" in render_timeline(events, FANCY)
    assert "❔ EVENT cache_hit" in render_timeline(events, FANCY)


def test_verbose_shows_every_field() -> None:
    events = request(ev("variable_change", 1, variable_name="x", value=1, extra_field="kept"))
    text = render_timeline(events, PLAIN, verbose=True)
    assert "extra_field: 'kept'" in text
    assert "timestamp: 2025-10-31 14:23:45.124000000 UTC" in text
    assert "correlation_id: 'r'" in text


def test_time_zone_option() -> None:
    events = request()
    two_hours = dt.timezone(dt.timedelta(hours=2))
    text = render_timeline(events, PLAIN, tz=two_hours)
    assert "[16:23:45.123] ENTER handle()" in text
    assert "from 2025-10-31 16:23:45.123000000 UTC+02:00" in text
    assert "[14:23:45.123] ENTER handle()" in render_timeline(events, PLAIN)


def test_marks_from_a_replay() -> None:
    events = request(ev("variable_change", 1, variable_name="x", value=1))
    text = render_timeline(events, PLAIN, marks={0: "ok", 1: "diverged", 2: "not_compared"},
                           header=False)
    assert text.splitlines() == [
        "|- [ok] [14:23:45.123] ENTER handle()",
        "|  `- [DIFF] [14:23:45.124] SET x = 1",
        "`- [--] [14:23:46.023] EXIT handle (result=None)",
    ]


def test_bad_input_renders_what_it_can() -> None:
    huge = "h" * 1_000_000
    events: list[Any] = [
        {"event_type": "function_entry"},
        {"event_type": "function_exit", "correlation_id": "nobody"},
        "not a dict", 42, None,
        {"no_type": 1},
        {"event_type": 5, "timestamp_ns": "soon"},
        {"event_type": "error"},
        {"event_type": "variable_change", "correlation_id": ["list"], "value": huge},
        {"event_type": "function_entry", "correlation_id": "a", "parent_correlation_id": "b",
         "function_name": "alpha", "args": "not a mapping"},
        {"event_type": "function_entry", "correlation_id": "b", "parent_correlation_id": "a",
         "function_name": "beta", "args": {"x": {"$type": "bogus"}}},
        {"event_type": "function_entry", "correlation_id": "a", "function_name": "again"},
        {"event_type": "http_call", "correlation_id": "b", "status": "200", "url": 5},
        {"event_type": "db_call", "correlation_id": "b", "rows": "many"},
        {"event_type": "loop_iteration", "correlation_id": "b", "iteration": "x"},
        {"event_type": "function_exit", "correlation_id": "b", "timestamp_ns": 2**70},
        {"event_type": "error", "correlation_id": "b", "lineno": "12", "locals": [1, 2],
         "source_line": "x = (", "message": 5},
    ]
    text = render_timeline(events, PLAIN, verbose=True)
    for expected in ["<not an object>", "EVENT ?", "ENTER alpha", "ENTER beta", "ENTER again",
                     "EXIT ?", "SET ?", "no EXIT recorded", "HTTP ? ?", "ERROR Error"]:
        assert expected in text, expected
    assert len(max(text.splitlines(), key=len)) < 1000
    assert render_timeline([], PLAIN).endswith("Execution Timeline:")


def test_deep_nesting_does_not_recurse() -> None:
    depth = 3000
    events = [ev("function_entry", i * 0.001, function_name=f"f{i}", correlation_id=f"c{i}",
                 parent_correlation_id=f"c{i - 1}" if i else None) for i in range(depth)]
    events += [ev("function_exit", 10 + i * 0.001, function_name=f"f{i}",
                  correlation_id=f"c{i}", return_value=i) for i in reversed(range(depth))]
    lines = timeline_lines(events, PLAIN, header=False, max_lines=None)
    assert len(lines) == 2 * depth
    assert any("[depth 41]" in line for line in lines)
    assert max(len(line) for line in lines) < 300


def wide(count: int, error_at: int) -> list[Event]:
    """A root with ``count`` child calls; the call at ``error_at`` raised."""
    events = [ev("function_entry", 0, function_name="batch", correlation_id="root")]
    for i in range(count):
        cid = f"c{i}"
        events.append(ev("function_entry", i, function_name="step", correlation_id=cid,
                         parent_correlation_id="root", args={"i": i}))
        if i == error_at:
            events.append(ev("error", i, correlation_id=cid, error_type="KeyError",
                             message="'sku-9'", source_line="price = PRICES[sku]",
                             lineno=42, function_name="step", locals={"sku": "sku-9"}))
            events.append(ev("function_exit", i, function_name="step", correlation_id=cid,
                             error=True))
        else:
            events.append(ev("function_exit", i, function_name="step", correlation_id=cid,
                             return_value=i))
    events.append(ev("function_exit", count, function_name="batch", correlation_id="root",
                     error=True))
    return events


def test_max_lines_elides_but_keeps_the_error() -> None:
    lines = timeline_lines(wide(5000, 2500), PLAIN, header=False, max_lines=100)
    assert len(lines) < 140
    assert any("ERROR KeyError: 'sku-9'" in line for line in lines)
    assert any("at step:42 -> price = PRICES[sku]" in line for line in lines)
    assert any("sku = 'sku-9'" in line for line in lines)
    assert sum("lines elided" in line for line in lines) >= 2
    assert lines[0].startswith("|- [14:23:45.123] ENTER batch")
    assert lines[-1].startswith("`- ") and "EXIT batch" in lines[-1]
    short_trace = timeline_lines(wide(10, 5), PLAIN, header=False, max_lines=100)
    assert not any("elided" in line for line in short_trace)


def test_huge_trace_gets_the_summary() -> None:
    text = render_timeline(wide(12_000, 11_000), PLAIN)
    assert "Summary of 24,003 events (1 request" in text
    assert "First error path: batch > step" in text
    assert "ERROR KeyError: 'sku-9'" in text and "at step:42 -> price = PRICES[sku]" in text
    assert "called as step(i=11000)" in text
    assert "events elided" in text
    assert "step" in text and "12,000 calls" in text
    assert len(text.splitlines()) < 100
    forced = render_timeline(wide(3, 1), PLAIN, summary=True)
    assert "Summary of 9 events" in forced


def test_summary_streams_with_bounded_state() -> None:
    def stream() -> Iterator[Event]:
        names = itertools.cycle([f"fn{k}" for k in range(10)])
        for i in range(100_000):
            cid = f"c{i}"
            yield ev("function_entry", None, function_name=next(names), correlation_id=cid)
            yield {"event_type": "function_exit", "correlation_id": cid,
                   "timestamp_ns": T0 + i, "duration_ns": 5}

    summary = summarize(stream(), keep=7, max_functions=5)
    assert summary.count == 200_000
    assert len(summary.first) == 7 and len(summary.last) == 7
    assert len(summary.functions) == 6  # five names and "(other functions)"
    assert summary.functions["(other functions)"].calls == 50_000
    assert summary.open_at_end == 0 and summary.roots == 100_000


def test_trace_file_problems_are_listed_and_orphans_shown(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    lines = [orjson.dumps(event) for event in request()]
    lines.insert(1, b"{not json")
    lines.append(orjson.dumps(ev("variable_change", 950, variable_name="late", value=1,
                                 correlation_id="gone")))
    path.write_bytes(b"\n".join(lines) + b"\n")
    text = render_timeline(load_trace(path), PLAIN)
    assert "2 problems in the trace file:" in text
    assert f"{path}:2:2: not valid JSON" in text
    assert "`- [14:23:46.073] SET late = 1" in text
