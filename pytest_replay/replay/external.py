"""The contract between the replay engine and whatever serves outside calls from a recording.

Each server (HTTP, databases, Redis, the network seal) is a context manager
that the engine enters around one replay. Calls the recording holds are
answered from it; anything else raises :class:`UnrecordedCall` *and* is kept
in :attr:`ServedCalls.unrecorded`, because application code may catch the
exception and the item must fail all the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

CallKind = Literal["http", "database", "redis", "network", "determinism"]


class UnrecordedCall(ConnectionError):
    """An outbound call during replay that the recording does not hold."""

    def __init__(self, kind: CallKind, request: str, detail: str = "") -> None:
        message = f"unrecorded external call: {kind} {request}"
        if detail:
            message = f"{message} ({detail})"
        super().__init__(message)
        self.kind: CallKind = kind
        self.request = request
        self.detail = detail


@dataclass
class ServedCalls:
    """What one server did during one replay: answers given and calls refused."""

    kind: CallKind
    served: int = 0
    unrecorded: list[UnrecordedCall] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    """Recorded calls the replay never made (reported, not a failure by themselves)."""

    def refuse(self, request: str, detail: str = "") -> UnrecordedCall:
        """Record and return the error to raise for a call the recording lacks."""
        error = UnrecordedCall(self.kind, request, detail)
        self.unrecorded.append(error)
        return error
