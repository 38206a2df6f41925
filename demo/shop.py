"""Orders and tax, with the seed document's bug left in on purpose.

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
