"""Correlation ids: unique across threads, tasks and forked workers, and cheap."""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import Iterator
from typing import final


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
        template = self.prefix.encode("ascii") + b"%x"
        self.ids = map(template.__mod__, itertools.count(1))

    def next(self) -> str:
        """A new frame id, as ``str``."""
        return next(self.ids).decode("ascii")


IDS = IdSource()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=IDS.reset)
