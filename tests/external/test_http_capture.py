"""HTTP capture against a real server on 127.0.0.1, one test per behaviour."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import re
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import requests
import urllib3

from pytest_replay.capture.api import configure, request_scope, shutdown
from pytest_replay.capture.http import (
    REDACTED_CARD,
    HttpCaptureConfig,
    body_fields,
    install_http_capture,
    redact_headers,
    redact_url,
    uninstall_http_capture,
)
from pytest_replay.capture.redact import Redaction
from pytest_replay.capture.runtime import RUNTIME
from pytest_replay.capture.sinks import MemorySink

if TYPE_CHECKING:  # conftest is pytest's to import; the fixtures hand out its objects
    from tests.external.conftest import LocalServer

def http_calls(sink: MemorySink) -> list[dict[str, Any]]:
    return [e for e in sink.events() if e["event_type"] == "http_call"]


# -- one event per call, for each client ------------------------------------------------


def test_requests_call_is_one_event_with_request_and_answer(
        capture: MemorySink, http_server: LocalServer) -> None:
    with request_scope("req_a"), requests.Session() as session:
        response = session.post(f"{http_server.url}/echo?page=2", json={"item": 7})
    assert response.json() == {"item": 7}
    [event] = http_calls(capture)  # requests -> urllib3 -> http.client: still one event
    assert event["correlation_id"] == "req_a"
    assert event["method"] == "POST"
    assert event["url"] == f"{http_server.url}/echo?page=2"
    assert event["request_headers"]["Content-Type"] == "application/json"
    assert json.loads(event["request_body"]) == {"item": 7}
    assert event["status"] == 200
    assert event["response_headers"]["Content-Type"] == "application/json"
    assert event["response_body"] == response.text
    assert isinstance(event["duration_ns"], int) and event["duration_ns"] > 0
    assert "error_type" not in event


def test_httpx_sync_and_async_clients_are_captured(
        capture: MemorySink, http_server: LocalServer) -> None:
    async def fetch() -> str:
        async with httpx.AsyncClient() as client:
            return (await client.get(f"{http_server.url}/json?via=async")).text

    with request_scope("req_h"):
        with httpx.Client() as client:
            sync_text = client.put(f"{http_server.url}/echo", content=b"plain words").text
        async_text = asyncio.run(fetch())
    put, get = http_calls(capture)
    assert (put["method"], put["request_body"], put["response_body"]) == (
        "PUT", "plain words", sync_text)
    assert put["request_headers"]["Host"] == f"127.0.0.1:{http_server.port}"
    assert (get["method"], get["url"], get["response_body"]) == (
        "GET", f"{http_server.url}/json?via=async", async_text)


def test_urllib3_pool_manager_is_captured(capture: MemorySink, http_server: LocalServer) -> None:
    pool = urllib3.PoolManager()
    try:
        with request_scope("req_u"):
            answer = pool.request("GET", f"{http_server.url}/chunked")
    finally:
        pool.clear()
    [event] = http_calls(capture)
    assert event["url"] == f"{http_server.url}/chunked"
    assert event["response_body"] == answer.data.decode()
    # hop-by-hop: a served answer has no Transfer-Encoding, so the event leaves it out
    assert "Transfer-Encoding" not in event["response_headers"]


def test_http_client_gives_the_body_back_to_the_application(
        capture: MemorySink, http_server: LocalServer) -> None:
    with request_scope("req_c"):
        connection = http.client.HTTPConnection("127.0.0.1", http_server.port)
        connection.request("POST", "/echo", body='{"n": 1}',
                           headers={"Content-Type": "application/json"})
        first = connection.getresponse()
        first_body = first.read()
        connection.request("GET", "/json")  # keep-alive: the connection is reusable
        second_body = connection.getresponse().read()
        connection.close()
        via_urllib = urllib.request.urlopen(f"{http_server.url}/json?u=1").read()
    assert first_body == b'{"n": 1}'
    assert json.loads(second_body)["path"] == "/json"
    events = http_calls(capture)
    assert [e["response_body"] for e in events] == [
        first_body.decode(), second_body.decode(), via_urllib.decode()]
    assert events[0]["request_body"] == '{"n": 1}'
    assert events[2]["url"] == f"{http_server.url}/json?u=1"
    assert len(http_server.seen) == 3


def test_http_client_leaves_a_chunked_stream_unread(
        capture: MemorySink, http_server: LocalServer) -> None:
    with request_scope("req_s"):
        connection = http.client.HTTPConnection("127.0.0.1", http_server.port)
        connection.request("GET", "/chunked")
        body = connection.getresponse().read()
        connection.close()
    assert body == b'{"chunked": true}'
    [event] = http_calls(capture)
    assert event["response_body"] is None
    assert event["response_body_skipped"] == "stream"


def test_redirects_are_one_event_per_hop(capture: MemorySink, http_server: LocalServer) -> None:
    with request_scope("req_r"):
        requests.get(f"{http_server.url}/redirect", timeout=5)
        httpx.get(f"{http_server.url}/redirect", follow_redirects=True)
    events = http_calls(capture)
    assert [(e["url"].removeprefix(http_server.url), e["status"]) for e in events] == [
        ("/redirect", 302), ("/json?from=redirect", 200)] * 2


def test_a_failed_call_records_the_error_without_addresses(
        capture: MemorySink, closed_port: int) -> None:
    with request_scope("req_e"):
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{closed_port}/down", timeout=5)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{closed_port}/down")
    first, second = http_calls(capture)
    assert (first["error_type"], first["error_module"]) == ("ConnectionError",
                                                            "requests.exceptions")
    assert (second["error_type"], second["error_module"]) == ("ConnectError", "httpx")
    assert "Connection refused" in first["error_message"]
    assert not re.search(r"0x[0-9a-f]+", first["error_message"])
    assert "status" not in first and "response_body" not in first


# -- bodies ----------------------------------------------------------------------------


def test_binary_bodies_are_tagged_bytes(capture: MemorySink, http_server: LocalServer) -> None:
    with request_scope("req_b"):
        content = requests.get(f"{http_server.url}/binary", timeout=5).content
    [event] = http_calls(capture)
    assert event["response_body"]["$type"] == "bytes"
    assert base64.b64decode(event["response_body"]["b64"]) == content == http_server.binary


def test_large_bodies_are_truncated_and_marked(
        capture: MemorySink, http_server: LocalServer) -> None:
    install_http_capture(max_body=1000)
    with request_scope("req_t"):
        content = requests.post(f"{http_server.url}/echo", data="é" * 3000, timeout=5,
                                headers={"Content-Type": "text/plain; charset=utf-8"}).content
    [event] = http_calls(capture)
    assert len(content) == 6000
    assert event["response_body_truncated"] is True
    assert event["response_body_length"] == 6000
    assert event["response_body"] == "é" * 500
    assert event["request_body_truncated"] is True and event["request_body_length"] == 6000
    assert len(event["request_body"].encode()) <= 1000


def test_a_streamed_response_is_not_consumed(
        capture: MemorySink, http_server: LocalServer) -> None:
    with request_scope("req_st"):
        with requests.get(f"{http_server.url}/binary", stream=True, timeout=5) as streamed:
            chunks = b"".join(streamed.iter_content(100))
        with httpx.Client() as client, client.stream("GET", f"{http_server.url}/binary") as hx:
            hx_chunks = b"".join(hx.iter_bytes())
    assert chunks == hx_chunks == http_server.binary
    for event in http_calls(capture):
        assert event["response_body"] is None
        assert event["response_body_skipped"] == "stream"


# -- redaction -------------------------------------------------------------------------


def test_secret_headers_query_and_json_body_are_redacted(
        capture: MemorySink, http_server: LocalServer) -> None:
    payload = {"user": "ann", "password": "hunter2",
               "billing": {"card": "4111 1111 1111 1111", "cvv": "123", "amount": 12},
               "card_number": 5555555555554444, "order": 1234567890123}
    with request_scope("req_x"), requests.Session() as session:
        session.get(f"{http_server.url}/secret", timeout=5)  # sets a session cookie
        session.post(f"{http_server.url}/echo?token=abc&api_key=k1&page=2", json=payload,
                     headers={"Authorization": "Bearer s3cr3t", "X-Api-Key": "k2",
                              "X-Session-Token": "t", "X-Trace": "visible"})
    secret, echo = http_calls(capture)
    assert secret["response_headers"]["Set-Cookie"] == "session=[REDACTED]; Path=/"
    assert json.loads(secret["response_body"]) == {"access_token": "[REDACTED]", "user": "ann"}
    headers = echo["request_headers"]
    assert headers["Authorization"] == headers["X-Api-Key"] == "[REDACTED]"
    assert headers["X-Session-Token"] == "[REDACTED]"
    assert headers["Cookie"] == "session=[REDACTED]"
    assert headers["X-Trace"] == "visible"
    assert echo["url"] == f"{http_server.url}/echo?token=[REDACTED]&api_key=[REDACTED]&page=2"
    body = json.loads(echo["request_body"])
    assert body == {"user": "ann", "password": "[REDACTED]",
                    "billing": {"card": REDACTED_CARD, "cvv": "[REDACTED]", "amount": 12},
                    "card_number": "[REDACTED]", "order": 1234567890123}
    text = json.dumps(capture.events())
    for leaked in ("hunter2", "s3cr3t", "4111", "5555555555554444", "abc123", "tok-123"):
        assert leaked not in text


def test_redaction_is_idempotent(capture: MemorySink) -> None:
    url = "https://user:pw@api.test/pay?token=abc&card=4111-1111-1111-1111&x=1#frag"
    once = redact_url(url)
    assert once == "https://user:[REDACTED]@api.test/pay?token=[REDACTED]&card=" + (
        REDACTED_CARD + "&x=1#frag")
    assert redact_url(once) == once
    headers = [("Cookie", "a=1; b=2"), ("Set-Cookie", "sid=x; Path=/; HttpOnly")]
    redacted = redact_headers(headers, response=True)
    assert redacted == {"Cookie": "a=[REDACTED]; b=[REDACTED]",
                        "Set-Cookie": "sid=[REDACTED]; Path=/; HttpOnly"}
    assert redact_headers(list(redacted.items()), response=True) == redacted
    body = body_fields("request", b'{"password": "x", "note": "card 4111111111111111"}', "")
    assert body_fields("request", body["request_body"], "") == body
    form = body_fields("request", "user=a&password=b", "application/x-www-form-urlencoded")
    assert form == {"request_body": "user=a&password=[REDACTED]"}
    not_a_card = body_fields("request", "order 4111111111111112", "text/plain")
    assert not_a_card == {"request_body": "order 4111111111111112"}  # fails the Luhn check


def test_redaction_off_keeps_everything(http_server: LocalServer) -> None:
    sink = MemorySink()
    configure(sink=sink, redact=Redaction.off())
    install_http_capture()
    try:
        with request_scope("req_off"):
            requests.get(f"{http_server.url}/json?token=abc", timeout=5,
                         headers={"Authorization": "Bearer open"})
    finally:
        uninstall_http_capture()
        shutdown()
    [event] = http_calls(sink)
    assert event["url"].endswith("?token=abc")
    assert event["request_headers"]["Authorization"] == "Bearer open"


# -- what is captured, and when --------------------------------------------------------


def test_excluded_hosts_are_not_captured(capture: MemorySink, http_server: LocalServer) -> None:
    install_http_capture(exclude_hosts=["127.0.0.1"])
    with request_scope("req_ex"):
        requests.get(f"{http_server.url}/json", timeout=5)
    assert http_calls(capture) == []
    assert len(http_server.seen) == 1
    config = HttpCaptureConfig(["*.example.com", "API.test"], 10)
    assert config.excluded("https://a.b.example.com/x")
    assert config.excluded("http://api.test:8080/")
    assert not config.excluded("https://example.com.evil/")
    assert not config.excluded("https://other.test/")


def test_nothing_is_captured_outside_a_sampled_request(http_server: LocalServer) -> None:
    sink = MemorySink()
    configure(sink=sink, sample_rate=0.0)
    install_http_capture()
    try:
        requests.get(f"{http_server.url}/json", timeout=5)  # no request scope, no frame
        with request_scope("req_unsampled"):
            requests.get(f"{http_server.url}/json", timeout=5)
        RUNTIME.active = False
        with request_scope("req_inactive"):
            requests.get(f"{http_server.url}/json", timeout=5)
    finally:
        uninstall_http_capture()
        shutdown()
    assert sink.events() == []
    assert len(http_server.seen) == 3


def test_a_failing_redaction_rule_costs_the_event_not_the_call(
        http_server: LocalServer) -> None:
    class Broken:
        def search(self, text: str) -> None:
            raise RuntimeError("bad pattern")

    sink = MemorySink()
    configure(sink=sink, redact=Redaction(patterns=[Broken()]))  # type: ignore[list-item]
    install_http_capture()
    try:
        with request_scope("req_broken"):
            answer = requests.get(f"{http_server.url}/json", timeout=5)
    finally:
        uninstall_http_capture()
        shutdown()
    assert answer.status_code == 200
    assert sink.events() == []
    assert sink.stats.by_reason == {"http_capture": 1}


@pytest.fixture
def installed() -> Iterator[None]:
    install_http_capture()
    try:
        yield
    finally:
        uninstall_http_capture()


def test_install_is_idempotent_and_uninstall_restores(installed: None) -> None:
    install_http_capture()  # a second install changes options only
    assert requests.Session.send.__wrapped__ is not None  # type: ignore[attr-defined]
    assert requests.Session.send.__wrapped__.__name__ == "send"  # type: ignore[attr-defined]
    uninstall_http_capture()
    uninstall_http_capture()
    assert not hasattr(requests.Session.send, "__wrapped__")
    assert not hasattr(httpx.AsyncClient.send, "__wrapped__")
    assert not hasattr(http.client.HTTPConnection.getresponse, "__wrapped__")


def test_concurrent_installs_wrap_once() -> None:
    original = requests.Session.send
    barrier = threading.Barrier(8)

    def install() -> None:
        barrier.wait()
        install_http_capture()

    threads = [threading.Thread(target=install) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    try:
        assert requests.Session.send.__wrapped__ is original  # type: ignore[attr-defined]
    finally:
        uninstall_http_capture()
    assert requests.Session.send is original


def test_importing_capture_imports_no_client_library() -> None:
    code = ("import sys, pytest_replay.capture.http; "
            "print(sorted(m for m in ('requests', 'httpx', 'urllib3', 'http.client', 'vcr', "
            "'responses') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="max_body"):
        install_http_capture(max_body=-1)
    with pytest.raises(TypeError, match="exclude_hosts"):
        install_http_capture(exclude_hosts="api.test")


def test_a_missing_client_library_is_looked_for_again_when_sys_path_changes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_replay.capture import http as capture_http

    name = "telemetry_replay_absent_client"
    assert capture_http._installed(name) is False
    assert capture_http._installed(name) is False  # remembered for this sys.path
    (tmp_path / f"{name}.py").write_text("VERSION = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert capture_http._installed(name) is True  # a new sys.path: looked for again, found
    assert name not in capture_http._MISSING
