"""Results still being fetched: each is written once, when it is finished.

A ``SELECT``'s event waits here, keyed by its cursor, while the application
fetches; it is emitted when the rows run out, when the cursor is closed or
executes again, or when the cursor is garbage (a weak reference says so).
Real cursors and replay's served cursors go through the same rules, so the
replayed stream has its events in the recorded order.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any, Final, final

from pytest_replay.capture.db_record import Call, capture_failed


class _CursorRef(weakref.ref):  # type: ignore[type-arg]
    """A weak reference to a cursor that remembers the cursor's id (the table key)."""

    __slots__ = ("key",)
    key: int


@final
class OpenResults:
    """Calls whose rows are still being fetched, by cursor.

    Each is emitted once: when the rows run out, when the cursor is closed or
    executes again, or when the cursor is garbage (a weak reference says so).
    Real cursors and replay's served cursors go through the same rules, so
    both emit at the same moments.
    """

    __slots__ = ("_open",)

    def __init__(self) -> None:
        self._open: dict[int, tuple[Call, _CursorRef]] = {}

    @property
    def held(self) -> dict[int, tuple[Call, _CursorRef]]:
        """The table itself, for wrappers that check it on every call (no method call)."""
        return self._open

    def __bool__(self) -> bool:
        return bool(self._open)

    def __len__(self) -> int:
        return len(self._open)

    def hold(self, cursor: Any, call: Call) -> None:
        """Keep ``call`` open until ``cursor``'s result is finished."""
        key = id(cursor)
        try:
            ref = _CursorRef(cursor, self._gone)
            ref.key = key
        except TypeError:  # a cursor that takes no weak references: write what we have now
            call.finish(False)
            return
        previous = self._open.get(key)
        self._open[key] = (call, ref)
        if previous is not None:
            previous[0].finish(False)

    def get(self, cursor: Any) -> Call | None:
        """The open call of ``cursor``, if any."""
        entry = self._open.get(id(cursor))
        return None if entry is None else entry[0]

    def release(self, cursor: Any, exhausted: bool = False) -> None:
        """``cursor``'s result is finished (closed, executed again, or run out)."""
        entry = self._open.pop(id(cursor), None)
        if entry is not None:
            entry[0].finish(exhausted)

    def release_all(self) -> None:
        """Finish every open result as it stands (a replay ends)."""
        while self._open:
            _key, (call, _ref) = self._open.popitem()
            call.finish(False)

    def _gone(self, ref: _CursorRef) -> None:
        entry = self._open.pop(ref.key, None)
        if entry is not None:
            entry[0].finish(False)

    # -- what each fetch method saw (same rules for real and served cursors) ------------

    def end(self, cursor: Any, call: Call) -> None:
        """Iteration over ``call``'s rows ran out."""
        entry = self._open.get(id(cursor))
        if entry is not None and entry[0] is call:
            self.release(cursor, True)

    def one(self, cursor: Any, call: Call, row: Any) -> None:
        """``fetchone()`` returned ``row`` (None at the end)."""
        if not call.open:
            return
        try:
            if row is not None:
                call.add(row)
                if not call.reached_expected():
                    return
        except Exception as exc:
            capture_failed(exc)
        self.release(cursor, True)

    def many(self, cursor: Any, call: Call, rows: Iterable[Any]) -> None:
        """``fetchmany()`` returned ``rows`` (none at the end)."""
        if not call.open:
            return
        try:
            empty = True
            for row in rows:
                empty = False
                call.add(row)
            if not (empty or call.reached_expected()):
                return
        except Exception as exc:
            capture_failed(exc)
        self.release(cursor, True)

    def all(self, cursor: Any, call: Call, rows: Iterable[Any]) -> None:
        """``fetchall()`` returned ``rows``: the result is exhausted."""
        if not call.open:
            return
        try:
            for row in rows:
                call.add(row)
        except Exception as exc:
            capture_failed(exc)
        self.release(cursor, True)

    def row(self, cursor: Any, call: Call, row: Any) -> None:
        """Iteration produced ``row``."""
        if not call.open:
            return
        try:
            call.add(row)
            if not call.reached_expected():
                return
        except Exception as exc:
            capture_failed(exc)
        self.release(cursor, True)


OPEN: Final = OpenResults()
