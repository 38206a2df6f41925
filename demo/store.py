"""The shop's database (sqlite): orders to price, and their status."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest_replay as replay

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    id INTEGER PRIMARY KEY, total REAL NOT NULL, status TEXT NOT NULL DEFAULT 'new');
"""
ORDERS = {12345: 100.0, 777: 200.0, 4242: 180.0}


def database_path() -> str:
    """Where the database is (``SHOP_DB``, read inside the request: replay serves it)."""
    return os.environ.get("SHOP_DB", "shop.db")


def create(path: Path) -> None:
    """Create the database with the demo's orders."""
    with sqlite3.connect(path) as connection:
        connection.executescript(SCHEMA)
        connection.executemany("INSERT OR REPLACE INTO orders (id, total) VALUES (?, ?)",
                               sorted(ORDERS.items()))


@replay.traced
def load_order_total(order_id: int) -> float:
    """The order's total before tax."""
    connection = sqlite3.connect(database_path())
    try:
        row = connection.execute("SELECT total FROM orders WHERE id = ?", (order_id,)).fetchone()
    finally:
        connection.close()
    if row is None:
        raise KeyError(f"no order {order_id}")
    return float(row[0])


@replay.traced
def mark_pricing(order_id: int) -> int:
    """Mark the order as being priced; returns how many rows changed."""
    connection = sqlite3.connect(database_path())
    try:
        cursor = connection.execute("UPDATE orders SET status = 'pricing' WHERE id = ?",
                                    (order_id,))
        connection.commit()
        return cursor.rowcount
    finally:
        connection.close()
