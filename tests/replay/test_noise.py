"""A divergence that differs between two replays of unchanged code is reported as noise."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import pytest_replay as replay
from pytest_replay.config import ReplayConfig
from pytest_replay.model import load_trace
from pytest_replay.replay.engine import ReplayEngine

APP = '''
import time

import pytest_replay as replay


@replay.traced
def ticket(customer: str) -> dict[str, object]:
    return {"customer": customer, "elapsed": time.perf_counter_ns() % 1000003}
'''


@pytest.fixture
def noisy_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    package = tmp_path / "noisyapp"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "tickets.py").write_text(textwrap.dedent(APP))
    monkeypatch.syspath_prepend(str(tmp_path))
    _forget_app()
    from noisyapp import tickets  # type: ignore[import-not-found]

    sink = replay.MemorySink()
    replay.configure(sink=sink)
    with replay.request_scope("req_noise"):
        tickets.ticket("ann")
    replay.shutdown()
    trace = tmp_path / "noisy.jsonl"
    trace.write_bytes(b"".join(sink.lines))
    yield trace
    _forget_app()


def _forget_app() -> None:
    """Each test imports its own copy of the app (one test edits its source)."""
    for name in [n for n in sys.modules if n == "noisyapp" or n.startswith("noisyapp.")]:
        del sys.modules[name]


def test_a_field_that_changes_between_replays_is_noise_not_a_regression(noisy_trace: Path
                                                                       ) -> None:
    root = load_trace(noisy_trace).roots[0]
    engine = ReplayEngine(ReplayConfig(targets=("noisyapp",)))
    for _ in range(2):  # unchanged code passes, twice: the difference is reported as noise
        result = engine.replay(root)
        assert result.status == "passed", result.message
        assert len(result.noise) == 1, result.noise
        assert "ticket.return_value.elapsed" in result.noise[0]
        assert "nondeterminism, not a regression" in result.noise[0]
        assert "suggested replay_ignore entry: ticket.return_value.elapsed" in result.noise[0]


def test_a_real_change_still_fails_beside_the_noise(noisy_trace: Path) -> None:
    from noisyapp import tickets

    root = load_trace(noisy_trace).roots[0]
    source = Path(tickets.__file__)
    source.write_text(source.read_text().replace('"customer": customer',
                                                 '"customer": customer.upper()'))
    import importlib

    importlib.reload(tickets)
    result = ReplayEngine(ReplayConfig(targets=("noisyapp",))).replay(root)
    assert result.status == "diverged"
    assert "return_value.customer: recorded 'ann', now 'ANN'" in result.message
    assert result.noise and "elapsed" in result.noise[0]


def test_with_the_suggested_ignore_entry_there_is_no_noise(noisy_trace: Path) -> None:
    root = load_trace(noisy_trace).roots[0]
    engine = ReplayEngine(ReplayConfig(targets=("noisyapp",),
                                       ignore=("ticket.return_value.elapsed",)))
    result = engine.replay(root)
    assert result.status == "passed", result.message
    assert result.noise == []


def test_the_plugin_passes_the_item_and_names_the_noise(noisy_trace: Path,
                                                        pytester: pytest.Pytester) -> None:
    import shutil

    shutil.copytree(noisy_trace.parent / "noisyapp", pytester.path / "noisyapp")
    (pytester.path / "traces").mkdir()
    shutil.copy(noisy_trace, pytester.path / "traces" / "noisy.jsonl")
    pytester.makeini("[pytest]\npythonpath = .\nreplay_targets = noisyapp\n")
    result = pytester.runpytest_subprocess("traces", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["NOISE * ticket.return_value.elapsed differs between two "
                                 "replays of unchanged code*"])
