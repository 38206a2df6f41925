"""Redis against the real server: commands and pipelines captured, then served after FLUSH."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import redis
import redis.exceptions
from redis.backoff import NoBackoff
from redis.retry import Retry

import pytest_replay as replay
from pytest_replay.replay.external import UnrecordedCall
from tests.external.db_servers import (
    REDIS_PORT,
    assert_same_calls,
    redis_key_prefix,
    replayed,
    run,
)

pytestmark = pytest.mark.database


@pytest.fixture
def keys() -> Iterator[str]:
    """A key prefix of this test's own; every key under it is deleted after."""
    yield from redis_key_prefix("test")


def flush(prefix: str) -> None:
    """Delete every key of the test, for real."""
    client = redis.Redis(host="127.0.0.1", port=REDIS_PORT)
    try:
        found = list(client.scan_iter(f"{prefix}*"))
        assert found, "the recording run should have left keys behind"
        client.delete(*found)
        assert not list(client.scan_iter(f"{prefix}*"))
    finally:
        client.close()


@replay.traced
def cart(port: int, prefix: str) -> dict[str, Any]:
    """A realistic mix: strings, counters, hashes, sets, a pipeline, an error."""
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)
    client.set(f"{prefix}:user", "ann", ex=300)
    client.hset(f"{prefix}:profile", mapping={"name": "ann", "password": "hunter2"})
    visits = client.incr(f"{prefix}:visits")
    client.sadd(f"{prefix}:tags", "a", "b")
    pipe = client.pipeline()
    pipe.get(f"{prefix}:user")
    pipe.hgetall(f"{prefix}:profile")
    pipe.incrby(f"{prefix}:visits", 5)
    piped = pipe.execute()
    try:
        client.lpush(f"{prefix}:user", "x")  # WRONGTYPE: the key holds a string
    except redis.exceptions.ResponseError as exc:
        error = str(exc).split(" ")[0]
    return {"visits": visits, "piped": piped, "tags": client.smembers(f"{prefix}:tags"),
            "error": error, "missing": client.get(f"{prefix}:nothing"),
            "ttl": client.ttl(f"{prefix}:user") > 0}


def test_commands_and_pipelines_are_captured(keys: str) -> None:
    result = run(cart, REDIS_PORT, keys)
    assert result.error is None, result.error
    assert result.value["piped"] == [b"ann", {b"name": b"ann", b"password": b"hunter2"}, 6]
    events = result.db_calls
    assert all(e["system"] == "redis" for e in events)
    first = events[0]
    assert first["operation"] == "command"
    assert first["statement"] == f"SET {keys}:user ann EX 300"
    assert first["parameters"] == [f"{keys}:user", "ann", "EX", 300]
    assert first["result"] is True
    hset = events[1]
    assert hset["statement"] == f"HSET {keys}:profile name ann password [REDACTED]"
    assert hset["parameters"][-1] == {"$type": "redacted", "rule": "key"}
    pipeline = next(e for e in events if e["operation"] == "pipeline")
    assert pipeline["statement"].startswith(f"MULTI: GET {keys}:user; HGETALL {keys}:profile")
    assert pipeline["parameters"][0] == ["GET", f"{keys}:user"]
    failed = next(e for e in events if "error_type" in e)
    assert failed["error_type"] == "ResponseError"
    assert failed["error_module"] == "redis.exceptions"
    assert failed["message"].startswith("WRONGTYPE")


def test_replay_after_the_keys_are_flushed_gives_the_same_answers(keys: str) -> None:
    recorded = run(cart, REDIS_PORT, keys)
    assert recorded.error is None, recorded.error
    flush(keys)
    again = replayed(recorded.db_calls, cart, 1, keys)  # nothing listens on port 1
    assert again.error is None, again.error
    # the hash's secret field was never written to the trace (its name is judged, bytes
    # keys too): replay serves the redaction marker in its place, and everything else
    expected = dict(recorded.value)
    expected["piped"] = [b"ann", {b"name": b"ann", b"password": "[REDACTED]"}, 6]
    assert again.value == expected
    assert b"hunter2" not in orjson.dumps(recorded.db_calls)
    assert_same_calls(recorded, again)


CLIENT: list[redis.Redis] = []
"""The application's long-lived client, made at import time in real code."""


@replay.traced
def read_user(prefix: str) -> Any:
    return CLIENT[0].get(f"{prefix}:user")


def test_a_client_made_before_the_replay_is_served_and_never_connects(keys: str) -> None:
    CLIENT[:] = [redis.Redis(host="127.0.0.1", port=REDIS_PORT)]
    CLIENT[0].set(f"{keys}:user", "bo")
    recorded = run(read_user, keys)
    assert recorded.value == b"bo"
    flush(keys)
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1,
                       retry=Retry(NoBackoff(), 0))
    CLIENT[:] = [dead]
    again = replayed(recorded.db_calls, read_user, keys)
    assert again.value == b"bo"
    assert_same_calls(recorded, again)
    with pytest.raises(redis.exceptions.ConnectionError):
        dead.get(f"{keys}:user")  # after the replay the client is real again: port 1 is shut
    CLIENT.clear()


def test_an_unrecorded_command_is_refused_with_its_name(keys: str) -> None:
    recorded = run(cart, REDIS_PORT, keys)

    @replay.traced
    def other(prefix: str) -> Any:
        return redis.Redis(port=1).get(f"{prefix}:other")

    again = replayed(recorded.db_calls, other, keys)
    assert isinstance(again.error, UnrecordedCall)
    assert "unrecorded database call: redis command" in str(again.error)
    assert f"GET {keys}:other" in str(again.error)
    assert again.served is not None and len(again.served.unrecorded) == 1


def test_a_recorded_redis_error_is_raised_as_redis_own_class(keys: str) -> None:
    @replay.traced
    def wrong(port: int, prefix: str) -> Any:
        client = redis.Redis(port=port)
        client.set(f"{prefix}:s", "1")
        return client.hgetall(f"{prefix}:s")

    recorded = run(wrong, REDIS_PORT, keys)
    assert isinstance(recorded.error, redis.exceptions.ResponseError)
    flush(keys)
    again = replayed(recorded.db_calls, wrong, 1, keys)
    assert type(again.error) is redis.exceptions.ResponseError
    assert str(again.error) == str(recorded.error)
    assert_same_calls(recorded, again)
