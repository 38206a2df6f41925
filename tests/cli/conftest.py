"""A small project (app package + pyproject + recorded traces) for CLI runs in subprocesses."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

SHOP = '''
import pytest_replay as replay


@replay.traced
def active_discounts(amount: float) -> list[float]:
    return [5.0, 10.0] if amount >= 150 else []


@replay.traced
def calculate_tax(amount: float, rate: float) -> float:
    discounts = active_discounts(amount)
    discount_count = len(discounts)
    discount_amount = sum(discounts) / discount_count
    return round((amount - discount_amount) * rate, 2)


ORDERS = {12345: 100.0, 777: 200.0}


@replay.traced
def process_order(order_id: int, user_id: int) -> dict[str, float]:
    amount = ORDERS[order_id]
    tax_rate = 0.08
    replay.variable("tax_rate", tax_rate)
    return {"total": round(amount + calculate_tax(amount, tax_rate), 2)}
'''

FIXED_LINE = "    discount_amount = sum(discounts) / discount_count if discount_count > 0 else 0\n"

RECORD = '''
import sys
import pytest_replay as replay
from shopapp import shop

for name, rid, order, user in [("incident_abc123.jsonl", "req_abc123", 12345, 67890),
                               ("healthy_req_ok.jsonl", "req_ok", 777, 1)]:
    replay.configure(path=f"traces/{name}", service="shop")
    with replay.request_scope(correlation_id=rid, user_id=user):
        try:
            shop.process_order(order, user)
        except ZeroDivisionError:
            pass
    replay.shutdown()
'''


@dataclass
class Project:
    """A project directory with a shop app and its recorded traces."""

    root: Path

    def run(self, tool: str, *args: str, stdin: str | None = None,
            env: dict[str, str] | None = None, timeout: float = 120
            ) -> subprocess.CompletedProcess[str]:
        """Run an installed console script in the project directory."""
        executable = shutil.which(tool, path=os.path.dirname(sys.executable)) or tool
        full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
        return subprocess.run([executable, *args], cwd=self.root, input=stdin,
                              capture_output=True, text=True, timeout=timeout, env=full_env,
                              check=False)

    def fix_the_bug(self) -> None:
        """Apply the seed's fix to the app's source."""
        path = self.root / "shopapp" / "shop.py"
        lines = path.read_text().splitlines(keepends=True)
        lines = [FIXED_LINE if "sum(discounts) / discount_count" in line else line
                 for line in lines]
        path.write_text("".join(lines))

    def git(self, *args: str) -> str:
        """Run git in the project."""
        done = subprocess.run(["git", *args], cwd=self.root, capture_output=True, text=True,
                              check=True, timeout=60)
        return done.stdout


def make_project(root: Path) -> Project:
    """Write the app and record its traces by really running it under capture."""
    (root / "shopapp").mkdir()
    (root / "shopapp" / "__init__.py").write_text("")
    (root / "shopapp" / "shop.py").write_text(textwrap.dedent(SHOP))
    (root / "traces").mkdir()
    (root / "pyproject.toml").write_text(textwrap.dedent('''
        [tool.pytest.ini_options]
        pythonpath = ["."]
        replay_targets = ["shopapp"]
    '''))
    (root / "record.py").write_text(textwrap.dedent(RECORD))
    subprocess.run([sys.executable, "record.py"], cwd=root, check=True, timeout=60,
                   env={**os.environ, "PYTHONPATH": str(root)})
    return Project(root)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A fresh project with one incident and one healthy trace."""
    return make_project(tmp_path)


def lines_of(done: subprocess.CompletedProcess[str]) -> Sequence[str]:
    """Output lines, for readable assertion failures."""
    return done.stdout.splitlines()
