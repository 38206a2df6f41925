"""Write trace events as JSONL, atomically where a half-written file would mislead."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

import orjson

from pytest_replay.format.events import Event

_OPTIONS: Final = orjson.OPT_APPEND_NEWLINE


def dumps_event(event: Event) -> bytes:
    """One event as one JSONL line (newline included)."""
    return orjson.dumps(event, option=_OPTIONS)


def dumps_pretty(value: Any) -> bytes:
    """Indented JSON with sorted keys, for files people read and diff (baselines)."""
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def write_events(path: str | Path, events: Iterable[Event]) -> int:
    """Write ``events`` to ``path`` atomically; return how many were written."""
    count = 0

    def lines() -> Iterable[bytes]:
        nonlocal count
        for event in events:
            count += 1
            yield dumps_event(event)

    write_atomic(path, lines())
    return count


def write_atomic(path: str | Path, chunks: Iterable[bytes]) -> None:
    """Write to a temporary file beside ``path`` and rename it into place.

    A killed run leaves either the old file or the new one, never half of one.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            for chunk in chunks:
                stream.write(chunk)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
