"""Plain-text explanation of a replay verdict: what pytest and the CLI print on failure."""

from __future__ import annotations

import os
from typing import Any

from pytest_replay.format import events as ev
from pytest_replay.replay.compare import Step
from pytest_replay.replay.describe import describe_event, short_value
from pytest_replay.replay.engine import ReplayResult


def explain(result: ReplayResult, verbosity: int = 0) -> list[str]:
    """Lines explaining ``result``: the headline, where, recorded vs now, context.

    ``verbosity`` 2 (``-vv``) adds both full event lists.
    """
    root = result.root
    lines = [result.message, f"trace: {_shown(root.path)}:{root.line} ({root.name})"]
    if result.against_baseline:
        lines.append("compared against the accepted baseline (--replay-update)")
    if result.status in ("reproduced",) or (result.status == "diverged"
                                           and result.message.startswith("new error")):
        lines.extend(_error_lines(result))
    divergence = result.divergence
    if divergence is not None and result.status == "diverged":
        if not result.message.startswith("first divergent event"):
            lines.append(f"first divergent event #{divergence.index + 1} at {divergence.where}")
        lines.append(f"  recorded{_at(divergence.recorded)}: {_describe(divergence.recorded)}")
        lines.append(f"  now:{' ' * max(0, len(_at(divergence.recorded)) + 4)}"
                     f"{_describe(divergence.replayed)}")
        if divergence.reason:
            lines.append(f"  difference: {divergence.reason}")
        context = divergence.context
        if context:
            lines.append("  matched just before:")
            lines.extend(f"    {step.describe()}" for step in context)
    for note in result.noise:
        lines.append(f"noise: {note}")
    for note in result.details:
        lines.append(f"note: {note}")
    for note in result.not_compared:
        lines.append(f"not compared: {note}")
    if verbosity >= 2:
        lines.append("recorded events:")
        lines.extend(f"  {describe_event(e)}" for e in result.recorded
                     if e.get("event_type") != ev.CONTEXT)
        lines.append("replayed events:")
        lines.extend(f"  {describe_event(e)}" for e in result.replayed
                     if e.get("event_type") != ev.CONTEXT)
    elif result.status != "passed":
        lines.append("(-vv shows every recorded and replayed event)")
    return lines


def _at(step: Step | None) -> str:
    if step is None or step.line is None:
        return ""
    return f" (trace line {step.line})"


def _describe(step: Step | None) -> str:
    return step.describe() if step is not None else "(nothing)"


def _error_lines(result: ReplayResult) -> list[str]:
    error = next((e for e in reversed(result.replayed) if e.get("event_type") == ev.ERROR), None)
    if error is None:
        return []
    lines = []
    where = f"at {error.get('function_name')}:{error.get('lineno')}"
    source = error.get("source_line")
    if isinstance(source, str):
        source = source.split("  #", 1)[0].rstrip()  # an inline comment is not the failure
    lines.append(f"  {where} -> {source}" if source else f"  {where}")
    local_values: Any = error.get("locals")
    if isinstance(local_values, dict) and local_values:
        shown = ", ".join(f"{k} = {short_value(v, 40)}" for k, v in
                          list(local_values.items())[:8])
        lines.append(f"  locals: {shown}")
    return lines


def _shown(path: str) -> str:
    """The trace's path relative to the working directory when it is inside it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive
        return path
    return path if relative.startswith("..") else relative
