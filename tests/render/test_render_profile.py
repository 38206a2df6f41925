"""Profile: per-function time from recorded durations, recorded vs replayed, the hottest path."""

from __future__ import annotations

from typing import Any

from pytest_replay.format.events import Event
from pytest_replay.model import Trace
from pytest_replay.render.profile import build_profile, profile_rows, render_profile
from pytest_replay.render.style import Style
from tests.render.rendersupport import MS, ev

S = 1000 * MS


def call(cid: str, name: str, start_ms: float, spent_ms: float | None, parent: str | None = None,
         *, duration: bool = True, **exit_fields: Any) -> list[Event]:
    """Entry and exit of one call; ``spent_ms=None`` leaves the exit out."""
    entry = ev("function_entry", start_ms, function_name=name, correlation_id=cid)
    if parent:
        entry["parent_correlation_id"] = parent
    if spent_ms is None:
        return [entry]
    leave = ev("function_exit", start_ms + spent_ms, function_name=name, correlation_id=cid,
               **exit_fields)
    if duration:
        leave["duration_ns"] = int(spent_ms * MS)
    return [entry, leave]


def slow_request() -> list[Event]:
    """The seed's profile: 5 s in all, shipping 3.2 s, address 1.5 s, tax 0.3 s."""
    events = call("r", "handle", 0, 5000)
    events[1:1] = (call("a", "calculate_shipping", 0, 3200, "r")
                   + call("b", "validate_address", 3200, 1500, "r")
                   + call("c", "calculate_tax", 4700, 300, "r"))
    return events


def test_seed_profile() -> None:
    profile = build_profile(slow_request())
    assert profile.total_ns == 5 * S
    assert [row[0] for row in profile_rows(profile)][:3] == [
        "calculate_shipping", "validate_address", "calculate_tax"]
    assert profile.hot_spot is not None and profile.hot_spot.name == "calculate_shipping"
    lines = render_profile(profile, Style.plain()).splitlines()
    assert lines[0] == "Profiling Results (recorded, 5.0 s in all):"
    assert lines[1] == ("|- calculate_shipping: 3.2 s (64% of time; 3.2 s total, 1 call) "
                        "!! HOT SPOT")
    assert lines[2] == "|- validate_address: 1.5 s (30% of time; 1.5 s total, 1 call)"
    assert lines[3] == "|- calculate_tax: 300 ms (6% of time; 300 ms total, 1 call)"
    assert lines[4] == "`- handle: 0 ns (0% of time; 5.0 s total, 1 call)"
    assert "Hottest path: handle (5.0 s) > calculate_shipping (3.2 s)" in lines
    assert lines[-1] == "Recommendation: Optimize calculate_shipping function"
    fancy = render_profile(profile, Style(unicode=True))
    assert "├─ calculate_shipping: 3.2 s (64% of time; 3.2 s total, 1 call) ⚠️ HOT SPOT" in fancy


def test_recorded_vs_replayed() -> None:
    replayed = call("r", "handle", 0, 1000)
    replayed[1:1] = call("a", "calculate_shipping", 0, 400, "r") + call(
        "b", "validate_address", 400, 500, "r") + call("n", "new_helper", 900, 100, "r")
    profile = build_profile(slow_request(), replayed)
    assert profile.replayed_total_ns == 1 * S
    text = render_profile(profile, Style.plain())
    assert "calculate_shipping: 3.2 s (64% of time; 3.2 s total, 1 call) | replayed 400 ms " \
           "(-88%)" in text
    assert "calculate_tax: 300 ms (6% of time; 300 ms total, 1 call) | not replayed" in text
    assert "new_helper: not in the recording | replayed 100 ms" in text
    assert "replayed 1.0 s" in text.splitlines()[0]


def test_times_from_timestamps_recursion_and_missing_exits() -> None:
    events = call("r", "walk", 0, 100, duration=False)
    events[1:1] = call("r2", "walk", 10, 50, "r", duration=False) + call(
        "x", "never_ends", 70, None, "r")
    profile = build_profile(events)
    walk = next(row for row in profile.functions if row.name == "walk")
    assert walk.calls == 2 and walk.total_ns == 100 * MS  # the inner recursion counted once
    assert walk.self_ns == 100 * MS  # 50 outer self + 50 inner self
    never = next(row for row in profile.functions if row.name == "never_ends")
    assert never.untimed == 1
    assert "1 call(s) have no recorded end" in render_profile(profile)


def test_no_hot_spot_when_time_is_spread() -> None:
    events = call("r", "handle", 0, 100)
    for i in range(5):
        events[1:1] = call(f"c{i}", f"step{i}", i * 20, 20, "r")
    profile = build_profile(events)
    assert profile.hot_spot is None
    assert "HOT SPOT" not in render_profile(profile)
    assert "Recommendation" not in render_profile(profile)


def test_demo_trace_and_empty_input(incident: Trace) -> None:
    profile = build_profile(incident)
    assert {row.name for row in profile.functions} == {
        "process_order", "calculate_tax", "active_discounts"}
    assert profile.functions[0].errors in (0, 1)
    assert render_profile(build_profile([])) == "Profiling Results: no calls recorded."
    assert render_profile(build_profile(["junk", {"event_type": "function_exit",
                                                   "duration_ns": "x"}]))


def test_top_limits_rows() -> None:
    events = call("r", "handle", 0, 1000)
    for i in range(30):
        events[1:1] = call(f"c{i}", f"f{i:02d}", i, 1, "r")
    text = render_profile(build_profile(events), top=5)
    assert "26 more functions" in text
