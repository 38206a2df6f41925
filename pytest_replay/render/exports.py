"""Export a trace for visual tools: Perfetto / chrome://tracing, speedscope, one HTML file.

* ``perfetto``: the Chrome trace-event JSON format (``{"traceEvents": [...]}``)
  with one complete (``"ph": "X"``) event per call, times in microseconds,
  one process per service and one thread per request, errors as instant
  (``"ph": "i"``) events. Perfetto's UI and ``chrome://tracing`` open it.
* ``speedscope``: the evented profile format of
  https://www.speedscope.app/file-format-schema.json, one profile per request,
  balanced open/close events in nanoseconds.
* ``html``: one self-contained page (no external resources) with the calls as
  nested bars, the error highlighted, the text timeline and the root cause.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, Literal

import orjson

from pytest_replay import __version__
from pytest_replay.format.writer import write_atomic
from pytest_replay.render.spans import Lane, Span, Timeline, build_lanes, walk
from pytest_replay.render.tree import Source, gc_paused
from pytest_replay.render.units import UTC, full_timestamp

ExportFormat = Literal["perfetto", "speedscope", "html"]
EXPORT_FORMATS: Final[tuple[ExportFormat, ...]] = ("perfetto", "speedscope", "html")
SPEEDSCOPE_SCHEMA: Final = "https://www.speedscope.app/file-format-schema.json"
EXPORTER: Final = f"telemetry-replay {__version__}"


def _us(ns: int) -> float:
    return round(ns / 1_000, 3)


def to_perfetto(source: Source | Timeline, *, name: str | None = None) -> dict[str, Any]:
    """The trace as Chrome trace-event JSON (a dict ready for ``json.dumps``)."""
    timeline = source if isinstance(source, Timeline) else build_lanes(source)
    origin = timeline.origin
    pids: dict[str, int] = {}
    metadata: list[dict[str, Any]] = []
    slices: list[dict[str, Any]] = []
    instants: list[dict[str, Any]] = []
    tids: dict[int, int] = {}
    for lane in timeline.lanes:
        service = lane.service or "trace"
        if service not in pids:
            pid = pids[service] = len(pids) + 1
            metadata.append({"ph": "M", "name": "process_name", "pid": pid, "tid": 0,
                             "args": {"name": service}})
        pid = pids[service]
        tid = tids[pid] = tids.get(pid, 0) + 1
        metadata.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid,
                         "args": {"name": lane.name}})
        for span in walk(lane.spans):
            args = dict(span.args)
            if span.error:
                args["error"] = True
            slices.append({"ph": "X", "name": span.name, "cat": span.kind,
                           "ts": _us(span.start - origin), "dur": _us(span.duration),
                           "pid": pid, "tid": tid, "args": args})
        for instant in lane.instants:
            instants.append({"ph": "i", "s": "t", "name": instant.name, "cat": "error",
                             "ts": _us(instant.at - origin), "pid": pid, "tid": tid,
                             "args": instant.args})
    slices.sort(key=lambda event: (event["pid"], event["tid"], event["ts"], -event["dur"]))
    return {
        "traceEvents": metadata + slices + instants,
        "displayTimeUnit": "ms",
        "otherData": {
            "exporter": EXPORTER,
            "name": name or "telemetry-replay trace",
            "trace_start": full_timestamp(origin, UTC) if not timeline.synthetic_time
            else "no timestamps recorded (one tick per event)",
        },
    }


def to_speedscope(source: Source | Timeline, *, name: str | None = None) -> dict[str, Any]:
    """The trace as a speedscope file (evented profiles, nanoseconds)."""
    timeline = source if isinstance(source, Timeline) else build_lanes(source)
    origin = timeline.origin
    frames: list[dict[str, Any]] = []
    frame_index: dict[tuple[str, str | None], int] = {}

    def frame(span: Span) -> int:
        label = f"{span.name} (raised)" if span.error and span.kind == "call" else span.name
        module = span.args.get("module") if isinstance(span.args.get("module"), str) else None
        key = (label, module)
        index = frame_index.get(key)
        if index is None:
            index = frame_index[key] = len(frames)
            entry: dict[str, Any] = {"name": label}
            if module:
                entry["file"] = module
            frames.append(entry)
        return index

    profiles = [_evented(lane, origin, frame) for lane in timeline.lanes if lane.spans]
    return {
        "$schema": SPEEDSCOPE_SCHEMA,
        "version": "0.0.1",
        "shared": {"frames": frames},
        "profiles": profiles,
        "name": name or "telemetry-replay trace",
        "activeProfileIndex": 0,
        "exporter": EXPORTER,
    }


def _evented(lane: Lane, origin: int, frame: Callable[[Span], int]) -> dict[str, Any]:
    events: list[dict[str, Any]] = []
    stack: list[tuple[Span, bool]] = [(span, False) for span in reversed(lane.spans)]
    while stack:
        span, closing = stack.pop()
        if closing:
            events.append({"type": "C", "frame": frame(span), "at": span.end - origin})
            continue
        events.append({"type": "O", "frame": frame(span), "at": span.start - origin})
        stack.append((span, True))
        stack.extend((child, False) for child in reversed(span.children))
    start = (lane.start or origin) - origin
    end = (lane.end or origin) - origin
    return {"type": "evented", "name": lane.name, "unit": "nanoseconds",
            "startValue": start, "endValue": max(start, end), "events": events}


def to_html(source: Source, *, title: str | None = None,
            tz: _dt.tzinfo | None = UTC) -> str:
    """One self-contained HTML page: nested bars, the error highlighted, timeline, root cause."""
    from pytest_replay.render.htmlpage import render_html

    return render_html(source, title=title, tz=tz)


def export_bytes(source: Source, fmt: ExportFormat, *, name: str | None = None) -> bytes:
    """The export of ``source`` in ``fmt`` as bytes (UTF-8)."""
    with gc_paused(None):
        if fmt == "perfetto":
            return orjson.dumps(to_perfetto(source, name=name))
        if fmt == "speedscope":
            return orjson.dumps(to_speedscope(source, name=name))
        if fmt == "html":
            return to_html(source, title=name).encode("utf-8")
    valid = ", ".join(EXPORT_FORMATS)
    raise ValueError(f"unknown export format {fmt!r} (valid: {valid})")


def write_export(source: Source, path: str | Path, fmt: ExportFormat, *,
                 name: str | None = None) -> Path:
    """Write the export atomically to ``path``; return the path."""
    target = Path(path)
    write_atomic(target, [export_bytes(source, fmt, name=name)])
    return target
