"""One side of an A/B comparison: what each request did, recorded or replayed."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_replay.format import events as ev
from pytest_replay.format.events import Event
from pytest_replay.model import Root, Trace
from pytest_replay.replay.describe import short_value
from pytest_replay.replay.engine import ReplayEngine, recorded_events

VARIANT_KEYS = ("variant", "experiment_variant", "ab_variant")
CONVERSION_KEYS = ("converted", "conversion")


@dataclass
class RequestOutcome:
    """What one request did on one side."""

    key: str
    trace: str
    failed: bool
    outcome: str
    latency_ns: int | None
    events: list[Event] = field(default_factory=list)
    variant: str | None = None
    converted: bool | None = None


@dataclass
class Side:
    """Every request of one side, and how they were obtained."""

    label: str
    how: str
    requests: dict[str, RequestOutcome] = field(default_factory=dict)

    def failures(self) -> int:
        """How many requests ended in an error."""
        return sum(1 for r in self.requests.values() if r.failed)

    def latencies_ms(self) -> list[float]:
        """Known request durations in milliseconds."""
        return [r.latency_ns / 1e6 for r in self.requests.values() if r.latency_ns is not None]


def _context_value(events: Sequence[Event], keys: Sequence[str]) -> Any:
    for event in events:
        if event.get("event_type") in (ev.CONTEXT, ev.VARIABLE_CHANGE):
            context = event.get("context")
            if isinstance(context, dict):
                for key in keys:
                    if key in context:
                        return context[key]
            if event.get("variable_name") in keys:
                return event.get("value")
    return None


def _recorded_latency(root: Root) -> int | None:
    exit_event = root.frame.exit.event if root.frame.exit is not None else None
    if exit_event is not None and isinstance(exit_event.get("duration_ns"), int):
        return int(exit_event["duration_ns"])
    stamps = [e.event.get("timestamp_ns") for e in root.events]
    ints = [s for s in stamps if isinstance(s, int)]
    return max(ints) - min(ints) if len(ints) > 1 else None


def _outcome_text(events: Sequence[Event], root_name: str) -> tuple[bool, str]:
    exit_event = next((e for e in reversed(events) if e.get("event_type") == ev.FUNCTION_EXIT
                       and e.get("function_name") == root_name), None)
    if exit_event is None:
        error = next((e for e in reversed(events) if e.get("event_type") == ev.ERROR), None)
        if error is not None:
            return True, f"raised {error.get('error_type')}"
        return False, "no exit recorded"
    if exit_event.get("error"):
        return True, f"raised {exit_event.get('error_type') or 'an error'}"
    return False, f"returned {short_value(exit_event.get('return_value'), 60)}"


def _describe(root: Root, events: list[Event], failed: bool, outcome: str,
              latency: int | None) -> RequestOutcome:
    variant = _context_value(events, VARIANT_KEYS)
    converted = _context_value(events, CONVERSION_KEYS)
    return RequestOutcome(
        key=root.name, trace=Path(root.path).name, failed=failed, outcome=outcome,
        latency_ns=latency, events=events,
        variant=str(variant) if variant is not None and not isinstance(variant, dict) else None,
        converted=bool(converted) if isinstance(converted, (bool, int)) else None,
    )


def recorded_side(label: str, traces: Sequence[Trace]) -> Side:
    """A side made of what production recorded (no replay)."""
    side = Side(label, "recorded")
    for trace in traces:
        for root in trace.roots:
            events = recorded_events(root)
            failed, outcome = _outcome_text(events, root.frame.function_name)
            failed = failed or root.is_incident
            side.requests[root.name] = _describe(root, events, failed, outcome,
                                                 _recorded_latency(root))
    return side


def replayed_side(label: str, traces: Sequence[Trace], engine: ReplayEngine) -> Side:
    """A side made of replays against the code in this checkout."""
    side = Side(label, "replayed against the current code")
    for trace in traces:
        for root in trace.roots:
            try:
                run = engine.run(root)
            except Exception as exc:
                side.requests[root.name] = _describe(root, [], True,
                                                     f"not replayable: {exc}", None)
                continue
            failed, outcome = _outcome_text(run.events, root.frame.function_name)
            failed = failed or run.error is not None
            if run.error is not None:
                outcome = f"raised {type(run.error).__name__}"
            side.requests[root.name] = _describe(root, run.events, failed, outcome,
                                                 run.duration_ns)
    return side


def code_version_side(label: str, paths: Sequence[str], ref: str, targets: str | None,
                      traces: Sequence[Trace]) -> Side:
    """A side replayed against git ``ref`` (through ``replay-telemetry --code-version``)."""
    command = [sys.executable, "-m", "pytest_replay.cli.replay_telemetry", "--json",
               "--events", "--code-version", ref, *paths]
    if targets:
        command += ["--targets", targets]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=3600)
    start = done.stdout.find("{")
    if start < 0:
        raise RuntimeError(f"replaying at {ref} failed: {done.stderr.strip() or done.stdout}")
    document = json.loads(done.stdout[start:])
    roots = {root.name: root for trace in traces for root in trace.roots}
    side = Side(label, f"replayed against {ref}")
    for item in document.get("results", []):
        root = roots.get(item["root"])
        if root is None:
            continue
        events = item.get("replayed_events", [])
        failed, outcome = _outcome_text(events, root.frame.function_name)
        failed = failed or item["status"] in ("reproduced", "not_replayable")
        latency = int(item.get("duration_ms", 0) * 1e6)
        side.requests[root.name] = _describe(root, events, failed, outcome, latency)
    return side
