"""The local PostgreSQL, MariaDB and Redis the database tests use, and record/replay helpers.

A test skips only when its server's port truly refuses connections; a
server that answers but rejects us is a failure, not a skip.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
import pytest

import pytest_replay as replay
from pytest_replay.capture.db import install_db_capture, uninstall_db_capture
from pytest_replay.replay.db_serve import serve_database
from pytest_replay.replay.external import ServedCalls

HOST: Final = "127.0.0.1"
PG_PORT: Final = 5432
MYSQL_PORT: Final = 3306
REDIS_PORT: Final = 6379
PG_DSN: Final = f"host={HOST} port={PG_PORT} user=postgres dbname=test connect_timeout=5"
PG_URL: Final = f"postgresql+psycopg://postgres@{HOST}:{PG_PORT}/test"
MYSQL: Final[dict[str, Any]] = {"host": HOST, "port": MYSQL_PORT, "user": "root",
                                "password": "", "database": "test", "connect_timeout": 5}
DEAD_PG_DSN: Final = f"host={HOST} port=1 user=nobody dbname=nowhere connect_timeout=1"
"""Where replay connects to prove it opens no connection: nothing listens on port 1."""
DEAD_MYSQL: Final[dict[str, Any]] = {**MYSQL, "port": 1, "connect_timeout": 1}
IGNORED: Final = frozenset({"timestamp_ns", "duration_ns", "correlation_id", "trace_id", "_line"})


def require(name: str, port: int) -> None:
    """Skip the test when nothing accepts connections on ``port``."""
    try:
        with socket.create_connection((HOST, port), timeout=2):
            return
    except OSError as exc:
        pytest.skip(f"{name} at {HOST}:{port} cannot be reached ({exc})")


def unique(prefix: str) -> str:
    """A table or key name no other test (or earlier run) uses."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def redis_key_prefix(label: str) -> Iterator[str]:
    """A key prefix of one test's own (skips when Redis cannot be reached); every key
    under it is deleted after. For a fixture: ``yield from redis_key_prefix("test")``."""
    import redis

    require("Redis", REDIS_PORT)
    prefix = unique(label)
    yield prefix
    client = redis.Redis(host=HOST, port=REDIS_PORT)
    stale = list(client.scan_iter(f"{prefix}*"))
    if stale:
        client.delete(*stale)
    client.close()


def pg_admin(statement: str) -> None:
    """Run one statement on PostgreSQL outside any recording (setup, DROP)."""
    import psycopg

    require("PostgreSQL", PG_PORT)
    with psycopg.connect(PG_DSN, autocommit=True) as connection:
        connection.execute(statement)


def mysql_admin(statement: str) -> None:
    """Run one statement on MariaDB outside any recording."""
    import pymysql

    require("MariaDB", MYSQL_PORT)
    connection = pymysql.connect(**MYSQL, autocommit=True)
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()


@dataclass
class Run:
    """One run of an application function inside a sampled request."""

    value: Any = None
    error: BaseException | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    served: ServedCalls | None = None

    @property
    def db_calls(self) -> list[dict[str, Any]]:
        """The ``db_call`` events, numbered with ``_line`` as the engine numbers them."""
        calls = [e for e in self.events if e["event_type"] == "db_call"]
        for number, event in enumerate(calls, start=1):
            event["_line"] = number
        return calls


@contextmanager
def capturing() -> Iterator[replay.MemorySink]:
    """Capture on, into memory, with database capture installed; all undone after."""
    sink = replay.MemorySink()
    replay.configure(sink=sink)
    install_db_capture()
    try:
        yield sink
    finally:
        uninstall_db_capture()
        replay.shutdown()


def run(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Run:
    """Call ``function`` in a sampled request under capture; keep its value and events."""
    result = Run()
    with capturing() as sink, replay.request_scope(unique("req")):
        try:
            result.value = function(*args, **kwargs)
        except Exception as exc:
            result.error = exc
    result.events = [orjson.loads(line) for line in sink.lines]
    return result


def replayed(recorded: list[dict[str, Any]], function: Callable[..., Any], *args: Any,
             **kwargs: Any) -> Run:
    """Like :func:`run`, with every database call served from ``recorded``."""
    result = Run()
    with capturing() as sink, serve_database(recorded) as served:
        result.served = served
        with replay.request_scope(unique("req")):
            try:
                result.value = function(*args, **kwargs)
            except Exception as exc:
                result.error = exc
    result.events = [orjson.loads(line) for line in sink.lines]
    return result


def comparable(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events as replay compares them: without times, durations and ids."""
    return [{k: v for k, v in event.items() if k not in IGNORED} for event in events]


def assert_same_calls(recorded: Run, again: Run) -> None:
    """The replay made every recorded call, nothing else, and wrote equal events."""
    assert again.served is not None
    assert again.served.unrecorded == []
    assert again.served.unused == []
    assert comparable(again.db_calls) == comparable(recorded.db_calls)
