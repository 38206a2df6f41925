"""Serving a replay's outside calls stays cheap: nothing rebuilt or looked up again per replay.

The servers keep per process what does not change between replays (vcrpy's
stub classes and patch list, which drivers are installed, the chance
generator until a draw needs it); these tests check that what they serve
and restore is still exactly what a fresh build would give.
"""

from __future__ import annotations

import hashlib
import http.client
import random
import socket
import sys
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import urllib3
import urllib3.connection
import urllib3.connectionpool
import vcr.stubs

from pytest_replay.capture.api import configure, request_scope
from pytest_replay.capture.db import DRIVERS
from pytest_replay.capture.sinks import MemorySink
from pytest_replay.replay.db_serve import serve_database
from pytest_replay.replay.determinism import serve_nondeterminism
from pytest_replay.replay.external import UnrecordedCall
from pytest_replay.replay.http_serve import serve_http
from pytest_replay.replay.network import seal_network

ITEMS = "https://api.example.test/v1/items"
NOWHERE = "http://127.0.0.1:9/nothing"
REAL_HTTPS = http.client.HTTPSConnection
PATCHED_BY_VCRPY: tuple[tuple[Any, str], ...] = (
    (http.client, "HTTPConnection"), (http.client, "HTTPSConnection"),
    (urllib3.connection, "HTTPConnection"), (urllib3.connection, "HTTPSConnection"),
    (urllib3.connection, "VerifiedHTTPSConnection"),
    (urllib3.connectionpool, "is_connection_dropped"),
    (urllib3.connectionpool.HTTPConnectionPool, "ConnectionCls"),
    (urllib3.connectionpool.HTTPConnectionPool, "_get_conn"),
    (urllib3.connectionpool.HTTPConnectionPool, "_new_conn"),
    (urllib3.connectionpool.HTTPSConnectionPool, "ConnectionCls"),
    (urllib3.connectionpool.HTTPSConnectionPool, "_get_conn"),
    (urllib3.connectionpool.HTTPSConnectionPool, "_new_conn"),
    (httpx.HTTPTransport, "handle_request"), (httpx.AsyncHTTPTransport, "handle_async_request"),
    (httpx.MockTransport, "handle_request"), (vcr.stubs, "parse_headers"),
)
_ABSENT = object()


def answer(method: str, url: str, body: str = '{"ok": true}') -> dict[str, Any]:
    """A recorded ``http_call`` as capture writes it."""
    return {"event_type": "http_call", "method": method, "url": url, "request_headers": {},
            "request_body": None, "status": 200,
            "response_headers": {"Content-Type": "application/json"}, "response_body": body}


def raw_state() -> list[Any]:
    """What each attribute vcrpy patches holds right now (absent ones too)."""
    return [vars(owner).get(name, _ABSENT) for owner, name in PATCHED_BY_VCRPY]


@contextmanager
def module_lookups() -> Iterator[list[str]]:
    """The names of modules the import system looks for while the block runs."""
    names: list[str] = []

    class Watcher:
        @staticmethod
        def find_spec(name: str, path: Any = None, target: Any = None) -> None:
            names.append(name)

    sys.meta_path.insert(0, Watcher)
    try:
        yield names
    finally:
        sys.meta_path.remove(Watcher)


def https_clients() -> list[bytes]:
    connection = http.client.HTTPSConnection("api.example.test")
    assert http.client.HTTPSConnection is not REAL_HTTPS  # the stub is back after building
    try:
        connection.request("GET", "/v1/items")
        bodies = [connection.getresponse().read()]
    finally:
        connection.close()
    with urllib.request.urlopen(ITEMS) as opened:
        bodies.append(opened.read())
    bodies.append(requests.get(ITEMS, timeout=5).content)
    bodies.append(httpx.get(ITEMS).content)
    return bodies


# -- HTTP --------------------------------------------------------------------------------


def test_https_clients_are_served_and_the_real_classes_come_back() -> None:
    before = raw_state()
    events = [answer("GET", ITEMS, f'{{"n": {n}}}') for n in range(4)]

    with seal_network() as net, serve_http(events) as served:
        bodies = https_clients()

    assert bodies == [b'{"n": 0}', b'{"n": 1}', b'{"n": 2}', b'{"n": 3}']
    assert (served.served, served.unrecorded, served.unused) == (4, [], [])
    assert net.unrecorded == []  # no socket opened, no name looked up
    assert http.client.HTTPSConnection is REAL_HTTPS
    assert raw_state() == before


def test_every_patched_attribute_is_restored_after_each_serve() -> None:
    before = raw_state()
    assert "_get_conn" not in vars(urllib3.connectionpool.HTTPSConnectionPool)
    for _round in range(3):
        with serve_http([answer("GET", NOWHERE)]):
            assert raw_state() != before
            with urllib3.PoolManager() as pool:
                assert pool.request("GET", NOWHERE).data == b'{"ok": true}'
        assert raw_state() == before


def test_a_second_serve_looks_for_no_module() -> None:
    events = [answer("GET", ITEMS, f'{{"n": {n}}}') for n in range(4)]
    with serve_http(events):
        https_clients()  # the first serve may import what the clients need

    with module_lookups() as looked_for, serve_http(events) as served:
        https_clients()

    assert looked_for == []  # vcrpy alone looked for 14 absent client libraries per replay
    assert served.served == 4


@pytest.mark.parametrize("client", ["http.client", "urllib", "requests", "httpx"])
def test_an_empty_recording_refuses_each_client_naming_method_and_url(client: str) -> None:
    calls: dict[str, Callable[[], object]] = {
        "http.client": lambda: _http_client_get(NOWHERE),
        "urllib": lambda: urllib.request.urlopen(NOWHERE),
        "requests": lambda: requests.get(NOWHERE, timeout=5),
        "httpx": lambda: httpx.get(NOWHERE),
    }
    with seal_network() as net, serve_http([]) as served, pytest.raises(OSError):
        calls[client]()

    assert [str(refused) for refused in served.unrecorded] == [
        f"unrecorded external call: http GET {NOWHERE} (the recording holds no HTTP call)"]
    assert isinstance(served.unrecorded[0], UnrecordedCall)
    assert net.unrecorded == []  # refused by the HTTP server, before any socket


def _http_client_get(url: str) -> bytes:
    parts = urllib3.util.parse_url(url)
    connection = http.client.HTTPConnection(parts.host or "", parts.port)
    try:
        connection.request("GET", parts.path or "/")
        return connection.getresponse().read()
    finally:
        connection.close()


def test_a_target_changed_between_serves_is_patched_anew(monkeypatch: pytest.MonkeyPatch) -> None:
    with serve_http([answer("GET", NOWHERE)]), urllib3.PoolManager() as pool:
        pool.request("GET", NOWHERE)  # the patch list is built around the real _get_conn
    pools = urllib3.connectionpool.HTTPConnectionPool
    real = vars(pools)["_get_conn"]
    seen: list[object] = []

    def counting_get_conn(pool: Any, timeout: Any = None, **kwargs: Any) -> Any:
        seen.append(pool)
        return real(pool, timeout, **kwargs)

    monkeypatch.setattr(pools, "_get_conn", counting_get_conn)
    with serve_http([answer("GET", NOWHERE)]) as served, urllib3.PoolManager() as pool:
        assert pool.request("GET", NOWHERE).data == b'{"ok": true}'

    assert len(seen) == 1  # vcrpy's wrapper calls the _get_conn in place now, not the old one
    assert served.served == 1
    assert vars(pools)["_get_conn"] is counting_get_conn


def test_the_served_answer_is_captured_with_its_headers_serve_after_serve() -> None:
    """The stub classes are instrumented once; each serve still writes the whole call."""
    sink = MemorySink()
    configure(sink=sink)  # the suite's fixture shuts capture down again
    event = answer("GET", NOWHERE)
    event["response_headers"] = {"Content-Type": "application/json", "X-Request": "r1"}
    for _serve in range(2):
        with serve_http([event]) as served, request_scope("req_headers"):
            assert _http_client_get(NOWHERE) == b'{"ok": true}'
        assert served.served == 1
    calls = [e for e in sink.events() if e["event_type"] == "http_call"]
    assert [c["response_headers"] for c in calls] == [
        {"Content-Type": "application/json", "X-Request": "r1"}] * 2


# -- the network seal --------------------------------------------------------------------


def test_the_seal_stands_in_for_whatever_the_socket_module_holds_now(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Stand-ins are made once per function; a function replaced since gets its own."""
    with seal_network():
        pass
    looked_up: list[str] = []

    def own_lookup(host: str, *args: Any, **kwargs: Any) -> list[Any]:
        looked_up.append(host)
        return []

    monkeypatch.setattr(socket, "getaddrinfo", own_lookup)
    with seal_network() as net:
        assert socket.getaddrinfo.__wrapped__ is own_lookup  # type: ignore[attr-defined]
        with pytest.raises(socket.gaierror):
            socket.getaddrinfo("example.test", 80)
    assert socket.getaddrinfo is own_lookup
    assert looked_up == []
    assert [str(call) for call in net.unrecorded] == [
        "unrecorded external call: network resolve example.test "
        "(the replay is sealed from the network)"]


# -- databases ---------------------------------------------------------------------------


def test_a_missing_driver_is_looked_for_once(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    monkeypatch.setitem(DRIVERS, "redis", "telemetry_replay_absent_driver")
    monkeypatch.syspath_prepend(str(tmp_path))  # a new import path: drivers are looked up again
    recorded = [{"event_type": "db_call", "system": "sqlite", "operation": "execute",
                 "statement": "SELECT 1", "parameters": None, "rowcount": -1,
                 "lastrowid": 0, "description": ["1"], "rows": [[1]], "exhausted": True}]
    import sqlite3

    with module_lookups() as looked_for:
        for _replay in range(3):
            with serve_database(recorded) as served:
                connection = sqlite3.connect("shop.db")
                assert connection.execute("SELECT 1").fetchall() == [(1,)]
                connection.close()
            assert (served.served, served.unrecorded, served.unused) == (1, [], [])

    assert looked_for.count("telemetry_replay_absent_driver") == 1


# -- chance ------------------------------------------------------------------------------


def test_unrecorded_draws_come_from_the_request_seeded_generator_in_call_order() -> None:
    recorded_uuid = uuid.UUID("12345678-1234-4234-8234-123456789abc")
    recorded = [{"event_type": "nondeterminism", "source": "uuid.uuid4",
                 "value": {"$type": "uuid", "value": str(recorded_uuid)}}]
    seed = int.from_bytes(hashlib.sha256(b"req_seeded").digest()[:8], "big")
    expected = random.Random(seed)
    expected_draw = expected.random()
    expected_uuid = uuid.UUID(int=expected.getrandbits(128), version=4)

    configure(sink=MemorySink())  # a sampled request (the suite's fixture shuts it down)
    draws: list[Any] = []
    for _replay in range(2):
        with serve_nondeterminism(recorded, "req_seeded") as served, request_scope("req_seeded"):
            draws.append((uuid.uuid4(), random.random(), uuid.uuid4()))
        assert served.served == 3 and served.unused == []

    assert draws == [(recorded_uuid, expected_draw, expected_uuid)] * 2
