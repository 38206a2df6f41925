"""One event of a trace, with its line, decoded only when someone asks for it.

The reader checks every line in full, then keeps the bytes of the lines it
checked in bulk (the C reader: the chunk they were read in, and where each
line starts) and copies out only the few fields the model reads (type, ids,
timestamp, error flag). Decoding again on first use of ``.event`` costs
one parse; keeping 200,000 decoded events costs more (their allocation and
the collector walking them) and more than twice the memory.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from pytest_replay.format.events import Event
from pytest_replay.format.lines import decode_accepted

__all__ = ["LineEvent", "forget_decoded"]


class _Fields(NamedTuple):
    line: int
    """The 1-based line of the trace file the event was read from."""
    kind: Any
    """``event_type`` (a string for everything the reader accepts)."""
    correlation_id: Any
    """``correlation_id``, None when absent."""
    parent_id: Any
    """``parent_correlation_id``, None when absent."""
    timestamp_ns: Any
    """``timestamp_ns`` (an int or None for everything the reader accepts)."""
    error: Any
    """The ``error`` field as written (``true`` on an exit that raised), None when absent."""
    source: bytes | Event
    """The event, or the bytes holding its line until it is decoded."""
    decoded: dict[int, Event] | None
    """Where events decoded from bytes are kept (by line), shared by one read."""
    start: int | None
    """Where the line starts in ``source`` when that is a whole chunk of the file (the
    line runs to the next newline); None when ``source`` is the line or the event."""


class LineEvent(_Fields):
    """An event together with where it came from (for reportinfo and errors).

    ``LineEvent(line, event)`` wraps a decoded event; the reader also makes
    them from bytes, and ``.event`` then decodes the line once, on first use.
    The copied fields (``kind`` ...) are what the line said: changing the
    dict later does not change them. Equal when the lines and the events
    are equal; not hashable (the event is a mutable dict).
    """

    __slots__ = ()

    def __new__(cls, line: int, event: Event) -> LineEvent:
        """Wrap an event already decoded."""
        get = event.get
        return tuple.__new__(cls, (
            line, get("event_type"), get("correlation_id"), get("parent_correlation_id"),
            get("timestamp_ns"), get("error"), event, None, None,
        ))

    @property
    def event(self) -> Event:
        """The decoded event (the same dict every time)."""
        source = self.source
        if type(source) is dict:
            return source
        decoded = self.decoded
        assert decoded is not None and isinstance(source, bytes)
        event = decoded.get(self.line)
        if event is None:
            start = self.start
            if start is not None:
                end = source.find(b"\n", start)
                source = source[start:] if end < 0 else source[start:end]
            event = decoded[self.line] = decode_accepted(source)
        return event

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LineEvent):
            return NotImplemented
        return self.line == other.line and self.event == other.event

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = None  # type: ignore[assignment]  # mutable event inside, as before

    def __repr__(self) -> str:
        return f"LineEvent(line={self.line!r}, event={self.event!r})"

    def __getnewargs__(self) -> tuple[int, Event]:
        return self.line, self.event


def forget_decoded(events: Iterable[LineEvent]) -> None:
    """Drop the decoded dicts of ``events`` read as bytes; ``.event`` decodes them again.

    A pytest session keeps every collected trace to the end; the dicts an
    item's replay decoded would stay too, for every full garbage collection
    to walk again. Events made from dicts keep theirs (nothing to decode from).
    """
    for event in events:
        decoded = event.decoded
        if decoded is not None:
            decoded.pop(event.line, None)
