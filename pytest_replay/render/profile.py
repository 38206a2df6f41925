"""Where the time went: per-function time from recorded durations, recorded vs replayed.

Each call's time is its exit's ``duration_ns`` (else exit minus entry
timestamps). A function's *total* counts a recursive call once (the outermost
one); its *self* time is total minus the time of the calls it made. Shares
and the HOT SPOT are by self time, which is what optimising a function
saves; the hottest path follows the most inclusive time from a root down.
Replayed numbers come from the replay's own event list, where external calls
are served from the recording, so they measure today's code, not the network.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from pytest_replay.render.style import Style
from pytest_replay.render.tree import Call, Forest, Source, as_events, build_forest, gc_paused
from pytest_replay.render.units import duration, percent

HOT_SPOT_SHARE: Final = 0.25


@dataclass
class FunctionTime:
    """One function's calls and time, recorded and (optionally) replayed."""

    name: str
    calls: int = 0
    total_ns: int = 0
    self_ns: int = 0
    errors: int = 0
    untimed: int = 0
    replayed_calls: int = 0
    replayed_total_ns: int = 0
    replayed_self_ns: int = 0


@dataclass
class Profile:
    """Per-function times, sorted by self time, and the hottest path."""

    functions: list[FunctionTime]
    total_ns: int
    hottest_path: list[tuple[str, int]] = field(default_factory=list)
    replayed_total_ns: int | None = None
    untimed_calls: int = 0

    @property
    def hot_spot(self) -> FunctionTime | None:
        """The function with the most self time, if it holds at least a quarter of it all."""
        if not self.functions or self.total_ns <= 0:
            return None
        top = self.functions[0]
        return top if top.self_ns >= HOT_SPOT_SHARE * self.total_ns and top.self_ns > 0 else None


@dataclass
class _Times:
    calls: dict[str, FunctionTime]
    total_ns: int
    paths: dict[tuple[str, ...], int]
    untimed: int


def build_profile(recorded: Source, replayed: Source | None = None) -> Profile:
    """Profile ``recorded`` (a Root, a Trace or an event list), beside ``replayed`` if given."""
    mine = _times(recorded)
    functions = mine.calls
    replayed_total: int | None = None
    if replayed is not None:
        theirs = _times(replayed)
        replayed_total = theirs.total_ns
        for name, other in theirs.calls.items():
            row = functions.setdefault(name, FunctionTime(name))
            row.replayed_calls = other.calls
            row.replayed_total_ns = other.total_ns
            row.replayed_self_ns = other.self_ns
    rows = sorted(functions.values(), key=lambda row: (-row.self_ns, -row.total_ns, row.name))
    return Profile(rows, mine.total_ns, _hottest(mine.paths), replayed_total, mine.untimed)


def _times(source: Source) -> _Times:
    forest = build_forest(as_events(source))
    with gc_paused(len(forest.events)):
        return _timed(forest)


def _timed(forest: Forest) -> _Times:
    calls: dict[str, FunctionTime] = {}
    paths: dict[tuple[str, ...], int] = {}
    untimed = 0
    total = 0
    for root in forest.roots:
        spent = root.duration_ns
        if spent is not None:
            total += spent
        untimed += _walk(root, calls, paths)
    return _Times(calls, total, paths, untimed)


def _walk(root: Call, calls: dict[str, FunctionTime], paths: dict[tuple[str, ...], int]) -> int:
    """Add one root's calls; return how many had no time. Iterative: deep traces are fine."""
    untimed = 0
    active: dict[str, int] = {}
    stack: list[tuple[Call, tuple[str, ...], bool]] = [(root, (root.name,), False)]
    while stack:
        call, path, leaving = stack.pop()
        name = call.name
        if leaving:
            active[name] -= 1
            continue
        row = calls.setdefault(name, FunctionTime(name))
        row.calls += 1
        row.errors += 1 if call.raised else 0
        spent = call.duration_ns
        children = call.children()
        if spent is None:
            untimed += 1
            row.untimed += 1
        else:
            if active.get(name, 0) == 0:
                row.total_ns += spent
            inner = sum(child.duration_ns or 0 for child in children)
            row.self_ns += max(0, spent - inner)
            paths[path] = paths.get(path, 0) + spent
        active[name] = active.get(name, 0) + 1
        stack.append((call, path, True))
        for child in reversed(children):
            stack.append((child, (*path, child.name)[-64:], False))
    return untimed


def _hottest(paths: dict[tuple[str, ...], int]) -> list[tuple[str, int]]:
    if not paths:
        return []
    children: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
    for path in paths:
        children.setdefault(path[:-1], []).append(path)
    out: list[tuple[str, int]] = []
    current: tuple[str, ...] = ()
    while current in children and len(out) < 64:
        best = max(children[current], key=lambda path: (paths[path], path))
        out.append((best[-1], paths[best]))
        current = best
    return out


def _with_calls(row: FunctionTime, unicode: bool) -> str:
    calls = f"{row.calls} call{'s' if row.calls != 1 else ''}"
    total = duration(row.total_ns, unicode=unicode)
    return f"{total} total, {calls}"


def render_profile(profile: Profile, style: Style | None = None, *, top: int = 15) -> str:
    """The seed's ``Profiling Results`` block, with the hottest path and a recommendation."""
    return "\n".join(profile_lines(profile, style, top=top))


def profile_lines(profile: Profile, style: Style | None = None, *, top: int = 15) -> list[str]:
    """:func:`render_profile` as a list of lines."""
    chosen = style or Style.plain()
    unicode = chosen.unicode
    if not profile.functions:
        return [f"{chosen.glyph('stopwatch')}Profiling Results: no calls recorded."]
    total = duration(profile.total_ns, unicode=unicode)
    title = f"{chosen.glyph('stopwatch')}Profiling Results (recorded, {total} in all"
    if profile.replayed_total_ns is not None:
        title += f"; replayed {duration(profile.replayed_total_ns, unicode=unicode)}"
    lines = [chosen.paint(title + "):", "header")]
    hot = profile.hot_spot
    shown = profile.functions[:top]
    for position, row in enumerate(shown):
        last = position == len(shown) - 1 and len(profile.functions) <= top
        connector = chosen.glyph("last") if last else chosen.glyph("branch")
        share = percent(row.self_ns, profile.total_ns)
        text = (f"{row.name}: {duration(row.self_ns, unicode=unicode)} "
                f"({share} of time; {_with_calls(row, unicode)})")
        if row.calls == 0 and row.replayed_calls:
            text = f"{row.name}: not in the recording"
        if profile.replayed_total_ns is not None:
            text += " | " + _replayed(row, unicode)
        if row.untimed:
            text += f" [{row.untimed} without a recorded end]"
        if hot is row:
            text = chosen.paint(f"{text} {chosen.glyph('warning')}HOT SPOT", "warn")
        lines.append(connector + text)
    if len(profile.functions) > top:
        rest = profile.functions[top:]
        share = percent(sum(row.self_ns for row in rest), profile.total_ns)
        lines.append(f"{chosen.glyph('last')}{chosen.glyph('ellipsis')} {len(rest)} more "
                     f"functions ({share} of time)")
    if profile.hottest_path:
        steps = chosen.glyph("path").join(
            f"{name} ({duration(spent, unicode=unicode)})" for name, spent in
            profile.hottest_path)
        lines.extend(["", f"{chosen.glyph('fire')}Hottest path: {steps}"])
    if profile.untimed_calls:
        lines.append(f"{profile.untimed_calls} call(s) have no recorded end and are not timed.")
    if hot is not None:
        lines.append(f"{chosen.glyph('bulb')}Recommendation: Optimize {hot.name} function")
    return lines


def _replayed(row: FunctionTime, unicode: bool) -> str:
    if row.replayed_calls == 0:
        return "not replayed"
    replayed = duration(row.replayed_self_ns, unicode=unicode)
    if row.self_ns > 0:
        change = 100.0 * (row.replayed_self_ns - row.self_ns) / row.self_ns
        return f"replayed {replayed} ({change:+.0f}%)"
    return f"replayed {replayed}"


def profile_rows(profile: Profile) -> Iterable[tuple[str, int, int, int]]:
    """``(name, calls, self_ns, total_ns)`` rows, for tools that tabulate."""
    for row in profile.functions:
        yield row.name, row.calls, row.self_ns, row.total_ns
