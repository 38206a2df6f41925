"""Where logs come from: files, directories, globs or stdin, plain, gzip or zstd.

Every source is a file on disk so it can be read more than once (extraction
makes a few passes): stdin is spooled to a temporary file first.
Compression is recognised by content, not by name.
"""

from __future__ import annotations

import glob
import gzip
import importlib
import os
import shutil
import tempfile
import zlib
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final, Literal, cast

Compression = Literal["none", "gzip", "zstd"]

GZIP_MAGIC: Final = b"\x1f\x8b"
ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
LOG_SUFFIXES: Final = (".jsonl", ".ndjson", ".log", ".gz", ".zst")
STDIN_NAME: Final = "<stdin>"
_GLOB_CHARS: Final = frozenset("*?[")
_COPY_CHUNK: Final = 1024 * 1024


class InputError(Exception):
    """An input that cannot be used (missing, unreadable, needs a missing package)."""


@dataclass(frozen=True)
class Source:
    """One log to scan: its file on disk, the name to show, and how it is compressed."""

    path: Path
    name: str
    compression: Compression
    size: int

    def open(self) -> IO[bytes]:
        """A binary stream of the decompressed content; the caller closes it."""
        raw = open(self.path, "rb")  # noqa: SIM115 - wrapped and returned
        if self.compression == "gzip":
            return cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb"))
        if self.compression == "zstd":
            return _zstd_reader(raw, self.name)
        return raw

    @property
    def seekable(self) -> bool:
        """Whether a pass may start in the middle (plain files only)."""
        return self.compression == "none"


def _zstd_reader(raw: IO[bytes], name: str) -> IO[bytes]:
    try:
        zstandard: Any = importlib.import_module("zstandard")
    except ImportError:
        raw.close()
        raise InputError(f"{name}: is zstd-compressed; reading it needs the 'zstandard' package "
                         "(pip install zstandard)") from None
    reader: IO[bytes] = zstandard.ZstdDecompressor().stream_reader(
        raw, read_across_frames=True, closefd=True
    )
    return reader


def sniff(path: Path) -> Compression:
    """The compression of ``path``, from its first bytes."""
    with open(path, "rb") as stream:
        head = stream.read(4)
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head == ZSTD_MAGIC:
        return "zstd"
    return "none"


def stream_errors() -> tuple[type[BaseException], ...]:
    """Exceptions a corrupt compressed stream raises while being read."""
    errors: list[type[BaseException]] = [OSError, EOFError, zlib.error]
    try:
        import zstandard
    except ImportError:
        return tuple(errors)
    errors.append(zstandard.ZstdError)
    return tuple(errors)


class Sources(AbstractContextManager["Sources"]):
    """The resolved inputs of one run; removes the stdin spool on exit."""

    def __init__(self) -> None:
        self.items: list[Source] = []
        self._spools: list[Path] = []

    def __iter__(self) -> Iterator[Source]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def add_file(self, path: Path, name: str | None = None) -> None:
        """Add one file, refusing what cannot be read."""
        try:
            size = path.stat().st_size
            compression = sniff(path)
        except OSError as exc:
            raise InputError(f"{name or path}: cannot read: {exc.strerror or exc}") from None
        self.items.append(Source(path, name or str(path), compression, size))

    def add_stdin(self, stream: IO[bytes], spool_dir: str | None = None) -> None:
        """Copy ``stream`` to a temporary file, so it can be read in several passes."""
        handle, name = tempfile.mkstemp(prefix="extract-traces-stdin-", dir=spool_dir)
        path = Path(name)
        self._spools.append(path)
        with os.fdopen(handle, "wb") as spool:
            shutil.copyfileobj(stream, spool, _COPY_CHUNK)
        self.add_file(path, STDIN_NAME)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for path in self._spools:
            path.unlink(missing_ok=True)
        self._spools.clear()

    def total_size(self) -> int:
        """Bytes on disk over all sources (compressed size for compressed ones)."""
        return sum(source.size for source in self.items)


def resolve(arguments: Sequence[str], stdin: IO[bytes] | None, sources: Sources) -> None:
    """Fill ``sources`` from command-line arguments ("-" is stdin), in argument order.

    Directories are searched recursively for log-like names, sorted; an
    argument that is not a path but holds glob characters is expanded.
    """
    for argument in arguments:
        if argument == "-":
            if stdin is None:
                raise InputError("'-' given but there is no standard input")
            sources.add_stdin(stdin)
            continue
        path = Path(argument)
        if path.is_dir():
            found = sorted(_log_files(path))
            if not found:
                raise InputError(f"{argument}: no log files in this directory "
                                 f"(looked for {', '.join('*' + s for s in LOG_SUFFIXES)})")
            for item in found:
                sources.add_file(item)
        elif path.exists() or not _GLOB_CHARS.intersection(argument):
            sources.add_file(path, argument)
        else:
            matches = sorted(glob.glob(argument, recursive=True))
            files = [Path(match) for match in matches if Path(match).is_file()]
            if not files:
                raise InputError(f"{argument}: no file matches this pattern")
            for item in files:
                sources.add_file(item)


def _log_files(directory: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for name in files:
            if name.endswith(LOG_SUFFIXES) or ".log." in name or ".jsonl." in name:
                yield Path(root) / name
