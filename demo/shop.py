"""Orders and tax, with the seed document's bug left in on purpose.

``calculate_tax`` divides by the number of active discounts, which is zero
for small orders: the production incident every demo trace tells about.
An order is read from the shop's database and marked as being priced (a
write), then charged through the payment gateway over HTTP: replay serves
all of it from the recording.
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


@replay.traced
def process_order(order_id: int, user_id: int) -> dict[str, float | int | str]:
    """Price an order from the database, add tax, and charge it."""
    amount = store.load_order_total(order_id)
    store.mark_pricing(order_id)
    tax_rate = 0.08
    replay.variable("tax_rate", tax_rate)
    tax = calculate_tax(amount, tax_rate)
    total = round(amount + tax, 2)
    charge = payments.charge(user_id, total)
    return {"order_id": order_id, "user_id": user_id, "total": total, "tax": tax,
            "charge": str(charge["id"])}


from demo import payments, store  # noqa: E402 - they import nothing back from here
