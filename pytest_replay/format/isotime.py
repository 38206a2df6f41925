"""ISO 8601 date-times read the way Python 3.11+ reads them, on 3.10 too.

Python 3.10's ``datetime.fromisoformat`` reads only what ``isoformat()``
writes. Clock readings from other systems and times users type often have a
``Z``, one to nine fraction digits, a ``,`` before them, or a ``+HHMM`` or
``+HH`` offset, which 3.11+ accepts. Replay must not judge a trace
differently depending on the Python it runs on.
"""

from __future__ import annotations

import datetime as dt
import re
import sys
from typing import Final

_LOOSE: Final = re.compile(
    r"^(?P<head>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2})?)"
    r"(?:[.,](?P<fraction>\d+))?"
    r"(?P<zone>Z|[+-]\d{2}(?::?\d{2})?)?$"
)


def parse_datetime(text: str) -> dt.datetime:
    """``datetime.fromisoformat`` with 3.11's extended ISO 8601 forms; ValueError if unreadable."""
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        if sys.version_info >= (3, 11):
            raise
    return dt.datetime.fromisoformat(_as_isoformat_writes(text))


def _as_isoformat_writes(text: str) -> str:
    """``text`` rewritten as ``isoformat()`` would write it (unchanged if it is not ISO)."""
    match = _LOOSE.match(text)
    if match is None:
        return text
    head, fraction, zone = match.group("head", "fraction", "zone")
    if fraction is not None and head.count(":") < 2:
        return text  # a fraction of a minute: not ISO as Python reads it
    if fraction is not None:
        head = f"{head}.{fraction[:6].ljust(6, '0')}"
    if zone == "Z":
        zone = "+00:00"
    elif zone is not None:
        digits = zone[1:].replace(":", "")
        zone = f"{zone[0]}{digits[:2]}:{digits[2:] or '00'}"
    return head + (zone or "")
