"""The call graph of whole logs, kept on disk: which request every call belongs to.

Filters that are not ids (``--error``, ``--since``, ``--user-id``...) must
know, for any line, which request it belongs to. That needs every call's
parent. One pass reads every block: it checks every line's shape cheaply
(one ``"event_type"`` per line) and counts the lines that are not events,
parses the ``function_entry`` lines (one orjson call per block: orjson parses
a line faster than three regular expressions pick fields out of it, and
exactly) and hands the block to the filters' own reading.

Calls go to the ``frames`` table of the run's store, each with the id of its
request's root. Logs are mostly in time order, so a call's parent was
usually met a moment before: a bounded dict of the most recent calls gives
the root at once. The rest (a child written before its parent, a parent
from long ago) are resolved after the pass in SQL, one level per round; a
call whose parent is in no log given is the root of its own request (another
service called it). Calls in a parent cycle belong to no request a filter
can select. Memory holds the recent calls only, whatever the log size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import accumulate, islice
from typing import Final

import orjson

from pytest_replay.extract.problems import Problems
from pytest_replay.extract.scan import Scanner
from pytest_replay.extract.segments import BOM, Segment, iter_segments, position
from pytest_replay.extract.store import Store
from pytest_replay.format.events import FUNCTION_ENTRY

_ENTRY_TEXT: Final = b'"function_entry"'
_EVENT_KEY: Final = b'"event_type"'
_INT64: Final = (-(1 << 63), (1 << 63) - 1)

Visit = Callable[[Segment], None]
"""Reads a block for the filters, once the block's calls are recorded."""


class Frames:
    """Every call of the logs: ``frames(id, cid, parent, pos, stamp, root)``.

    ``id`` follows log order (the order calls were met), so ordering roots by
    id is ordering them by where their entry is.
    """

    def __init__(self, store: Store) -> None:
        self.db = store.db
        # The index on cid is built after the pass: sorting once beats inserting at random.
        self.db.execute("CREATE TABLE frames (id INTEGER PRIMARY KEY, cid TEXT NOT NULL, "
                        "parent TEXT, pos INTEGER NOT NULL, stamp INTEGER, root INTEGER)")
        self.db.execute("CREATE TABLE pending (id INTEGER PRIMARY KEY)")
        self._capacity = max(16, store.budget.recent_frames)
        self._recent: dict[str, int | None] = {}
        """cid -> id of its root (None: not known yet), for the most recent calls."""
        self._rows: list[tuple[int, str, str | None, int, int | None, int | None]] = []
        self._pending: list[tuple[int]] = []
        self._next = 1
        self._forgot = False

    def add(self, cid: str, parent: str | None, where: int, stamp: int | None) -> None:
        """Record one entry (the first entry of an id wins, as in the model)."""
        recent = self._recent
        if cid in recent:
            return
        number = self._next
        self._next += 1
        root: int | None
        if parent is None or parent == cid:
            root = number
        else:
            root = recent.get(parent)
            if root is None:
                self._pending.append((number,))
        recent[cid] = root
        self._rows.append((number, cid, parent, where, stamp, root))
        if len(recent) > self._capacity:
            # Keep the newer half: children follow their parents closely in time.
            self._recent = dict(islice(recent.items(), len(recent) // 2, None))
            self._forgot = True

    def flush(self) -> None:
        """Write the calls met since the last flush."""
        if self._rows:
            self.db.executemany("INSERT INTO frames VALUES (?, ?, ?, ?, ?, ?)", self._rows)
            self._rows = []
        if self._pending:
            self.db.executemany("INSERT INTO pending VALUES (?)", self._pending)
            self._pending = []

    def resolve(self) -> None:
        """Give every call met before its parent (or after it left the recent dict) its root."""
        self.flush()
        self._recent = {}
        db = self.db
        self._index()
        while True:
            db.execute("UPDATE frames SET root = (SELECT p.root FROM frames AS p "
                       "WHERE p.cid = frames.parent) WHERE id IN (SELECT id FROM pending)")
            if self._settle():
                continue
            # No progress: the calls whose parent is in no log are roots themselves.
            db.execute("UPDATE frames SET root = id WHERE id IN (SELECT id FROM pending) "
                       "AND NOT EXISTS (SELECT 1 FROM frames AS p WHERE p.cid = frames.parent)")
            if not self._settle():
                return  # what is left hangs in a parent cycle

    def _index(self) -> None:
        """Index calls by id; an id entered twice keeps its first entry, as in the model.

        The recent dict drops a second entry it still remembers; one that
        comes back after its first left the dict is deleted here. (No
        statement may fail: without a journal, SQLite cannot undo one.)
        """
        db = self.db
        db.execute("CREATE INDEX frames_cid ON frames (cid)")
        if not self._forgot:
            return
        twice = ("SELECT MAX(id) FROM frames GROUP BY cid HAVING COUNT(*) > 1")
        if db.execute(twice + " LIMIT 1").fetchone() is None:
            return
        while db.execute(f"DELETE FROM frames WHERE id IN ({twice})").rowcount:  # noqa: S608
            pass
        # Calls resolved through a later entry of their parent: resolve them again.
        db.execute("UPDATE frames SET root = NULL WHERE root NOT IN (SELECT id FROM frames)")
        db.execute("INSERT OR IGNORE INTO pending SELECT id FROM frames WHERE root IS NULL")

    def _settle(self) -> int:
        cursor = self.db.execute("DELETE FROM pending WHERE NOT EXISTS (SELECT 1 FROM frames "
                                 "AS f WHERE f.id = pending.id AND f.root IS NULL)")
        return cursor.rowcount

    def roots(self) -> Iterator[tuple[int, str, int | None]]:
        """``(id, root cid, start stamp)`` of every request, in log order."""
        yield from self.db.execute("SELECT id, cid, stamp FROM frames WHERE root = id ORDER BY id")


def build(scanner: Scanner, problems: Problems, frames: Frames, visit: Visit | None) -> None:
    """Read every line of every source: calls into ``frames``, each block to ``visit``."""
    scanner.passes += 1
    for index, source in enumerate(scanner.sources):
        reached = 0
        try:
            for segment in iter_segments(source, index, on_long_line=_long(problems)):
                scanner.bytes_read += segment.end - segment.start
                reached = segment.base + segment.end
                _segment(segment, frames, problems)
                if visit is not None:
                    visit(segment)
                frames.flush()
        except scanner.errors as exc:
            problems.add("corrupt", position(index, reached),
                         f"cannot read past this point: {type(exc).__name__}: {exc}")
    scanner.log_bytes = max(scanner.log_bytes, scanner.bytes_read)
    frames.resolve()


def _long(problems: Problems) -> Callable[[int], None]:
    def report(where: int) -> None:
        problems.add("too_long", where)

    return report


def _segment(segment: Segment, frames: Frames, problems: Problems) -> None:
    """Check every line's shape, then parse the entry lines in one orjson call."""
    data, start, end = segment.data, segment.start, segment.end
    lines = data[start:end].split(b"\n")
    if lines and not lines[-1]:
        lines.pop()  # the block ends with a newline
    offsets: list[int] | None = None
    closed = data.count(b"}\n", start, end) + (data[end - 1] == 0x7D)
    if closed != len(lines) or data.count(_EVENT_KEY, start, end) != len(lines):
        # Something is off: one line in this block is no event (or two are on one line).
        offsets = _offsets(lines, segment.position(start))
        for index, line in enumerate(lines):
            raw = line.rstrip(b"\r").removeprefix(BOM)
            if raw.strip() and (raw.count(_EVENT_KEY) != 1 or not raw.startswith(b"{")
                                or not raw.endswith(b"}")):
                problems.parse(raw, offsets[index] + index)
    picked = [index for index, line in enumerate(lines) if _ENTRY_TEXT in line]
    if not picked:
        return
    if offsets is None:
        offsets = _offsets(lines, segment.position(start))
    try:
        events = orjson.loads(b"[" + b",".join([lines[index] for index in picked]) + b"]")
    except orjson.JSONDecodeError:
        events = None
    if type(events) is not list or len(events) != len(picked):
        # Some line is broken (or holds two values): parse them one by one.
        events = [_one(lines[index], offsets[index] + index, problems) for index in picked]
    add = frames.add
    for index, event in zip(picked, events):  # noqa: B905 - same length by construction
        if type(event) is not dict or event.get("event_type") != FUNCTION_ENTRY:
            continue
        cid = event.get("correlation_id")
        if type(cid) is not str:
            continue
        parent, stamp = event.get("parent_correlation_id"), event.get("timestamp_ns")
        add(cid, parent if type(parent) is str else None, offsets[index] + index,
            stamp if type(stamp) is int and _INT64[0] <= stamp <= _INT64[1] else None)


def _offsets(lines: list[bytes], first: int) -> list[int]:
    """Positions of the lines minus their index (add the index: one newline after each)."""
    return list(accumulate(map(len, lines), initial=first))


def _one(raw: bytes, where: int, problems: Problems) -> object:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return problems.parse(raw.rstrip(b"\r").removeprefix(BOM), where)
