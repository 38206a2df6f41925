"""Baselines: the accepted behaviour of a root, kept beside its trace.

The incident file itself is evidence and is never rewritten. A baseline is
a ``.json`` document (never ``.jsonl``, so the collector cannot mistake it for
a trace) under ``<trace dir>/.replay-baselines/<trace file>/<root>.json``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson

from pytest_replay.format.events import Event
from pytest_replay.format.writer import dumps_pretty, write_atomic

BASELINE_DIR: Final = ".replay-baselines"
BASELINE_FORMAT: Final = "telemetry-replay-baseline"
_VOLATILE: Final = frozenset({"timestamp_ns", "duration_ns", "_line"})
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9._\-\[\]]")


class BaselineError(ValueError):
    """A baseline file that cannot be used; names the file and the problem."""


@dataclass(frozen=True)
class BaselineRef:
    """Where the baseline of one root lives."""

    trace: Path
    root: str

    @property
    def location(self) -> str:
        """The baseline file, as a plain string: asked for every item, so no Path arithmetic."""
        return os.path.join(os.path.dirname(self.trace), BASELINE_DIR, self.trace.name,
                            f"{_UNSAFE.sub('_', self.root)}.json")

    @property
    def path(self) -> Path:
        """The baseline file."""
        return Path(self.location)


def stable_events(events: Iterable[Event]) -> list[Event]:
    """Replayed events without what changes every run (timestamps, durations)."""
    return [{k: v for k, v in event.items() if k not in _VOLATILE} for event in events]


def serialize(ref: BaselineRef, events: Iterable[Event]) -> bytes:
    """The baseline document for ``events``."""
    document = {"format": BASELINE_FORMAT, "v": 1, "trace": ref.trace.name, "root": ref.root,
                "events": stable_events(events)}
    return dumps_pretty(document)


def write(ref: BaselineRef, payload: bytes) -> None:
    """Write a baseline atomically."""
    write_atomic(ref.path, [payload])


def load(ref: BaselineRef) -> list[Event] | None:
    """The baseline events of a root, or None when it has none."""
    location = ref.location  # mostly there is none: one stat of a plain string
    if not os.path.isfile(location):
        return None
    path = Path(location)
    try:
        document: Any = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise BaselineError(f"{path}: unreadable baseline: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != BASELINE_FORMAT:
        raise BaselineError(f"{path}: not a telemetry-replay baseline (field 'format')")
    events = document.get("events")
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise BaselineError(f"{path}: field 'events' must be a list of events")
    return events


def existing(trace_dirs: Iterable[Path]) -> Iterator[BaselineRef]:
    """Every baseline file under the given trace folders."""
    for directory in trace_dirs:
        for path in sorted(directory.rglob(f"{BASELINE_DIR}/*/*.json")):
            yield BaselineRef(path.parent.parent.parent / path.parent.name, path.stem)
