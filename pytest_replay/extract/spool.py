"""Selected lines parked on disk, grouped by request, so memory holds none of them.

Scans find a request's lines in log order but interleaved with other
requests, and a later pass may find earlier lines; the spool takes them as
they come (each line once: a line is keyed by its position) and gives them
back request by request, in log order. It is a table of the run's
:class:`~pytest_replay.extract.store.Store`, so a selection of millions of
lines costs disk, not memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from pytest_replay.extract.store import Store


class Spool:
    """The lines of the selected requests: ``(position, request, raw line)``."""

    def __init__(self, store: Store) -> None:
        self._db = store.db
        self._db.execute("CREATE TABLE spool (pos INTEGER PRIMARY KEY, req TEXT NOT NULL, "
                         "raw BLOB NOT NULL)")
        self._indexed = False

    def add(self, request: str, position: int, raw: bytes) -> bool:
        """Park one line of ``request``; False if that line was parked already."""
        cursor = self._db.execute("INSERT OR IGNORE INTO spool VALUES (?, ?, ?)",
                                  (position, request, raw))
        return cursor.rowcount == 1

    def add_many(self, rows: Iterable[tuple[int, str, bytes]]) -> None:
        """Park ``(position, request, raw)`` lines; those parked already are ignored."""
        self._db.executemany("INSERT OR IGNORE INTO spool VALUES (?, ?, ?)", rows)

    def __contains__(self, position: object) -> bool:
        if not isinstance(position, int):
            return False
        row = self._db.execute("SELECT 1 FROM spool WHERE pos = ?", (position,)).fetchone()
        return row is not None

    def _index(self) -> None:
        if not self._indexed:
            # Built once the scans are done: cheaper than keeping it up to date line by line.
            self._db.execute("CREATE INDEX IF NOT EXISTS spool_req ON spool (req, pos)")
            self._indexed = True

    def holds(self, request: str) -> bool:
        """Whether any line of ``request`` was parked."""
        self._index()
        row = self._db.execute("SELECT 1 FROM spool WHERE req = ? LIMIT 1", (request,))
        return row.fetchone() is not None

    @property
    def line_count(self) -> int:
        """Lines parked so far."""
        count: int = self._db.execute("SELECT COUNT(*) FROM spool").fetchone()[0]
        return count

    def first_position(self, request: str) -> int:
        """The position of the request's first line in the logs."""
        self._index()
        row = self._db.execute("SELECT MIN(pos) FROM spool WHERE req = ?", (request,)).fetchone()
        if row is None or row[0] is None:
            raise KeyError(request)
        first: int = row[0]
        return first

    def lines(self, request: str) -> Iterator[tuple[int, bytes]]:
        """``(position, raw line)`` of one request, in log order."""
        self._index()
        cursor = self._db.execute("SELECT pos, raw FROM spool WHERE req = ? ORDER BY pos",
                                  (request,))
        for position, raw in cursor:
            yield position, bytes(raw)
