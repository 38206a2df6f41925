"""Fixtures for the render tests: real traces of the seed's shop.

They are recorded by running the shop under capture in a subprocess (the
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

SEED_SHOP = '''"""Orders and tax, with the seed document's bug left in on purpose.

``calculate_tax`` divides by the number of active discounts, which is zero
for small orders: the production incident every demo trace tells about.
"""

from __future__ import annotations

import pytest_replay as replay


@replay.traced
def calculate_tax(amount: float, rate: float) -> float:
    discounts = active_discounts(amount)
    discount_count = len(discounts)
    discount_amount = sum(discounts) / discount_count  # BUG: no discounts -> ZeroDivisionError
    return round((amount - discount_amount) * rate, 2)


@replay.traced
def active_discounts(amount: float) -> list[float]:
    """Promotions that apply to an order of ``amount`` (none below 150)."""
    return [5.0, 10.0] if amount >= 150 else []


ORDER_TOTALS = {12345: 100.0, 777: 200.0, 4242: 180.0}


@replay.traced
def process_order(order_id: int, user_id: int) -> dict[str, float | int]:
    """Price an order: look up its total, add tax."""
    amount = ORDER_TOTALS[order_id]
    tax_rate = 0.08
    replay.variable("tax_rate", tax_rate)
    tax = calculate_tax(amount, tax_rate)
    return {"order_id": order_id, "user_id": user_id, "total": round(amount + tax, 2), "tax": tax}
'''

RECORD = '''
import contextlib
import sys

import pytest_replay as replay
from seedshop import shop

out = sys.argv[1]
for name, rid, order, user in [("incident_abc123.jsonl", "req_abc123", 12345, 67890),
                               ("healthy_req_ok777.jsonl", "req_ok777", 777, 1001)]:
    replay.configure(path=f"{out}/{name}", service="shop", capture_http=False,
                     capture_db=False, capture_chance=False)
    with replay.request_scope(correlation_id=rid, user_id=user):
        replay.context(environment="production", region="us-west-2")
        with contextlib.suppress(ZeroDivisionError):
            shop.process_order(order, user)
    replay.shutdown()
'''


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seed's shop (the first demo: pure computation, so its shape never moves),
    recorded for real in a subprocess."""
    base = tmp_path_factory.mktemp("seed_shop")
    (base / "seedshop").mkdir()
    (base / "seedshop" / "__init__.py").write_text("")
    (base / "seedshop" / "shop.py").write_text(SEED_SHOP)
    (base / "record.py").write_text(RECORD)
    out = base / "traces"
    out.mkdir()
    subprocess.run([sys.executable, "record.py", str(out)], cwd=base, check=True,
                   capture_output=True, timeout=120)
    return out


@pytest.fixture(scope="session")
def incident(demo_dir: Path) -> Trace:
    """``incident_abc123.jsonl``: the seed's ZeroDivisionError."""
    return load_trace(demo_dir / "incident_abc123.jsonl")


@pytest.fixture(scope="session")
def healthy(demo_dir: Path) -> Trace:
    """``healthy_req_ok777.jsonl``: a request that returned normally."""
    return load_trace(demo_dir / "healthy_req_ok777.jsonl")
