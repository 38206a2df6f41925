"""The sealed room one replay runs in: frozen time plus whatever serves outside calls.

Each part is a context manager; :func:`sandbox` enters them in a fixed order
and an :class:`~contextlib.ExitStack` restores everything, even when the
replayed code raises.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager

from pytest_replay.replay.external import ServedCalls
from pytest_replay.replay.frozen import frozen_time

__all__ = ["Server", "frozen_time", "recorded_moment", "sandbox"]

Server = Callable[[], AbstractContextManager[ServedCalls]]


def recorded_moment(timestamp_ns: int | None) -> _dt.datetime | None:
    """The instant to freeze time at: when the recorded request started (UTC)."""
    if timestamp_ns is None:
        return None
    seconds, nanos = divmod(timestamp_ns, 1_000_000_000)
    return _dt.datetime.fromtimestamp(seconds, tz=_dt.timezone.utc) + _dt.timedelta(
        microseconds=nanos // 1000
    )


@contextmanager
def sandbox(moment: _dt.datetime | None, servers: Sequence[Server]) -> Iterator[list[ServedCalls]]:
    """Enter frozen time and every server; yield what each server reports."""
    with ExitStack() as stack:
        reports = [stack.enter_context(server()) for server in servers]
        stack.enter_context(frozen_time(moment))
        yield reports
