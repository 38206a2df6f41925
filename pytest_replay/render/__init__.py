"""Text and files for people: timeline, root cause, profile, exports, distributed view.

Pure functions from the model (``Root``, ``Trace``) or plain event lists to
text or files. They never raise on bad input: what cannot be read is shown
as such. The CLI and the pytest plugin's failure report call them; the style
(colour and Unicode, or plain ASCII) is chosen once by :func:`choose_style`.
"""

from __future__ import annotations

from pytest_replay.render.distributed import (
    DistributedView,
    build_distributed,
    render_distributed,
)
from pytest_replay.render.exports import (
    EXPORT_FORMATS,
    export_bytes,
    to_html,
    to_perfetto,
    to_speedscope,
    write_export,
)
from pytest_replay.render.profile import Profile, build_profile, render_profile
from pytest_replay.render.rootcause import RootCause, find_root_cause, render_root_cause
from pytest_replay.render.steps import Step, call_stack_lines, render_step, steps
from pytest_replay.render.style import Style, choose_style
from pytest_replay.render.summary import TimelineSummary, render_summary_lines, summarize
from pytest_replay.render.timeline import header_lines, render_timeline, timeline_lines
from pytest_replay.render.values import format_args, short

__all__ = [
    "EXPORT_FORMATS",
    "DistributedView",
    "Profile",
    "RootCause",
    "Step",
    "Style",
    "TimelineSummary",
    "build_distributed",
    "build_profile",
    "call_stack_lines",
    "choose_style",
    "export_bytes",
    "find_root_cause",
    "format_args",
    "header_lines",
    "render_distributed",
    "render_profile",
    "render_root_cause",
    "render_step",
    "render_summary_lines",
    "render_timeline",
    "short",
    "steps",
    "summarize",
    "timeline_lines",
    "to_html",
    "to_perfetto",
    "to_speedscope",
    "write_export",
]
