"""The assert every replay item ends with, so failures go through pytest's assertion machinery.

This module is registered for assertion rewriting by the plugin; the
explanation comes from ``pytest_assertrepr_compare`` in ``plugin.py``.
"""

from __future__ import annotations

from pytest_replay.replay.engine import ReplayResult


class ReplayedBehaviour:
    """What today's code did; equal to the recording when the item passes."""

    __slots__ = ("result",)

    def __init__(self, result: ReplayResult) -> None:
        self.result = result

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RecordedBehaviour) and self.result.passed

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        return f"replay of {self.result.root.name}"


class RecordedBehaviour:
    """What the recording (or the accepted baseline) says should happen."""

    __slots__ = ("result",)

    def __init__(self, result: ReplayResult) -> None:
        self.result = result

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ReplayedBehaviour) and other.result.passed

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        return "its baseline" if self.result.against_baseline else "the recording"



def check(result: ReplayResult) -> None:
    """Fail (through pytest's rewritten assert) unless the replay passed."""
    replayed, recorded = ReplayedBehaviour(result), RecordedBehaviour(result)
    assert replayed == recorded
