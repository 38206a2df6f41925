"""What the incident never reached: the gateway's answer once the bug is fixed.

The incident stopped at the ZeroDivisionError, so its recording holds no
charge. After the fix the code goes on to charge the order, and a replay
refuses calls the recording lacks, so this what-if answer stands in for the
gateway. Healthy traces recorded their own charge and get no override.
"""

from __future__ import annotations

import re
from typing import Any

import pytest


def pytest_replay_http_overrides(item: pytest.Item, overrides: Any) -> None:
    """Answer the charge for incident replays only."""
    root = getattr(item, "root", None)
    if root is not None and root.is_incident:
        overrides.add("POST", re.compile(r".*/v1/charges$"),
                      json={"id": "ch_what_if", "status": "succeeded"})
