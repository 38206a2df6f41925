"""JSONL to a file, appended by a background thread, rotated by size.

Only the writer thread touches the file. Each batch is one ``write(2)`` with
``O_APPEND``, so forked workers appending to the same path do not interleave
lines. A failing disk (full, read-only, gone) drops the batch, counted, and
the next batch reopens the path: when the fault clears, writing resumes by
itself. A batch cut short mid-line is followed by a newline, so one torn line
costs one event and never the next one.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import final

from pytest_replay.capture.buffered import BufferedSink
from pytest_replay.capture.stats import IO_ERROR

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None  # type: ignore[assignment]

_NEWLINE = 10


@final
class FileSink(BufferedSink):
    """Appends JSONL to ``path``; keeps ``backup_count`` rotated files of ``max_bytes`` each.

    ``max_buffer`` lines wait in memory at most; ``flush``/``close`` wait at
    most ``timeout`` seconds for the disk.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_bytes: int = 100 * 1024 * 1024,
        backup_count: int = 5,
        max_buffer: int = 100_000,
        flush_interval: float = 0.2,
        timeout: float = 5.0,
    ) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backup_count = backup_count
        self._fd: int | None = None
        self._identity: tuple[int, int] | None = None
        self._torn = False
        super().__init__(max_buffer=max_buffer, flush_interval=flush_interval, timeout=timeout,
                         thread_name="telemetry-replay-file-sink")

    def __repr__(self) -> str:
        return f"FileSink({str(self.path)!r})"

    def _deliver(self, batch: list[bytes]) -> None:
        data = b"".join(batch)
        try:
            fd = self._ready(len(data))
        except OSError as exc:
            self._close_fd()
            self._failed(len(batch), f"cannot open {self.path}: {exc}", IO_ERROR)
            return
        prefix = b"\n" if self._torn else b""
        payload = prefix + data if prefix else data
        done = 0
        try:
            view = memoryview(payload)
            while done < len(payload):
                done += os.write(fd, view[done:])
        except OSError as exc:
            if done > 0:
                self._torn = payload[done - 1] != _NEWLINE
            complete = data.count(b"\n", 0, max(0, done - len(prefix)))
            self._close_fd()
            self._delivered(complete)
            self._failed(len(batch) - complete, f"cannot write {self.path}: {exc}", IO_ERROR)
            return
        self._torn = False
        self._delivered(len(batch))

    def _ready(self, incoming: int) -> int:
        """An fd for the current file, rotating first if ``incoming`` bytes would overflow it."""
        if self._fd is not None and self._moved():
            self._close_fd()  # rotated or removed behind our back (logrotate, another worker)
        if self._fd is None:
            self._open()
        assert self._fd is not None
        if self.max_bytes > 0:
            size = os.fstat(self._fd).st_size
            if size > 0 and size + incoming > self.max_bytes:
                self._rotate()
        assert self._fd is not None
        return self._fd

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        info = os.fstat(fd)
        identity = (info.st_dev, info.st_ino)
        if identity != self._identity:
            self._torn = False  # a torn line belongs to the file we left
        self._fd = fd
        self._identity = identity

    def _moved(self) -> bool:
        try:
            info = os.stat(self.path)
        except OSError:
            return True
        return (info.st_dev, info.st_ino) != self._identity

    def _rotate(self) -> None:
        """Shift ``path.N`` to ``path.N+1`` and ``path`` to ``path.1``, under a lock.

        The lock is taken on the file being rotated; a worker that waited for it
        finds the path moved and simply reopens, so two workers never rotate twice.
        """
        fd = self._fd
        assert fd is not None
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if not self._moved():
                name = self.path.name
                if self.backup_count > 0:
                    for index in range(self.backup_count - 1, 0, -1):
                        older = self.path.with_name(f"{name}.{index}")
                        if older.exists():
                            older.replace(self.path.with_name(f"{name}.{index + 1}"))
                    self.path.replace(self.path.with_name(f"{name}.1"))
                else:
                    self.path.unlink(missing_ok=True)
        finally:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
            self._close_fd()
        self._open()

    def _close_fd(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):  # closing a broken fd has nothing left to lose
                os.close(fd)

    def _release(self) -> None:
        self._close_fd()

    def _forget_inherited(self) -> None:
        self._close_fd()
        self._torn = False
