"""Run the demo shop under capture and write its traces into ``traces/``.

``python -m demo.record`` records one request per file: the seed's incident
(``incident_abc123.jsonl``, order 12345 has no discounts) and healthy ones,
whose orders are read from a real sqlite database and charged through a real
HTTP gateway on 127.0.0.1. Both are gone once recording ends: replay serves
them from the traces.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from pathlib import Path

import pytest_replay as replay
from demo import payments, shop, store

REQUESTS: tuple[tuple[str, str, int, int], ...] = (
    ("incident_abc123.jsonl", "req_abc123", 12345, 67890),
    ("healthy_req_ok777.jsonl", "req_ok777", 777, 1001),
    ("healthy_req_ok4242.jsonl", "req_ok4242", 4242, 1002),
)


def record(directory: Path) -> list[Path]:
    """Record every demo request into its own trace file; return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch, payments.gateway() as url:
        database = Path(scratch) / "shop.db"
        store.create(database)
        saved = {key: os.environ.get(key) for key in ("SHOP_DB", "PAYMENTS_URL")}
        os.environ.update(SHOP_DB=str(database), PAYMENTS_URL=url)
        try:
            return _record_requests(directory)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _record_requests(directory: Path) -> list[Path]:
    written = []
    for filename, request_id, order_id, user_id in REQUESTS:
        path = directory / filename
        path.unlink(missing_ok=True)
        replay.configure(path=path, service="shop")
        with replay.request_scope(correlation_id=request_id, user_id=user_id):
            replay.context(environment="production", region="us-west-2")
            # The incident: production logged the error and answered 500.
            with contextlib.suppress(ZeroDivisionError):
                shop.process_order(order_id, user_id)
        replay.shutdown()
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: ``python -m demo.record [--out traces]``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=os.environ.get("DEMO_TRACES", "traces"))
    options = parser.parse_args(argv)
    for path in record(Path(options.out)):
        print(f"recorded {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
