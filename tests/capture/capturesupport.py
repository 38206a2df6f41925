"""Helpers of the capture tests: a memory sink read back as events."""

from __future__ import annotations

from typing import Any

import orjson

import pytest_replay as replay


class Captured:
    """The memory sink of one test, read as decoded events."""

    def __init__(self, sink: replay.MemorySink) -> None:
        self.sink = sink

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        """Every event so far (of ``event_type`` if given), in order."""
        decoded = [orjson.loads(line) for line in self.sink.lines]
        return [e for e in decoded if event_type is None or e["event_type"] == event_type]

    def raw(self) -> bytes:
        """Everything written, as one byte string (for "never written" checks)."""
        return b"".join(self.sink.lines)

    def clear(self) -> None:
        """Forget what was captured so far."""
        self.sink.clear()
