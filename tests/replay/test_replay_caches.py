"""What an engine keeps from one replay to the next never goes stale.

An engine remembers how it resolved each ``module:qualname``, the signature
of each function it called, and leaves capture settings alone when they
already hold the replay's values. Each test changes what the cache was made
from between two replays and checks the second replay sees the change, and
that the allow-list still judges the object called now.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import pytest_replay as replay
from pytest_replay.capture.runtime import RUNTIME
from pytest_replay.capture.sinks import MemorySink
from pytest_replay.format.values import Limits
from pytest_replay.model import Root
from pytest_replay.replay.engine import ReplayEngine
from tests.replay.engine_support import AppPackage, make_app, only_root, record

GREET = """\
import pytest_replay as replay


@replay.traced
def greet(name: str) -> str:
    return f"hello {name}"


def shout(name: str) -> str:
    return f"HELLO {name}"


@replay.traced
def add(a: int, b: int = 2) -> int:
    return a + b


@replay.traced
def pad(size: int) -> str:
    return "x" * size
"""


@pytest.fixture
def app(request: pytest.FixtureRequest, tmp_path: Path) -> AppPackage:
    package = make_app(request, tmp_path)
    package.write("greet", GREET)
    return package


def recorded(app: AppPackage, tmp_path: Path, function: str, *args: object) -> Root:
    module = app.module("greet")
    return only_root(record(tmp_path / f"{function}.jsonl",
                            [("req_1", getattr(module, function), args)]))


# -- resolution ---------------------------------------------------------------------------


def test_a_name_rebound_outside_the_targets_is_refused_after_a_cached_resolution(
        app: AppPackage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = recorded(app, tmp_path, "greet", "ann")
    engine = app.engine()
    assert engine.replay(root).status == "passed"

    monkeypatch.setattr(app.module("greet"), "greet", json.dumps)
    refused = engine.replay(root)

    assert refused.status == "not_replayable"
    assert "refused" in refused.message and "outside replay_targets" in refused.message
    monkeypatch.undo()
    assert engine.replay(root).status == "passed"


def test_a_resolved_function_moved_outside_the_targets_is_refused(
        app: AppPackage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same object, judged again: its definition now says it lives elsewhere."""
    root = recorded(app, tmp_path, "greet", "ann")
    engine = app.engine()
    assert engine.replay(root).status == "passed"

    monkeypatch.setattr(app.module("greet").greet.__wrapped__, "__module__", "json")
    refused = engine.replay(root)

    assert refused.status == "not_replayable"
    assert "resolves to a function defined in 'json', outside replay_targets" in refused.message


def test_a_name_rebound_inside_the_targets_calls_the_new_function(
        app: AppPackage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = recorded(app, tmp_path, "greet", "ann")
    engine = app.engine()
    assert engine.run(root).value == "hello ann"

    module = app.module("greet")
    monkeypatch.setattr(module, "greet", module.shout)

    assert engine.run(root).value == "HELLO ann"


def test_a_module_imported_again_is_resolved_again(app: AppPackage, tmp_path: Path) -> None:
    root = recorded(app, tmp_path, "greet", "ann")
    engine = app.engine()
    assert engine.run(root).value == "hello ann"

    app.write("greet", GREET.replace('f"hello {name}"', 'f"hi {name}"'))  # forgets the module

    assert engine.run(root).value == "hi ann"


def test_each_engine_judges_with_its_own_targets(app: AppPackage, tmp_path: Path) -> None:
    root = recorded(app, tmp_path, "greet", "ann")
    assert app.engine().replay(root).status == "passed"

    elsewhere = app.engine(targets=("json",)).replay(root)

    assert elsewhere.status == "not_replayable"
    assert f"module '{app.name}.greet' is outside replay_targets (json)" in elsewhere.message


# -- signatures ---------------------------------------------------------------------------


def test_a_changed_signature_is_bound_anew(app: AppPackage, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    root = recorded(app, tmp_path, "add", 1)
    engine = app.engine()
    assert engine.run(root).value == 3

    monkeypatch.setattr(app.module("greet").add.__wrapped__, "__defaults__", None)
    refused = engine.replay(root)

    assert refused.status == "not_replayable"
    assert "holds no value for required parameter(s) b" in refused.message


# -- capture settings ---------------------------------------------------------------------


def test_replay_captures_with_its_own_settings_and_restores_production_ones(
        app: AppPackage, tmp_path: Path) -> None:
    """Production's service, sampling and caps are set aside for the replay, then come back."""
    root = recorded(app, tmp_path, "greet", "ann")
    engine = app.engine()
    caps = Limits(max_str=7)
    sink = replay.configure(sink=MemorySink(), service="shop", sample_rate=0.5)
    RUNTIME.limits = caps
    seen: list[tuple[object, ...]] = []

    def inside(call: object) -> object:
        seen.append((RUNTIME.service, RUNTIME.sample_rate, RUNTIME.limits.max_str,
                     isinstance(RUNTIME.sink, MemorySink) and RUNTIME.sink is not sink))
        return call()  # type: ignore[operator]

    try:
        outcome = engine.run(root, call=inside)
        assert (RUNTIME.service, RUNTIME.sample_rate, RUNTIME.limits, RUNTIME.sink) == (
            "shop", 0.5, caps, sink)
    finally:
        replay.shutdown()
    assert seen == [(None, 1.0, Limits().max_str, True)]
    assert outcome.value == "hello ann"


def test_replays_in_a_row_record_the_same_events(app: AppPackage, tmp_path: Path) -> None:
    """Settings left in place between replays change nothing the replay writes."""
    root = recorded(app, tmp_path, "pad", 3000)  # a result long enough to be capped
    engine: ReplayEngine = app.engine()
    first, second = engine.run(root), engine.run(root)

    def stable(events: list[dict[str, object]]) -> list[dict[str, object]]:
        return [{k: v for k, v in e.items() if k not in ("timestamp_ns", "duration_ns")}
                for e in events]

    assert stable(first.events) == stable(second.events)
    assert engine.replay(root).status == "passed"
