"""From production log to traces/: the redacted incident still replays, and still reproduces."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

import pytest_replay as replay
from pytest_replay.model import load_trace
from tests.extract.extractsupport import run_cli

engine = pytest.importorskip("pytest_replay.replay.engine")
config = pytest.importorskip("pytest_replay.config")

REPO = Path(__file__).resolve().parents[2]


def _engine(target: str) -> object:
    return engine.ReplayEngine(config.ReplayConfig(targets=(target,)))


def test_demo_incident_extracted_from_a_production_log_reproduces(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recorded = tmp_path / "recorded"
    subprocess.run([sys.executable, "-m", "demo.record", "--out", str(recorded)], cwd=REPO,
                   check=True, capture_output=True)
    production = tmp_path / "production.log"
    files = sorted(recorded.iterdir())
    production.write_bytes(b"2025-10-31 02:00:00 INFO service up\n"
                           + b"".join(path.read_bytes() for path in files))
    traces = tmp_path / "traces"
    result = run_cli(production, "--correlation-id", "req_abc123", "--split-dir", traces)
    assert result.returncode == 0, result.stderr
    incident = load_trace(traces / "incident_req_abc123.jsonl")
    assert [root.correlation_id for root in incident.roots] == ["req_abc123"]
    monkeypatch.syspath_prepend(str(REPO))
    verdict = _engine("demo").replay(incident.roots[0])  # type: ignore[attr-defined]
    assert verdict.status == "reproduced", verdict.message


def test_redacted_personal_arguments_still_reproduce(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"piiapp_{uuid.uuid4().hex[:8]}"
    package = tmp_path / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "mail.py").write_text(textwrap.dedent("""
        import pytest_replay as replay

        @replay.traced
        def share(email: str, recipients: int) -> float:
            return email.count("@") / recipients
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    from importlib import import_module

    mail = import_module(f"{name}.mail")
    log = tmp_path / "production.log"
    replay.configure(path=log, service="mail")
    try:
        for request_id, email, count in (("req_ok", "ann@example.com", 2),
                                         ("req_pii", "jane.doe@example.com", 0)):
            with replay.request_scope(correlation_id=request_id), \
                    contextlib.suppress(ZeroDivisionError):
                mail.share(email, count)
    finally:
        replay.shutdown()
    out = tmp_path / "incident.jsonl"
    result = run_cli(log, "--status", "error", "-o", out)
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert "jane.doe" not in text and "<email:" in text
    incident = load_trace(out)
    assert [root.correlation_id for root in incident.roots] == ["req_pii"]
    verdict = _engine(name).replay(incident.roots[0])  # type: ignore[attr-defined]
    assert verdict.status == "reproduced", verdict.message
