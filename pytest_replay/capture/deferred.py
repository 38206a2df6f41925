"""Events whose line is built later, by the sink's writer thread, from facts kept now.

Building an event (redacting headers and bodies, scanning values, encoding)
right after a socket wait runs on cold caches and costs the request tens of
microseconds. A :class:`Pending` keeps only what the application cannot
change any more (immutable values, copies) and the capture settings'
generation; :meth:`Runtime.emit_deferred` queues it in the line's place in a
:class:`~pytest_replay.capture.buffered.BufferedSink`, or builds it at once
for any other sink. Both paths run the same code on the same facts, so the
line's bytes are the same.
"""

from __future__ import annotations

from typing import Any, ClassVar, final

from pytest_replay.capture.runtime import RUNTIME
from pytest_replay.capture.stats import RECONFIGURED, UNENCODABLE, SinkStats


class Pending:
    """One event kept as facts; :meth:`render` builds its line (or counts why not)."""

    __slots__ = ("generation",)

    failure: ClassVar[str] = "event not captured"
    """How a failure to build is described in the drop reason."""
    category: ClassVar[str | None] = UNENCODABLE
    """The ``stats()["dropped_by_reason"]`` key for a failure to build (None: not counted,
    for events whose capture never counted such failures)."""
    unencodable: ClassVar[str] = "unencodable event"
    """How a failure to encode is described (counted as ``unencodable``)."""

    def __init__(self) -> None:
        self.generation = RUNTIME.generation

    def build(self) -> dict[str, Any]:
        """The event dict (may raise: the event is then dropped and counted)."""
        raise NotImplementedError

    def encode(self, event: dict[str, Any]) -> bytes:
        """The event's line, as the immediate path would write it."""
        return RUNTIME.line(event)

    def render(self, stats: SinkStats) -> bytes | None:
        """The finished line, or None with the loss counted on ``stats``.

        The settings that shape a line (service, redaction, caps) must be the
        ones the call was captured under: if they changed in between, the event
        is dropped rather than written under rules it was not captured with.
        """
        if self.generation != RUNTIME.generation:
            stats.drop(1, "capture settings changed before the event was written",
                       RECONFIGURED)
            return None
        try:
            event = self.build()
        except Exception as exc:
            if self.category is not None:
                stats.drop(1, f"{self.failure}: {type(exc).__name__}: {exc}", self.category)
            return None
        try:
            return self.encode(event)
        except Exception as exc:
            stats.drop(1, f"{self.unencodable}: {type(exc).__name__}: {exc}", UNENCODABLE)
            return None


@final
class EventLine(Pending):
    """A finished event dict that holds only immutable values: only its encoding waits."""

    __slots__ = ("event",)

    def __init__(self, event: dict[str, Any]) -> None:
        super().__init__()
        self.event = event

    def build(self) -> dict[str, Any]:
        """The event as it was given."""
        return self.event


IMMUTABLE_SCALARS: frozenset[type] = frozenset({str, int, float, bool, type(None), bytes})
"""Value types a deferred event may hold as they are: nothing can change them later."""
