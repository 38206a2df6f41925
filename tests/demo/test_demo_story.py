"""The README's story on the bundled demo, run as a user runs it (real subprocesses).

Record with a real sqlite database and a real HTTP gateway on 127.0.0.1, both
gone afterwards; replay: the incident reproduces and the healthy requests
pass; fix the bug: the incident passes as FIXED, the gateway's charge answered
by the demo's what-if override; ``--replay-update`` makes it strict.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
BUGGY = ("    discount_amount = sum(discounts) / discount_count"
         "  # BUG: no discounts -> ZeroDivisionError\n")
FIXED = ("    discount_amount = 0.0\n"
         "    if discount_count > 0:  # FIX: check before dividing\n"
         "        discount_amount = sum(discounts) / discount_count\n")


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    """A copy of the demo project (package, config, conftest) with freshly recorded traces."""
    shutil.copytree(REPOSITORY / "demo", tmp_path / "demo",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "traces").mkdir()
    shutil.copy(REPOSITORY / "traces" / "conftest.py", tmp_path / "traces" / "conftest.py")
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\npythonpath = ["."]\nreplay_targets = ["demo"]\n')
    done = run(tmp_path, sys.executable, "-m", "demo.record")
    assert done.returncode == 0, done.stderr
    return tmp_path


def run(cwd: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """Run a command in the project, without the outer session's pytest settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["NO_COLOR"] = "1"
    return subprocess.run(list(command), cwd=cwd, capture_output=True, text=True, timeout=180,
                          env=env, check=False)


def pytest_in(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m pytest`` in the project."""
    return run(cwd, sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args)


def fix_the_bug(project: Path) -> None:
    """Apply the seed's fix to ``demo/shop.py``."""
    path = project / "demo" / "shop.py"
    text = path.read_text()
    assert BUGGY in text
    path.write_text(text.replace(BUGGY, FIXED))


def test_recording_reaches_the_real_database_and_gateway_and_redacts_the_key(shop: Path
                                                                             ) -> None:
    healthy = (shop / "traces" / "healthy_req_ok777.jsonl").read_text()
    assert '"event_type":"db_call"' in healthy and '"event_type":"http_call"' in healthy
    assert '"Authorization":"[REDACTED]"' in healthy
    assert "sk_test_demo" not in healthy


def test_the_incident_reproduces_and_the_healthy_requests_pass(shop: Path) -> None:
    done = pytest_in(shop, "traces")
    assert done.returncode == 1, done.stdout
    assert "1 failed, 2 passed" in done.stdout
    assert "incident reproduces: ZeroDivisionError in calculate_tax at line 19" in done.stdout
    assert "discount_count = 0" in done.stdout


def test_after_the_fix_the_incident_passes_and_update_makes_it_strict(shop: Path) -> None:
    incident = shop / "traces" / "incident_abc123.jsonl"
    evidence = incident.read_bytes()
    fix_the_bug(shop)
    done = pytest_in(shop, "traces")
    assert done.returncode == 0, done.stdout
    assert ("fixed: ZeroDivisionError no longer raised; calculate_tax now returns 8.0"
            in done.stdout)
    updated = pytest_in(shop, "traces", "--replay-update")
    assert updated.returncode == 0, updated.stdout
    assert "wrote 3 baseline(s)" in updated.stdout
    assert incident.read_bytes() == evidence  # the incident file is never rewritten
    strict = pytest_in(shop, "traces", "-n", "2")
    assert strict.returncode == 0, strict.stdout
    path = shop / "demo" / "shop.py"
    path.write_text(path.read_text().replace("tax_rate = 0.08", "tax_rate = 0.09"))
    regressed = pytest_in(shop, "traces")
    assert regressed.returncode == 1
    assert "first divergent event" in regressed.stdout


def test_replay_telemetry_on_the_demo(shop: Path) -> None:
    executable = str(Path(sys.executable).with_name("replay-telemetry"))
    done = run(shop, executable, "traces")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "REPRODUCED process_order[req_abc123]" in done.stdout
    assert "Root Cause: Variable 'discount_count' was 0" in done.stdout
    assert done.stdout.count("PASSED process_order") == 2
