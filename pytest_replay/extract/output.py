"""Write the selected requests: to stdout, to one file, or one file per request.

Files are written to a temporary file beside the target and renamed into
place, so a run that is killed leaves the old file or the new one, never half
of one. Requests are written one after the other, each in log order.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final

import orjson

from pytest_replay.extract.spool import Spool
from pytest_replay.format.reader import TraceFormatError, parse_line
from pytest_replay.format.writer import dumps_event, write_atomic
from pytest_replay.redaction import Redactor, redact_event

_UNSAFE: Final = re.compile(r"[^A-Za-z0-9._-]+")
MAX_NAME: Final = 120
LISTED: Final = 20
"""Requests whose record is kept for the summary; past that, counts only (memory stays flat)."""


class OutputError(Exception):
    """An output that cannot be written as asked (a file in the way, a bad directory)."""


@dataclass
class Written:
    """One request as written: its root id, how many events, and which file."""

    root: str
    events: int = 0
    path: Path | None = None


@dataclass
class Render:
    """Turns a request's spooled lines into output bytes, redacting when asked."""

    spool: Spool
    redactor: Redactor | None
    written: list[Written] = field(default_factory=list)
    """The first :data:`LISTED` requests written."""
    requests: int = 0
    events: int = 0

    def request(self, root: str, path: Path | None = None) -> Iterator[bytes]:
        """Output lines of one request (the counts are kept as it goes)."""
        record = Written(root, 0, path)
        self.requests += 1
        if len(self.written) < LISTED:
            self.written.append(record)
        redactor = self.redactor
        for _position, raw in self.spool.lines(root):
            record.events += 1
            self.events += 1
            if redactor is None:
                yield raw + b"\n"
                continue
            try:
                event = parse_line(raw, "<spool>", 0)
            except TraceFormatError:  # pragma: no cover - the scan parsed it already
                record.events -= 1
                self.events -= 1
                continue
            yield _dumps(redact_event(event, redactor))

    def requests_of(self, roots: Iterable[str]) -> Iterator[bytes]:
        """Output lines of several requests, one after the other."""
        for root in roots:
            yield from self.request(root)


def _dumps(event: dict[str, object]) -> bytes:
    try:
        return dumps_event(event)
    except TypeError:  # integers past 64 bits: the standard library writes them exactly
        return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
    except orjson.JSONEncodeError:  # pragma: no cover - same cause, other orjson versions
        return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def to_stream(stream: IO[bytes], roots: Iterable[str], render: Render) -> None:
    """Write to an open stream (stdout); nothing to rename."""
    for chunk in render.requests_of(roots):
        stream.write(chunk)
    stream.flush()


def to_file(path: Path, roots: Iterable[str], render: Render) -> None:
    """Write every request into one file, atomically."""
    if path.is_dir():
        raise OutputError(f"-o {path}: is a directory (use --split-dir for one file per request)")
    write_atomic(path, render.requests_of(roots))
    for record in render.written:
        record.path = path


def split_names(roots: Iterable[str]) -> dict[str, str]:
    """``incident_<id>.jsonl`` per root, made safe for file systems and unique.

    The one structure that grows with the requests written (about 200 bytes
    each): one file per request is written anyway.
    """
    names: dict[str, str] = {}
    taken: set[str] = set()
    for root in roots:
        stem = _UNSAFE.sub("_", root).strip("._") or "request"
        stem = stem[:MAX_NAME]
        name = f"incident_{stem}.jsonl"
        number = 2
        while name.lower() in taken:
            name = f"incident_{stem}_{number}.jsonl"
            number += 1
        taken.add(name.lower())
        names[root] = name
    return names


def to_directory(directory: Path, roots: Iterable[str], render: Render, *, force: bool) -> None:
    """One file per request in ``directory``; refuse to replace files unless ``force``."""
    if directory.exists() and not directory.is_dir():
        raise OutputError(f"--split-dir {directory}: exists and is not a directory")
    names = split_names(roots)
    if not force:
        clashes = sorted(name for name in names.values() if (directory / name).exists())
        if clashes:
            shown = ", ".join(clashes[:5]) + (" ..." if len(clashes) > 5 else "")
            raise OutputError(f"--split-dir {directory}: would replace {shown} "
                              "(an incident file is evidence; pass --force to replace it)")
    for root in roots:
        target = directory / names[root]
        write_atomic(target, render.request(root, target))
