"""Logs for extraction tests: realistic requests, written the way production writes them."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from pytest_replay.extract import Criteria, Options, extract
from pytest_replay.extract.engine import Report
from pytest_replay.redaction import Rules

SCRIPT = Path(sys.executable).with_name("extract-traces")
START_NS = 1_761_876_000_000_000_000  # 2025-10-31T02:00:00Z
SECOND = 1_000_000_000
Event = dict[str, Any]


def run_cli(*args: str | Path, stdin: bytes | None = None, cwd: Path | None = None,
            env: dict[str, str] | None = None, timeout: float = 60
            ) -> subprocess.CompletedProcess[bytes]:
    """The installed ``extract-traces`` in a real subprocess."""
    return subprocess.run(
        [str(SCRIPT), *map(str, args)],
        input=stdin if stdin is not None else b"",
        capture_output=True, cwd=cwd, timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def events_of(data: bytes) -> list[Event]:
    """Parse JSONL output."""
    return [orjson.loads(line) for line in data.splitlines() if line.strip()]


def ids_of(events: Iterable[Event]) -> set[str]:
    """Every correlation id in some events."""
    return {str(event.get("correlation_id")) for event in events}


def dump(events: Iterable[Event], *, spaced: bool = False) -> bytes:
    """JSONL the way orjson writes it, or the way ``json.dumps`` does (spaces)."""
    if spaced:
        return b"".join(json.dumps(event).encode() + b"\n" for event in events)
    return b"".join(orjson.dumps(event) + b"\n" for event in events)


def write(path: Path, events: Iterable[Event], *, spaced: bool = False) -> Path:
    """Write a log file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(dump(events, spaced=spaced))
    return path


_counter = itertools.count(1)


def frame_id() -> str:
    """A child frame id that does not contain its request's id (like production's)."""
    return f"func_{next(_counter):06x}"


@dataclass
class Request:
    """One recorded request: its events in the order the application wrote them."""

    root: str
    events: list[Event] = field(default_factory=list)
    frames: list[str] = field(default_factory=list)


def request(
    root: str,
    start: int = START_NS,
    *,
    user: int | str | None = None,
    variant: str | None = None,
    service: str = "shop",
    fail: bool = False,
    caught: bool = False,
    depth: int = 2,
    trace: str | None = None,
    parent: str | None = None,
    duration: int | None = 50_000_000,
    with_exit: bool = True,
    function: str = "process_order",
    extra_args: dict[str, Any] | None = None,
) -> Request:
    """A request: context, root call, ``depth`` nested calls, maybe an error.

    ``fail`` raises in the deepest call; ``caught`` catches it in the root
    (the request then ends well); ``trace`` and ``parent`` join a
    distributed trace started elsewhere.
    """
    req = Request(root)
    events = req.events
    clock = itertools.count(start, 1_000)

    def stamp() -> int:
        return next(clock)

    def base(kind: str, cid: str) -> Event:
        event: Event = {"event_type": kind, "timestamp_ns": stamp(), "correlation_id": cid}
        if trace is not None and kind in ("function_entry", "context"):
            event["trace_id"] = trace
        event["service"] = service
        return event

    if user is not None:
        events.append({**base("context", root), "context": {"user_id": user}})
    if variant is not None:
        events.append({**base("context", root), "context": {"experiment_variant": variant}})
    entry = {**base("function_entry", root), "function_name": function, "module": "demo.shop",
             "qualname": function, "args": {"order_id": 12345, **(extra_args or {})}}
    if parent is not None:
        entry["parent_correlation_id"] = parent
    events.append(entry)
    events.append({**base("variable_change", root), "variable_name": "tax_rate", "value": 0.08})
    req.frames.append(root)
    chain = [root]
    for level in range(depth):
        cid = frame_id()
        req.frames.append(cid)
        events.append({**base("function_entry", cid), "function_name": f"step_{level}",
                       "module": "demo.shop", "qualname": f"Steps.step_{level}",
                       "args": {"amount": 100.0 + level}, "parent_correlation_id": chain[-1]})
        chain.append(cid)
    if fail:
        events.append({**base("error", chain[-1]), "error_type": "ZeroDivisionError",
                       "message": "division by zero", "locals": {"discount_count": 0}})
    for cid in reversed(chain[1:]):
        raised = fail and (cid != chain[1] or not caught)
        event = {**base("function_exit", cid), "function_name": "step"}
        event.update({"error": True} if raised else {"return_value": 8.0})
        events.append(event)
    if with_exit:
        exit_event = {**base("function_exit", root), "function_name": function}
        exit_event.update({"error": True} if fail and not caught else {"return_value": 1})
        if duration is not None:
            exit_event["duration_ns"] = duration
        events.append(exit_event)
    return req


def interleave(*requests: Request) -> list[Event]:
    """Round-robin the requests' events, as concurrent requests land in one log."""
    out: list[Event] = []
    for group in itertools.zip_longest(*(r.events for r in requests)):
        out.extend(event for event in group if event is not None)
    return out


def run_engine(inputs: Sequence[Path | str], criteria: Criteria | None = None, *,
               redact: bool = False, rules: Rules | None = None,
               strict: bool = False) -> tuple[Report, list[Event]]:
    """Extract in this process (for the many filter combinations); returns events written."""
    import io

    out = io.BytesIO()
    report = extract(Options([str(item) for item in inputs], criteria or Criteria(),
                             redact=redact, rules=rules or Rules(), strict=strict,
                             stdout=out))
    return report, events_of(out.getvalue())


def roots_in(events: Iterable[Event]) -> list[str]:
    """Root ids of extracted output, in order of first appearance."""
    from pytest_replay.format.reader import LineEvent, ReadResult
    from pytest_replay.model import build_trace

    items = [LineEvent(index + 1, event) for index, event in enumerate(events)]
    trace = build_trace(ReadResult("<out>", items))
    return [root.correlation_id for root in trace.roots]
