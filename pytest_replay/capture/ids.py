"""Correlation ids: unique across threads, tasks and forked workers, and cheap."""

from __future__ import annotations

import itertools
import os
import secrets
from typing import final


@final
class IdSource:
    """Hands out ``<prefix><counter>`` ids; a forked child gets a fresh prefix."""

    __slots__ = ("_counter", "_prefix")

    def __init__(self) -> None:
        self._prefix = ""
        self._counter = itertools.count(1)
        self.reset()

    def reset(self) -> None:
        """New prefix and counter (called after fork so parent and child never collide)."""
        self._prefix = f"f{secrets.token_hex(4)}_"
        self._counter = itertools.count(1)

    def next(self) -> str:
        """A new frame id."""
        return f"{self._prefix}{next(self._counter):x}"


IDS = IdSource()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=IDS.reset)
