"""Fixtures for the render tests: the demo's real traces.

They are recorded by running ``python -m demo.record`` in a subprocess (the
real capture path, nothing faked). Hand-made events (rendersupport.py) are
used where the shape of the input is the point: bad input, categories of
errors, several services.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pytest_replay.model import Trace, load_trace

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo shop's traces, recorded for real in a subprocess."""
    out = tmp_path_factory.mktemp("demo_traces")
    subprocess.run([sys.executable, "-m", "demo.record", "--out", str(out)], cwd=ROOT,
                   check=True, capture_output=True, timeout=120)
    return out


@pytest.fixture(scope="session")
def incident(demo_dir: Path) -> Trace:
    """``incident_abc123.jsonl``: the seed's ZeroDivisionError."""
    return load_trace(demo_dir / "incident_abc123.jsonl")


@pytest.fixture(scope="session")
def healthy(demo_dir: Path) -> Trace:
    """``healthy_req_ok777.jsonl``: a request that returned normally."""
    return load_trace(demo_dir / "healthy_req_ok777.jsonl")
