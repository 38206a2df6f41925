"""``--replay-update``: when baselines may be written, writing them, and orphans."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_replay.replay import baseline

if TYPE_CHECKING:
    import pytest

    from pytest_replay.plugin import ReplaySession


def partial_reason(session: pytest.Session, state: ReplaySession) -> str | None:
    """Why this run does not cover every trace (so updating would be wrong), if it does not."""
    option = session.config.option
    if getattr(option, "keyword", ""):
        return f"-k {option.keyword!r} selects only some items"
    if getattr(option, "markexpr", ""):
        return f"-m {option.markexpr!r} selects only some items"
    if getattr(option, "lf", False):
        return "--lf runs only the last failures"
    if state.deselected:
        return f"{state.deselected} items were deselected"
    if session.shouldstop or session.shouldfail:
        return "the run stopped early"
    return None


def apply_update(session: pytest.Session, state: ReplaySession) -> list[str]:
    """Write the collected baselines, or refuse and say why. Returns notes for the summary."""
    reason = partial_reason(session, state)
    if reason is None and state.errors:
        reason = f"{state.errors} item(s) errored"
    if reason is not None:
        return [f"--replay-update refused: {reason}; no baseline was written"]
    notes: list[str] = []
    written = 0
    root = session.config.rootpath
    for nodeid, payload in sorted(state.baselines.items()):
        trace_part, _, root_name = nodeid.partition("::")
        if not payload:
            notes.append(f"not updated: {nodeid} (the incident still reproduces, or it cannot "
                         "be replayed: fix it first)")
            continue
        ref = baseline.BaselineRef(root / trace_part, root_name)
        baseline.write(ref, payload.encode("utf-8"))
        written += 1
    removed = 0
    for orphan in state.orphans:
        if orphan.is_dir():
            shutil.rmtree(orphan)
        else:
            orphan.unlink(missing_ok=True)
        removed += 1
    state.orphans = []
    notes.insert(0, f"--replay-update: wrote {written} baseline(s)"
                 + (f", removed {removed} orphaned" if removed else ""))
    return notes


def find_orphans(rootdir: Path, paths: Iterable[str]) -> list[Path]:
    """Baselines whose trace file or recorded root no longer exists."""
    from pytest_replay.model import load_trace

    orphans: list[Path] = []
    roots_by_trace: dict[Path, set[str]] = {}
    for relative in paths:
        directory = rootdir / relative
        if not directory.is_dir():
            continue
        for ref in baseline.existing([directory]):
            if not ref.trace.is_file():
                orphans.append(ref.path)
                continue
            if ref.trace not in roots_by_trace:
                roots_by_trace[ref.trace] = {r.name for r in load_trace(ref.trace).roots}
            if ref.path.stem not in {baseline.BaselineRef(ref.trace, n).path.stem
                                     for n in roots_by_trace[ref.trace]}:
                orphans.append(ref.path)
    return orphans


def summary_lines(state: ReplaySession) -> list[str]:
    """The terminal summary: one line per notable verdict, update notes, orphans."""
    lines = []
    written = any(note.startswith("--replay-update: wrote") for note in state.update_notes)
    for nodeid, status, message in state.verdicts:
        if status == "passed":
            continue
        label = "ACCEPTED" if written and state.baselines.get(nodeid) else status.upper()
        lines.append(f"{label:<15} {nodeid}: {message}")
    for nodeid, noise in state.noise:
        lines.append(f"{'NOISE':<15} {nodeid}: {noise}")
    lines.extend(state.update_notes)
    for orphan in state.orphans:
        lines.append(f"orphaned baseline: {orphan} (its trace or root is gone; "
                     "--replay-update on a full run removes it)")
    return lines
