"""Capture's wall clock: the real one, even while replay freezes the application's.

Every capture module takes event timestamps from :data:`wall_ns`, an alias
bound at import. Replay shows freezegun no capture module (see
:mod:`pytest_replay.replay.frozen`), so the alias stays the real
``time.time_ns``: a replayed trace's timestamps say when things happened,
the same clock on every path (the C accelerator reads the system clock
directly), and no event pays for freezegun's fake clock, which walks the
caller's stack on every call. Timestamps are bookkeeping: replay never
compares them.
"""

from __future__ import annotations

import time
from typing import Final

wall_ns: Final = time.time_ns
"""Nanoseconds since the epoch, from the real clock."""
