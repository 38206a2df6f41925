"""Root cause of a recorded error: the failing expression, the values that broke it, and why.

From the error event (type, message, source line, locals, function, line
number) and the call tree around it, name what failed and which recorded
values made it fail (a zero divisor, a None, a missing key, an empty
sequence, an index past the end), the call path that led there, and where a
bad value came from when the trace recorded it. A fix is suggested only when
the recorded values support it; otherwise the text says plainly that the
trace does not tell.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from pytest_replay.format.events import Event
from pytest_replay.model import Root
from pytest_replay.render import explain
from pytest_replay.render.eventtext import int_field, text_field
from pytest_replay.render.provenance import Origin, origins_of
from pytest_replay.render.source import names_in, parse_line, statement_text
from pytest_replay.render.style import Style
from pytest_replay.render.tree import Call, Forest, Source, as_events, build_forest
from pytest_replay.render.values import short

Category = Literal["zero_division", "none_value", "missing_key", "empty_sequence",
                   "index_out_of_range", "undetermined", "no_error"]

_DIVISION_TYPES: Final = frozenset({"ZeroDivisionError", "DivisionByZero", "DivisionUndefined"})
_EMPTY_VALUE: Final = re.compile(r"\b(max|min)\(\) (arg is an empty sequence|iterable "
                                 r"argument is empty)")


@dataclass(frozen=True)
class Culprit:
    """A recorded value that made the line fail: ``discount_count`` was ``0``."""

    expression: str
    value: Any
    recorded: bool = True


@dataclass(frozen=True)
class RootCause:
    """What the trace says about why an error happened, and how sure that is."""

    determined: bool
    category: Category
    summary: str
    error_type: str = ""
    message: str = ""
    function: str | None = None
    lineno: int | None = None
    source: str | None = None
    expression: str | None = None
    call_path: tuple[str, ...] = ()
    culprits: tuple[Culprit, ...] = ()
    origins: tuple[Origin, ...] = ()
    locals: tuple[tuple[str, Any], ...] = ()
    facts: tuple[str, ...] = ()
    suggestion: str | None = None
    reason: str | None = None

    @property
    def location(self) -> str | None:
        """``calculate_tax:16`` (or just the function, or None)."""
        if self.function and self.lineno is not None:
            return f"{self.function}:{self.lineno}"
        return self.function


def choose_error(events: Sequence[Event], source: Source | None = None) -> Event | None:
    """The error a root cause should explain: the one that ended the request.

    For a Root, its incident error; otherwise the last error, or, when the
    same error was recorded at several levels, its innermost recording (the
    one with a source line).
    """
    if isinstance(source, Root):
        incident = source.incident_error
        if incident is not None:
            return _innermost(events, incident.event)
        return None
    errors = [event for event in events if event.get("event_type") == "error"]
    if not errors:
        return None
    return _innermost(events, errors[-1])


def _innermost(events: Sequence[Event], last: Event) -> Event:
    same = [event for event in events if event.get("event_type") == "error"
            and event.get("error_type") == last.get("error_type")
            and event.get("message") == last.get("message")]
    with_source = [event for event in same if event.get("source_line") or event.get("locals")]
    return with_source[0] if with_source else last


def find_root_cause(source: Source, *, error: Event | None = None,
                    forest: Forest | None = None) -> RootCause:
    """Explain the error that ended ``source`` (or ``error``, if given); never raises.

    ``forest``: the call tree of ``source`` if the caller already built it.
    """
    events = forest.events if forest is not None else as_events(source)
    chosen = error if error is not None else choose_error(events, source)
    if chosen is None:
        return RootCause(False, "no_error", "No error was recorded: nothing to explain.")
    forest = forest if forest is not None else build_forest(events)
    error_index = next((i for i, event in enumerate(events) if event is chosen), len(events))
    cid = chosen.get("correlation_id")
    call = forest.calls.get(cid) if isinstance(cid, str) else None
    return _Analysis(chosen, call, events, error_index).run()


class _Analysis:
    def __init__(self, error: Event, call: Call | None, events: Sequence[Event],
                 error_index: int) -> None:
        self.error = error
        self.call = call
        self.events = events
        self.error_index = error_index
        self.error_type = text_field(error, "error_type") or "Error"
        message = error.get("message")
        self.message = message if isinstance(message, str) else ""
        self.function = text_field(error, "function_name") or (call.name if call else None)
        self.lineno = int_field(error, "lineno")
        self.source = statement_text(error.get("source_line")) or None
        local_values = error.get("locals")
        self.locals: Mapping[str, Any] = local_values if isinstance(local_values, Mapping) \
            else {}
        merged = dict(self._arguments())
        merged.update(self.locals)
        self.values = merged

    def _arguments(self) -> Mapping[str, Any]:
        if self.call is None:
            return {}
        args = self.call.entry.get("args")
        return args if isinstance(args, Mapping) else {}

    def call_path(self) -> tuple[str, ...]:
        if self.call is not None:
            return tuple(self.call.path())
        return (self.function,) if self.function else ()

    def run(self) -> RootCause:
        tree = parse_line(self.source)
        finding: explain.Finding | None = None
        if tree is not None:
            finding = self._analyse(tree)
        shown_locals = tuple((name, self.values[name]) for name in names_in(self.source)
                             if name in self.values)
        base: dict[str, Any] = {
            "error_type": self.error_type, "message": self.message,
            "function": self.function, "lineno": self.lineno, "source": self.source,
            "call_path": self.call_path(), "locals": shown_locals,
        }
        if finding is None or not finding.determined:
            reason = self._reason(tree, finding)
            location = f" at {self.function}:{self.lineno}" if self.function and (
                self.lineno is not None) else (f" in {self.function}" if self.function else "")
            headline = f"{self.error_type}: {self.message}" if self.message else self.error_type
            culprits = tuple(explain_culprit(name, value) for name, value in
                             (finding.culprits if finding else []))
            return RootCause(
                False, "undetermined",
                f"Root cause not determined from the trace: {headline}{location}; {reason}",
                expression=finding.expression if finding else None, culprits=culprits,
                reason=reason, **base,
            )
        origins: list[Origin] = []
        for name, value in finding.culprits:
            origins.extend(origins_of(name, value, self.call, self.events, self.error_index,
                                      self.values, finding.related, self.source))
        category: Category = finding.category  # type: ignore[assignment]
        return RootCause(
            True, category, finding.summary or self.error_type,
            expression=finding.expression,
            culprits=tuple(explain_culprit(name, value) for name, value in finding.culprits),
            origins=tuple(origins), facts=tuple(finding.facts),
            suggestion=finding.suggestion, **base,
        )

    def _analyse(self, tree: Any) -> explain.Finding | None:
        resolver = explain.Resolver(self.values)
        kind, message = self.error_type, self.message
        if kind in _DIVISION_TYPES or "by zero" in message:
            return explain.zero_division(tree, resolver, message)
        if kind in ("AttributeError", "TypeError") and "NoneType" in message:
            return explain.none_value(tree, resolver, message)
        if kind == "KeyError":
            return explain.missing_key(tree, resolver, message)
        if kind == "IndexError" or (kind == "ValueError" and _EMPTY_VALUE.search(message)):
            return explain.empty_sequence(tree, resolver, message, kind)
        return None

    def _reason(self, tree: Any, finding: explain.Finding | None) -> str:
        if finding is not None and finding.reason:
            return finding.reason
        if not self.source:
            return "the error event carries no source line"
        if tree is None:
            return "the recorded source line could not be parsed"
        return f"no analysis knows {self.error_type} ({self.message or 'no message'})"


def explain_culprit(name: str, value: Any) -> Culprit:
    """A :class:`Culprit`; ``explain.MISSING`` values are marked as not recorded."""
    if value is explain.MISSING:
        return Culprit(name, None, recorded=False)
    return Culprit(name, value)


def render_root_cause(cause: RootCause, style: Style | None = None, *,
                      width: int = 80) -> str:
    """The seed's ``🐛 Root Cause: ...`` / ``🔧 Suggested Fix: ...`` block."""
    return "\n".join(root_cause_lines(cause, style, width=width))


def root_cause_lines(cause: RootCause, style: Style | None = None, *,
                     width: int = 80) -> list[str]:
    """:func:`render_root_cause` as a list of lines."""
    chosen = style or Style.plain()
    if cause.category == "no_error":
        return [f"{chosen.glyph('bug')}Root Cause: {cause.summary}"]
    role = "error" if cause.determined else "warn"
    if cause.determined:
        lines = [chosen.paint(f"{chosen.glyph('bug')}Root Cause: {cause.summary}", role)]
    else:
        lines = [chosen.paint(f"{chosen.glyph('bug')}{cause.summary}", role)]
    arrow = chosen.glyph("arrow")
    if cause.location and cause.source:
        lines.append(f"   at {cause.location} {arrow} {cause.source}")
    elif cause.location:
        lines.append(f"   at {cause.location}")
    if cause.expression and cause.expression != cause.source:
        lines.append(f"   failing expression: {cause.expression}")
    if len(cause.call_path) > 1:
        lines.append(f"   call path: {chosen.glyph('path').join(cause.call_path)}")
    culprit_names = {culprit.expression for culprit in cause.culprits}
    for name, value in cause.locals:
        if name in culprit_names:
            lines.append(f"   {name} = {short(value, width, unicode=chosen.unicode)}")
    for culprit in cause.culprits:
        if not culprit.recorded:
            lines.append(f"   {culprit.expression}: value not recorded")
    lines.extend(f"   {origin.text}" for origin in cause.origins)
    if cause.suggestion:
        lines.append(chosen.paint(f"{chosen.glyph('wrench')}Suggested Fix: {cause.suggestion}",
                                  "ok"))
    return lines
