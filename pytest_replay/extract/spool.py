"""Selected lines parked on disk, grouped by request, so memory holds only offsets.

Scans find a request's lines in log order but interleaved with other
requests, and a later pass may find earlier lines; the spool takes them as
they come (each line once) and gives them back request by request, in log
order.
"""

from __future__ import annotations

import tempfile
from array import array
from collections.abc import Iterator
from contextlib import AbstractContextManager
from types import TracebackType
from typing import IO


class Spool(AbstractContextManager["Spool"]):
    """A temporary file of lines plus, per request, where each of its lines sits."""

    def __init__(self, directory: str | None = None) -> None:
        self._file: IO[bytes] = tempfile.TemporaryFile(  # noqa: SIM115 - closed in __exit__
            prefix="extract-traces-", dir=directory
        )
        self._size = 0
        self._seen: set[int] = set()
        self._index: dict[str, int] = {}
        self.keys: list[str] = []
        self._request = array("q")
        self._position = array("q")
        self._offset = array("q")
        self._grouped: dict[int, list[int]] | None = None
        self._moved = False  # reading moved the file position away from the end

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._file.close()

    def __contains__(self, position: object) -> bool:
        return position in self._seen

    def add(self, request: str, position: int, raw: bytes) -> bool:
        """Park one line of ``request``; False if that line was parked already."""
        if position in self._seen:
            return False
        self._seen.add(position)
        number = self._index.get(request)
        if number is None:
            number = self._index[request] = len(self.keys)
            self.keys.append(request)
        if self._moved:
            self._file.seek(self._size)
            self._moved = False
        self._file.write(raw)
        self._file.write(b"\n")
        self._request.append(number)
        self._position.append(position)
        self._offset.append(self._size)
        self._size += len(raw) + 1
        self._grouped = None
        return True

    def holds(self, request: str) -> bool:
        """Whether any line of ``request`` was parked."""
        return request in self._index

    @property
    def line_count(self) -> int:
        """Lines parked so far."""
        return len(self._position)

    def first_position(self, request: str) -> int:
        """The position of the request's first line in the logs."""
        return min(self._position[i] for i in self._groups()[self._index[request]])

    def lines(self, request: str) -> Iterator[tuple[int, bytes]]:
        """``(position, raw line)`` of one request, in log order."""
        number = self._index.get(request)
        if number is None:
            return
        self._file.flush()
        self._moved = True
        for item in self._groups()[number]:
            start = self._offset[item]
            end = self._offset[item + 1] if item + 1 < len(self._offset) else self._size
            self._file.seek(start)
            yield self._position[item], self._file.read(end - start - 1)

    def _groups(self) -> dict[int, list[int]]:
        if self._grouped is None:
            grouped: dict[int, list[int]] = {}
            for item, number in enumerate(self._request):
                grouped.setdefault(number, []).append(item)
            for items in grouped.values():
                items.sort(key=self._position.__getitem__)
            self._grouped = grouped
        return self._grouped
