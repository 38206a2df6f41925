"""The network seal: no connect and no name lookup leaves a sealed replay, whoever tries."""

from __future__ import annotations

import _socket
import asyncio
import http.client
import os
import socket
import tempfile
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import requests
import urllib3

from pytest_replay.capture.api import configure, request_scope, shutdown
from pytest_replay.capture.http import install_http_capture, uninstall_http_capture
from pytest_replay.capture.sinks import MemorySink
from pytest_replay.replay.external import UnrecordedCall
from pytest_replay.replay.http_serve import serve_http
from pytest_replay.replay.network import UnrecordedLookup, seal_network

if TYPE_CHECKING:  # conftest is pytest's to import; the fixtures hand out its objects
    from tests.external.conftest import LocalServer

EARLY_GETADDRINFO = socket.getaddrinfo  # as code that imported it before any seal holds it


def current() -> dict[str, Any]:
    return {"connect": socket.socket.connect, "connect_ex": socket.socket.connect_ex,
            "sendto": socket.socket.sendto, "sendmsg": socket.socket.sendmsg,
            "create_connection": socket.create_connection, "getaddrinfo": socket.getaddrinfo,
            "gethostbyname": socket.gethostbyname,
            "gethostbyname_ex": socket.gethostbyname_ex,
            "_getaddrinfo": _socket.getaddrinfo, "_gethostbyname": _socket.gethostbyname}


ORIGINALS: dict[str, Any] = current()


def raw_connect(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.connect(("127.0.0.1", port))


def raw_connect_ex(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.connect_ex(("127.0.0.1", port))


def datagram(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"ping", ("127.0.0.1", port))


def datagram_msg(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendmsg([b"ping"], [], 0, ("127.0.0.1", port))


ATTEMPTS: dict[str, tuple[Callable[[int], object], type[UnrecordedCall], str]] = {
    "connect": (raw_connect, UnrecordedCall, "network connect 127.0.0.1:{port}"),
    "connect_ex": (raw_connect_ex, UnrecordedCall, "network connect 127.0.0.1:{port}"),
    "sendto": (datagram, UnrecordedCall, "network send a datagram to 127.0.0.1:{port}"),
    "sendmsg": (datagram_msg, UnrecordedCall, "network send a datagram to 127.0.0.1:{port}"),
    "getaddrinfo-imported-early": (lambda port: EARLY_GETADDRINFO("example.com", port),
                                   UnrecordedLookup, "network resolve example.com"),
    "create_connection": (lambda port: socket.create_connection(("127.0.0.1", port)),
                          UnrecordedCall, "network connect 127.0.0.1:{port}"),
    "getaddrinfo": (lambda port: socket.getaddrinfo("localhost", port), UnrecordedLookup,
                    "network resolve localhost"),
    "gethostbyname": (lambda port: socket.gethostbyname("example.com"), UnrecordedLookup,
                      "network resolve example.com"),
    "gethostbyname_ex": (lambda port: socket.gethostbyname_ex("example.com"),
                         UnrecordedLookup, "network resolve example.com"),
}


@pytest.mark.parametrize("name", list(ATTEMPTS))
def test_each_way_out_fails_fast_and_is_reported(name: str, http_server: LocalServer) -> None:
    attempt, kind, request = ATTEMPTS[name]
    with seal_network() as net, pytest.raises(kind) as refused:
        attempt(http_server.port)
    expected = request.format(port=http_server.port)
    assert str(refused.value).startswith(f"unrecorded external call: {expected}")
    assert isinstance(refused.value, OSError)
    assert [str(e) for e in net.unrecorded] == [str(refused.value)]
    assert http_server.connections == 0
    assert current() == ORIGINALS


def test_lookups_look_like_resolver_failures() -> None:
    with seal_network(), pytest.raises(socket.gaierror):
        socket.getaddrinfo("example.com", 443)


def test_clients_we_do_not_patch_see_a_connection_failure(http_server: LocalServer) -> None:
    with seal_network() as net:
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{http_server.url}/json", timeout=5)
        with pytest.raises(httpx.ConnectError, match="unrecorded external call"):
            httpx.get(f"{http_server.url}/json")
        with pytest.raises(UnrecordedCall):
            connection = http.client.HTTPConnection("127.0.0.1", http_server.port)
            connection.request("GET", "/json")

        async def open_stream() -> None:
            await asyncio.open_connection("127.0.0.1", http_server.port)

        with pytest.raises(UnrecordedCall):
            asyncio.run(open_stream())
    asked = [e.request for e in net.unrecorded]
    assert asked == ["resolve 127.0.0.1"] + [f"connect 127.0.0.1:{http_server.port}"] * 3
    assert http_server.connections == 0 and http_server.seen == []


def test_unix_sockets_stay_allowed() -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "s")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(path)
            listener.listen(1)
            with seal_network() as net, socket.socket(socket.AF_UNIX) as client:
                client.connect(path)
                accepted, _ = listener.accept()
                accepted.close()
    assert net.unrecorded == []


def test_everything_is_restored_on_error_and_seals_nest() -> None:
    with pytest.raises(KeyError), seal_network() as outer:
        with seal_network() as inner:
            with pytest.raises(UnrecordedCall):
                raw_connect(9)
            assert current() != ORIGINALS
        assert current() != ORIGINALS  # the outer seal still holds
        with pytest.raises(UnrecordedCall):
            socket.create_connection(("127.0.0.1", 9))
        raise KeyError("the replayed code failed")
    assert current() == ORIGINALS
    assert len(inner.unrecorded) == 1 and len(outer.unrecorded) == 1


def test_threads_started_inside_the_replay_are_sealed(http_server: LocalServer) -> None:
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            raw_connect(http_server.port)
        except OSError as exc:
            errors.append(exc)

    with seal_network() as net:
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join(timeout=5)
    assert len(errors) == 1 and isinstance(errors[0], UnrecordedCall)
    assert net.unrecorded == errors  # reported to the open seal
    assert http_server.connections == 0


def test_each_retry_of_a_refused_call_is_reported(http_server: LocalServer) -> None:
    pool = urllib3.PoolManager(retries=urllib3.Retry(3, backoff_factor=0))
    try:
        with seal_network() as net, pytest.raises(urllib3.exceptions.MaxRetryError):
            pool.request("GET", f"{http_server.url}/json")
    finally:
        pool.clear()
    assert [e.request for e in net.unrecorded] == ["resolve 127.0.0.1"] * 4  # 1 + 3 retries


def test_served_http_opens_no_socket_under_the_seal(http_server: LocalServer) -> None:
    def calls() -> list[int]:
        with requests.Session() as session, httpx.Client() as client:
            statuses = [session.get(f"{http_server.url}/json", timeout=5).status_code,
                        client.get(f"{http_server.url}/count").status_code]
        pool = urllib3.PoolManager()
        statuses.append(pool.request("GET", f"{http_server.url}/binary").status)
        pool.clear()
        connection = http.client.HTTPConnection("127.0.0.1", http_server.port)
        connection.request("GET", "/json")
        statuses.append(connection.getresponse().status)
        connection.close()

        async def async_call() -> int:
            async with httpx.AsyncClient() as client:
                return (await client.get(f"{http_server.url}/gzip")).status_code

        statuses.append(asyncio.run(async_call()))
        return statuses

    sink = MemorySink()
    configure(sink=sink)
    install_http_capture()
    try:
        with request_scope("req_seal"):
            recorded_statuses = calls()
            recorded = [e for e in sink.events() if e["event_type"] == "http_call"]
            before = http_server.connections
            with seal_network() as net, serve_http(recorded) as served:
                assert calls() == recorded_statuses
    finally:
        uninstall_http_capture()
        shutdown()
    assert net.unrecorded == [] and served.unrecorded == []
    assert served.served == 5
    assert http_server.connections == before
