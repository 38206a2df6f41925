"""Which call and which request an event belongs to: frames, scopes, context variables.

A frame is a plain tuple ``(cid_b, trace)`` because one is made per traced
call; ids are kept already escaped for JSON, so the hot path pastes them into
lines without encoding them again. Context variables give each thread and
each asyncio task its own stack.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Final, final

import orjson


def json_string(text: str) -> bytes:
    """``text`` as the inside of a JSON string literal (escaped, without the quotes)."""
    return orjson.dumps(text)[1:-1]


@final
class TraceRef:
    """The request (trace) a frame belongs to, encoded once per request."""

    __slots__ = ("field", "trace_id")

    def __init__(self, trace_id: str) -> None:
        self.trace_id = trace_id
        self.field = b',"trace_id":"' + json_string(trace_id) + b'"'


FrameState = tuple[bytes | None, TraceRef | None]
"""The call events belong to right now: ``(cid_b, trace)``; ``cid_b`` None means "not sampled".

A plain tuple, because one is made per traced call: ``cid_b`` is the id
already escaped for JSON, so lines are built without encoding it again, and
the ``str`` form is derived only when asked for (:func:`frame_id`).
"""


def frame_id(frame: FrameState) -> str | None:
    """The ``str`` correlation id of ``frame`` (None when not sampled)."""
    cid_b = frame[0]
    if cid_b is None:
        return None
    if b"\\" in cid_b:
        text: str = orjson.loads(b'"' + cid_b + b'"')
        return text
    return cid_b.decode("utf-8")


@final
class Scope:
    """One request: its id, its trace, and whether it is sampled."""

    __slots__ = ("parent_correlation_id", "parent_ref", "request_id", "roots", "sampled",
                 "trace", "trace_id")

    def __init__(self, request_id: str, trace_id: str, sampled: bool,
                 parent_correlation_id: str | None) -> None:
        self.request_id = request_id
        self.trace_id = trace_id
        self.sampled = sampled
        self.parent_correlation_id = parent_correlation_id
        self.trace = TraceRef(trace_id)
        self.parent_ref = (b',"parent_correlation_id":"' + json_string(parent_correlation_id)
                           + b'"' if parent_correlation_id else b"")
        self.roots = 0

    def take_root_id(self) -> str:
        """The request id for the first top-level call, then ``<id>.2``, ``<id>.3``..."""
        self.roots += 1
        return self.request_id if self.roots == 1 else f"{self.request_id}.{self.roots}"


CURRENT_FRAME: ContextVar[FrameState | None] = ContextVar("replay_frame", default=None)
CURRENT_SCOPE: ContextVar[Scope | None] = ContextVar("replay_scope", default=None)
UNSAMPLED: Final[FrameState] = (None, None)
