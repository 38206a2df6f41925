"""Chance and the environment are recorded in production and served back at replay."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import pytest_replay as replay
from pytest_replay.capture.nondeterminism import (
    install_nondeterminism_capture,
    uninstall_nondeterminism_capture,
)
from pytest_replay.config import ReplayConfig
from pytest_replay.model import load_trace
from pytest_replay.replay.engine import ReplayEngine

APP = '''
import os
import random
import secrets
import uuid

import pytest_replay as replay


@replay.traced
def new_order(amount: float) -> dict[str, object]:
    return {
        "id": str(uuid.uuid4()),
        "lucky": random.random() < 0.5,
        "draw": random.randint(1, 1_000_000),
        "token": secrets.token_hex(8),
        "salt": os.urandom(4),
        "region": os.environ.get("SHOP_REGION", "nowhere"),
        "amount": amount,
    }
'''


@pytest.fixture
def chance_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    package = tmp_path / "chanceapp"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "orders.py").write_text(textwrap.dedent(APP))
    monkeypatch.syspath_prepend(str(tmp_path))
    install_nondeterminism_capture()
    try:
        yield tmp_path
    finally:
        uninstall_nondeterminism_capture()
        replay.shutdown()


def record(tmp_path: Path) -> Path:
    from chanceapp import orders  # type: ignore[import-not-found]

    sink = replay.MemorySink()
    replay.configure(sink=sink)
    os.environ["SHOP_REGION"] = "us-west-2"
    try:
        with replay.request_scope("req_chance"):
            orders.new_order(12.5)
    finally:
        del os.environ["SHOP_REGION"]
        replay.shutdown()
    trace = tmp_path / "chance.jsonl"
    trace.write_bytes(b"".join(sink.lines))
    return trace


def test_random_uuid_secrets_urandom_and_environment_are_served_back(chance_app: Path) -> None:
    trace = record(chance_app)
    kinds = [line for line in trace.read_text().splitlines() if "nondeterminism" in line]
    assert len(kinds) == 6, kinds  # uuid4, random, randint, token_hex, urandom, environ.get
    engine = ReplayEngine(ReplayConfig(targets=("chanceapp",)))
    root = load_trace(trace).roots[0]
    for _ in range(2):  # zero false alarms: unchanged code passes every time
        result = engine.replay(root)
        assert result.status == "passed", result.message
    recorded_exit = next(e for e in result.recorded if e["event_type"] == "function_exit")
    replayed_exit = next(e for e in result.replayed if e["event_type"] == "function_exit")
    assert replayed_exit["return_value"] == recorded_exit["return_value"]
    assert recorded_exit["return_value"]["region"] == "us-west-2"
    assert "SHOP_REGION" not in os.environ  # served from the recording, not from here


def test_unrecorded_draws_are_seeded_by_the_request_so_replays_agree(chance_app: Path) -> None:
    trace = record(chance_app)
    lines = [line for line in trace.read_text().splitlines() if "nondeterminism" not in line]
    stripped = chance_app / "stripped.jsonl"
    stripped.write_text("\n".join(lines) + "\n")
    engine = ReplayEngine(ReplayConfig(targets=("chanceapp",)))
    root = load_trace(stripped).roots[0]
    first = engine.run(root)
    second = engine.run(root)
    assert first.value == second.value
    assert first.value["id"] != load_trace(trace).roots[0].frame.exit.event[  # type: ignore[union-attr]
        "return_value"]["id"]


def test_sources_are_restored_after_replay(chance_app: Path) -> None:
    import random
    import uuid

    before = (random.random, uuid.uuid4, os.urandom)
    trace = record(chance_app)
    ReplayEngine(ReplayConfig(targets=("chanceapp",))).replay(load_trace(trace).roots[0])
    assert (random.random, uuid.uuid4, os.urandom) == before
    assert "get" not in vars(os.environ) or os.environ.get("PATH") == os.environ["PATH"]
