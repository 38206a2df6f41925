"""Replay roots for the command line and turn verdicts into text or JSON."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pytest_replay.config import ReplayConfig
from pytest_replay.format.events import Event
from pytest_replay.model import Root
from pytest_replay.replay.engine import ReplayEngine, ReplayResult, ServerFactory
from pytest_replay.replay.sandbox import Server


@dataclass(frozen=True)
class MockSettings:
    """What is served from the recording (both on unless switched off explicitly)."""

    apis: bool = True
    database: bool = True


def make_engine(config: ReplayConfig, mocks: MockSettings) -> ReplayEngine:
    """An engine whose servers follow ``--mock-apis``/``--mock-database``."""
    factory: ServerFactory | None = None
    if not (mocks.apis and mocks.database):

        def factory(root: Root, recorded: Sequence[Event], cfg: ReplayConfig,
                    overrides: Any | None) -> Sequence[Server]:
            from pytest_replay.replay.servers import servers_for

            return servers_for(recorded, cfg, seed=root.correlation_id, http=mocks.apis,
                               database=mocks.database, overrides=overrides)

    return ReplayEngine(config, servers=factory)


def verdict_json(result: ReplayResult, *, events: bool = False) -> dict[str, Any]:
    """One verdict as plain JSON (``--json``; ``events`` adds the replayed events)."""
    out: dict[str, Any] = {
        "trace": result.root.path,
        "line": result.root.line,
        "root": result.root.name,
        "status": result.status,
        "passed": result.passed,
        "message": result.message,
        "duration_ms": round(result.duration_ns / 1e6, 3),
        "not_compared": result.not_compared,
        "noise": result.noise,
    }
    if events:
        out["replayed_events"] = result.replayed
    divergence = result.divergence
    if divergence is not None:
        out["divergence"] = {
            "index": divergence.index,
            "path": list(divergence.path),
            "reason": divergence.reason,
            "field": divergence.field,
            "recorded": divergence.recorded.describe() if divergence.recorded else None,
            "recorded_line": divergence.recorded.line if divergence.recorded else None,
            "replayed": divergence.replayed.describe() if divergence.replayed else None,
        }
    return out


def exit_status(results: Sequence[ReplayResult]) -> int:
    """0 when every root passes (or is fixed), 1 when any reproduces or diverges."""
    return 0 if all(result.passed for result in results) else 1
