"""Exports: Chrome trace-event JSON, speedscope, and a self-contained HTML page in Chromium."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pytest_replay.format.events import Event
from pytest_replay.model import Trace
from pytest_replay.render.exports import (
    SPEEDSCOPE_SCHEMA,
    export_bytes,
    to_perfetto,
    to_speedscope,
    write_export,
)
from pytest_replay.render.spans import build_lanes, fill_times
from tests.render.rendersupport import MS, ev

CHROMIUM = "/usr/bin/chromium"


def check_perfetto(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Check the trace-event format rules; return the complete (X) events."""
    assert set(data) >= {"traceEvents"}
    events = data["traceEvents"]
    assert isinstance(events, list) and events
    slices = []
    for event in events:
        assert event["ph"] in {"X", "i", "M"}
        assert isinstance(event["name"], str) and isinstance(event["pid"], int)
        assert isinstance(event["tid"], int)
        if event["ph"] == "X":
            assert event["ts"] >= 0 and event["dur"] >= 0 and isinstance(event["args"], dict)
            slices.append(event)
        if event["ph"] == "i":
            assert event["s"] in {"t", "p", "g"} and event["ts"] >= 0
    # on each thread, slices are sorted and strictly nested (what the importers need)
    by_thread: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for event in slices:
        by_thread.setdefault((event["pid"], event["tid"]), []).append(event)
    for thread in by_thread.values():
        assert [e["ts"] for e in thread] == sorted(e["ts"] for e in thread)
        open_ends: list[float] = []
        for event in thread:
            while open_ends and event["ts"] >= open_ends[-1]:
                open_ends.pop()
            end = event["ts"] + event["dur"]
            if open_ends:
                assert end <= open_ends[-1] + 1e-6, event
            open_ends.append(end)
    json.dumps(data)
    return slices


def check_speedscope(data: dict[str, Any]) -> None:
    """Check the speedscope file-format rules (balanced, ordered, in range)."""
    assert data["$schema"] == SPEEDSCOPE_SCHEMA
    frames = data["shared"]["frames"]
    assert all(isinstance(frame["name"], str) for frame in frames)
    assert data["profiles"]
    for profile in data["profiles"]:
        assert profile["type"] == "evented" and profile["unit"] == "nanoseconds"
        assert isinstance(profile["name"], str)
        assert profile["endValue"] >= profile["startValue"]
        stack: list[int] = []
        last = profile["startValue"]
        for event in profile["events"]:
            assert event["type"] in {"O", "C"}
            assert 0 <= event["frame"] < len(frames)
            assert event["at"] >= last, "at must be non-decreasing"
            assert profile["startValue"] <= event["at"] <= profile["endValue"]
            last = event["at"]
            if event["type"] == "O":
                stack.append(event["frame"])
            else:
                assert stack and stack.pop() == event["frame"], "close must match the open"
        assert stack == []


def test_perfetto_of_the_demo_incident(incident: Trace) -> None:
    data = to_perfetto(incident, name="incident")
    slices = check_perfetto(data)
    assert [s["name"] for s in slices] == ["process_order", "calculate_tax", "active_discounts"]
    assert slices[0]["ts"] == 0 and slices[0]["args"]["error"] is True
    assert slices[2]["args"]["result"] == "[]"
    errors = [e for e in data["traceEvents"] if e["ph"] == "i"]
    assert len(errors) == 1 and errors[0]["name"] == "ERROR ZeroDivisionError: division by zero"
    assert slices[1]["ts"] <= errors[0]["ts"] <= slices[1]["ts"] + slices[1]["dur"]
    names = {e["args"]["name"] for e in data["traceEvents"] if e["ph"] == "M"}
    assert names == {"shop", "process_order[req_abc123]"}


def test_speedscope_of_the_demo_incident(incident: Trace) -> None:
    data = to_speedscope(incident)
    check_speedscope(data)
    frames = [f["name"] for f in data["shared"]["frames"]]
    assert frames == ["process_order (raised)", "calculate_tax (raised)", "active_discounts"]
    assert data["profiles"][0]["name"] == "process_order[req_abc123]"


def messy() -> list[Event]:
    """Overlapping siblings, a child outliving its parent, a missing exit, external calls."""
    return [
        ev("function_entry", 0, function_name="root", correlation_id="r", service="api"),
        ev("function_entry", 1, function_name="a", correlation_id="a", parent_correlation_id="r"),
        ev("function_entry", 2, function_name="b", correlation_id="b", parent_correlation_id="r"),
        ev("http_call", 3, method="GET", url="http://x/y", status=503, duration_ns=50 * MS,
           correlation_id="b"),
        ev("function_exit", 5, function_name="a", correlation_id="a", return_value=1),
        ev("db_call", 6, statement="SELECT 1", rowcount=1, duration_ns=1 * MS,
           correlation_id="b"),
        ev("function_entry", 7, function_name="orphaned", correlation_id="o",
           parent_correlation_id="b"),
        ev("error", 8, error_type="ValueError", message="bad", correlation_id="b"),
        ev("function_exit", 9, function_name="b", correlation_id="b", error=True),
        ev("function_exit", 8.5, function_name="root", correlation_id="r", return_value=None),
        ev("function_entry", 20, function_name="second", correlation_id="s", service="worker"),
        ev("function_exit", 21, function_name="second", correlation_id="s", return_value=2),
        ev("error", 22, error_type="Loose", message="outside any call"),
    ]


def test_messy_input_still_gives_valid_files() -> None:
    perfetto = to_perfetto(messy())
    slices = check_perfetto(perfetto)
    kinds = {s["name"]: s["cat"] for s in slices}
    assert kinds["GET http://x/y → 503 (50 ms)"] == "http"
    assert kinds["SELECT 1 → 1 row (1.0 ms)"] == "db"
    assert next(s for s in slices if s["name"] == "orphaned")["args"]["incomplete"]
    assert {e["args"]["name"] for e in perfetto["traceEvents"] if e["name"] ==
            "process_name"} == {"api", "worker", "trace"}
    check_speedscope(to_speedscope(messy()))


def test_no_timestamps_gets_one_tick_per_event() -> None:
    events = [{"event_type": "function_entry", "function_name": "f", "correlation_id": "f"},
              {"event_type": "function_exit", "function_name": "f", "correlation_id": "f"}]
    assert fill_times(events) == ([0, 1000], True)
    assert build_lanes(events).synthetic_time
    data = to_perfetto(events)
    check_perfetto(data)
    assert "no timestamps" in data["otherData"]["trace_start"]
    check_speedscope(to_speedscope(events))


def test_garbage_never_raises() -> None:
    junk: list[Any] = ["x", 1, None, {"event_type": "function_exit"}, {"timestamp_ns": -5},
                       {"event_type": "function_entry", "correlation_id": "z",
                        "timestamp_ns": 2**70}]
    for fmt in ("perfetto", "speedscope", "html"):
        assert export_bytes(junk, fmt)
    with pytest.raises(ValueError, match="valid: perfetto, speedscope, html"):
        export_bytes([], "svg")  # type: ignore[arg-type]


def test_write_export_files(incident: Trace, tmp_path: Path) -> None:
    for fmt in ("perfetto", "speedscope"):
        path = write_export(incident, tmp_path / f"out.{fmt}.json", fmt)
        json.loads(path.read_bytes())
    page = write_export(incident, tmp_path / "out.html", "html").read_text("utf-8")
    assert page.startswith("<!DOCTYPE html>")
    for forbidden in ("<script", "src=", "href=", "@import", "url("):
        assert forbidden not in page, f"external or active content: {forbidden}"


def test_html_escapes_what_the_trace_says(tmp_path: Path) -> None:
    events = [ev("function_entry", 0, function_name="<script>alert(1)</script>",
                 correlation_id="x", args={"q": "\"><img src=x onerror=alert(1)>"}),
              ev("function_exit", 1, function_name="x", correlation_id="x", return_value=1)]
    page = export_bytes(events, "html").decode("utf-8")
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def chromium_dom(page: Path, tmp_path: Path) -> str:
    """The DOM Chromium builds from ``page`` (headless, no network, throwaway profile)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); the HTML export "
                    "is not checked in a browser here")
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
         page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_html_opens_in_headless_chromium(incident: Trace, tmp_path: Path) -> None:
    page = write_export(incident, tmp_path / "incident.html", "html")
    dom = chromium_dom(page, tmp_path)
    for name in ("process_order", "calculate_tax", "active_discounts"):
        assert name in dom
    assert "ZeroDivisionError: division by zero" in dom
    assert 'class="bar call error"' in dom
    assert "Root Cause: Variable 'discount_count' was 0" in dom
    assert 'class="marker"' in dom


def test_html_of_a_big_trace_caps_bars(tmp_path: Path) -> None:
    events = [ev("function_entry", 0, function_name="batch", correlation_id="r")]
    for i in range(6000):
        events += [ev("function_entry", i * 0.01, function_name="step", correlation_id=f"c{i}",
                      parent_correlation_id="r"),
                   ev("function_exit", i * 0.01 + 0.005, function_name="step",
                      correlation_id=f"c{i}", return_value=i)]
    events.append(ev("function_exit", 100, function_name="batch", correlation_id="r",
                     return_value=None))
    page = export_bytes(events, "html").decode("utf-8")
    assert page.count('class="bar call"') == 5000
    assert "Only the first 5000 bars are drawn." in page
