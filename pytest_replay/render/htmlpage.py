"""The HTML export: one file, no external resources, readable without a server.

Each request is a block of rows, one row per call depth; each call is a bar
placed and sized by its time (percentages of the request's span), with its
arguments and outcome in the tooltip. Calls that raised and error markers
are red. Below: the text timeline and the root cause. Everything from the
trace is escaped; the page has no script.
"""

from __future__ import annotations

import datetime as _dt
import html
from typing import Final

from pytest_replay.render.rootcause import find_root_cause, root_cause_lines
from pytest_replay.render.spans import Lane, Span, build_lanes, walk
from pytest_replay.render.style import Style
from pytest_replay.render.timeline import timeline_lines
from pytest_replay.render.tree import Source, as_events, build_forest
from pytest_replay.render.units import UTC, duration, full_timestamp

MAX_BARS: Final = 5_000
_ROW: Final = 22
_TEXT: Final = Style(unicode=True, color=False, emoji=False)

_CSS: Final = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; background: #fff; }
h1 { font-size: 1.3em; margin: 0 0 .3em; }
h2 { font-size: 1.05em; margin: 1.4em 0 .4em; }
.meta { color: #555; margin-bottom: 1em; }
.lane { margin: .8em 0 1.4em; }
.lane-title { font-weight: 600; margin-bottom: .3em; }
.track { position: relative; border: 1px solid #ddd; background: #fafafa; overflow: hidden; }
.bar { position: absolute; height: 20px; box-sizing: border-box; overflow: hidden;
       white-space: nowrap; text-overflow: ellipsis; font-size: 12px; line-height: 20px;
       padding: 0 4px; border: 1px solid #4a78c2; background: #cfe0fb; min-width: 2px; }
.bar.http { background: #d8f0d2; border-color: #4f9a45; }
.bar.db { background: #f3e3c6; border-color: #b7862c; }
.bar.error { background: #f8c9c9; border-color: #c62828; color: #7a0000; font-weight: 600; }
.marker { position: absolute; width: 3px; height: 20px; background: #c62828; }
.error-banner { border-left: 4px solid #c62828; background: #fdecea; padding: .5em .8em; }
pre { background: #f6f6f6; padding: .8em; overflow-x: auto; font-size: 12.5px; }
.note { color: #777; font-style: italic; }
"""


def render_html(source: Source, *, title: str | None = None,
                tz: _dt.tzinfo | None = UTC) -> str:
    """The whole page as a string."""
    events = as_events(source)
    forest = build_forest(events)
    timeline = build_lanes(forest)
    cause = find_root_cause(source, forest=forest)
    heading = title or "telemetry-replay trace"
    calls = len(forest.all_calls())
    errors = sum(1 for event in events if event.get("event_type") == "error")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(heading)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{_e(heading)}</h1>",
        f'<div class="meta">{len(events)} events, {calls} calls, {errors} error(s); '
        f"starts {_e(full_timestamp(timeline.origin, tz))}</div>",
    ]
    if cause.category != "no_error":
        text = "\n".join(root_cause_lines(cause, _TEXT))
        parts.append(f'<div class="error-banner" id="root-cause"><pre>{_e(text)}</pre></div>')
    parts.append("<h2>Calls over time</h2>")
    budget = MAX_BARS
    for lane in timeline.lanes:
        drawn, budget = _lane(lane, budget)
        parts.append(drawn)
    if budget <= 0:
        parts.append(f'<p class="note">Only the first {MAX_BARS} bars are drawn.</p>')
    text = "\n".join(timeline_lines(events, _TEXT, tz=tz, header=False, max_lines=2_000))
    parts.extend(["<h2>Timeline</h2>", f'<pre id="timeline">{_e(text)}</pre>',
                  "</body></html>"])
    return "\n".join(parts)


def _lane(lane: Lane, budget: int) -> tuple[str, int]:
    start, end = lane.start, lane.end
    if start is None or end is None:
        return "", budget
    width = max(1, end - start)
    spans = walk(lane.spans)
    depth = max((span.depth for span in spans), default=0)
    height = (depth + 1) * _ROW + 4
    service = f" ({_e(lane.service)})" if lane.service else ""
    parts = [f'<div class="lane"><div class="lane-title">{_e(lane.name)}{service} '
             f"{_e(duration(end - start))}</div>",
             f'<div class="track" style="height:{height}px">']
    for span in spans:
        if budget <= 0:
            break
        budget -= 1
        parts.append(_bar(span, start, width))
    for instant in lane.instants:
        left = 100.0 * (instant.at - start) / width
        tip = instant.name + ("\n" + str(instant.args.get("details")) if instant.args else "")
        parts.append(f'<div class="marker" style="left:{left:.4f}%;top:{instant.depth * _ROW}px"'
                     f' title="{_e(tip)}"></div>')
    parts.append("</div></div>")
    return "\n".join(parts), budget


def _bar(span: Span, start: int, width: int) -> str:
    left = 100.0 * (span.start - start) / width
    size = 100.0 * span.duration / width
    classes = " ".join(["bar", span.kind] + (["error"] if span.error else []))
    lines = [span.name, duration(span.duration)]
    lines.extend(f"{key}: {value}" for key, value in span.args.items())
    label = f"{span.name} ✗" if span.error else span.name
    return (f'<div class="{classes}" style="left:{left:.4f}%;width:{size:.4f}%;'
            f'top:{span.depth * _ROW}px" title="{_e(chr(10).join(lines))}">{_e(label)}</div>')


def _e(text: str) -> str:
    return html.escape(text, quote=True)
