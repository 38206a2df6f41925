"""Correlation ids: unique across threads, tasks and forked workers, and cheap."""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import Iterator
from typing import final

from pytest_replay.capture._speedups_loader import SPEEDUPS


@final
class IdSource:
    """Hands out ``f<8 hex>_<counter hex>`` ids; a forked child gets a fresh prefix.

    ``ids`` is an iterator of ready-made ``bytes`` ids, public so the
    ``@traced`` hot path gets one with a single ``next()`` and no method call.
    """

    __slots__ = ("ids", "prefix")

    def __init__(self) -> None:
        self.prefix = ""
        self.ids: Iterator[bytes] = iter(())
        self.reset()

    def reset(self) -> None:
        """New prefix and counter (called after fork so parent and child never collide)."""
        self.prefix = f"f{secrets.token_hex(4)}_"
        prefix = self.prefix.encode("ascii")
        if SPEEDUPS is not None:
            self.ids = SPEEDUPS.Ids(prefix)  # the same ids, made in C: a third of the cost
        else:
            self.ids = map((prefix + b"%x").__mod__, itertools.count(1))

    def next(self) -> str:
        """A new frame id, as ``str``."""
        return next(self.ids).decode("ascii")


IDS = IdSource()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=IDS.reset)
