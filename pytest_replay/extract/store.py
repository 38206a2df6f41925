"""What does not fit the memory budget goes to a temporary SQLite database.

A filter selection must know, for every call in the logs, which request it
belongs to; a 10 GB log records tens of millions of calls. Holding them in
Python objects costs about 160 bytes each, so the call graph, the facts the
filters found, the requests kept and their lines live in one temporary
SQLite database (a file unlinked as soon as it is opened). SQLite's page cache is sized
from the budget, so memory stays flat whatever the log size: past the cache,
pages go to the file (in practice the operating system's page cache).

The budget is ``TELEMETRY_REPLAY_EXTRACT_MEMORY_MB`` (default 64): the
peak memory of one run stays about 40 MB above it at most (the interpreter,
the libraries and one block of log being read).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import Final, final

MEMORY_ENV: Final = "TELEMETRY_REPLAY_EXTRACT_MEMORY_MB"
DEFAULT_MEMORY_MB: Final = 64
MIN_MEMORY_MB: Final = 8


class BudgetError(ValueError):
    """A memory budget that is not a whole number of megabytes."""


@final
@dataclass(frozen=True)
class Budget:
    """How much memory a run may use, split between the structures that grow.

    Each share is a count of items, sized for about a quarter of the budget
    at the bytes per item that structure costs in Python.
    """

    megabytes: int = DEFAULT_MEMORY_MB

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Budget:
        """The budget named by ``TELEMETRY_REPLAY_EXTRACT_MEMORY_MB``, else the default."""
        text = (os.environ if environ is None else environ).get(MEMORY_ENV, "").strip()
        if not text:
            return cls()
        try:
            value = int(text)
        except ValueError:
            raise BudgetError(f"{MEMORY_ENV}={text!r}: not a whole number of megabytes") from None
        return cls(max(MIN_MEMORY_MB, value))

    @property
    def cache_kib(self) -> int:
        """SQLite's page cache: a quarter of the budget."""
        return self.megabytes * 256

    @property
    def recent_frames(self) -> int:
        """Calls kept in a Python dict to resolve their children at once (~200 bytes each)."""
        return self.megabytes * 1024 * 1024 // 4 // 200

    @property
    def listed(self) -> int:
        """Root ids kept in a Python list before the list moves to disk (~100 bytes each)."""
        return self.megabytes * 1024 * 1024 // 8 // 100

    @property
    def matched_frames(self) -> int:
        """Call ids a scan may hold in memory to find their lines (~200 bytes each)."""
        return self.megabytes * 1024 * 1024 // 8 // 200

    @property
    def kept_bytes(self) -> int:
        """Bytes of lines an id selection keeps from its first pass."""
        return self.megabytes * 1024 * 1024 // 8


_PRAGMAS: Final = (
    "PRAGMA journal_mode = OFF",
    "PRAGMA synchronous = OFF",
    "PRAGMA temp_store = FILE",
    "PRAGMA locking_mode = EXCLUSIVE",
)


class Store(AbstractContextManager["Store"]):
    """One run's temporary database.

    Opened with an empty name, SQLite creates it in the temporary directory
    and unlinks it at once: nothing is left behind, even by a killed run.
    """

    def __init__(self, budget: Budget | None = None) -> None:
        self.budget = budget or Budget()
        self.db = sqlite3.connect("", isolation_level=None)
        for pragma in _PRAGMAS:
            self.db.execute(pragma)
        self.db.execute(f"PRAGMA cache_size = -{self.budget.cache_kib}")
        self.db.execute("BEGIN")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Drop the database."""
        self.db.close()


class RootList:
    """Root ids in order: a Python list up to the budget, a table past it."""

    def __init__(self, store: Store, name: str) -> None:
        if not name.isidentifier():
            raise ValueError(f"not a table name: {name!r}")
        self._store = store
        self._table = name
        self._memory: list[str] = []
        self._spilled = 0

    def append(self, root: str) -> None:
        """Add one root at the end."""
        if self._spilled or len(self._memory) >= self._store.budget.listed:
            if not self._spilled:
                self._store.db.execute(
                    f"CREATE TABLE {self._table} (n INTEGER PRIMARY KEY, root TEXT NOT NULL)")
            self._store.db.execute(
                f"INSERT INTO {self._table} (root) VALUES (?)", (root,))  # noqa: S608
            self._spilled += 1
            return
        self._memory.append(root)

    def __len__(self) -> int:
        return len(self._memory) + self._spilled

    def __bool__(self) -> bool:
        return bool(self._memory) or self._spilled > 0

    def __iter__(self) -> Iterator[str]:
        yield from self._memory
        if self._spilled:
            cursor = self._store.db.execute(
                f"SELECT root FROM {self._table} ORDER BY n")  # noqa: S608 - our own name
            for (root,) in cursor:
                yield root
