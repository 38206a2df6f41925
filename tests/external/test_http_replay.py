"""HTTP replay: record against a real server, stop it, serve everything from the recording."""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import sys
import types
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import pytest
import requests
import responses
import urllib3

from pytest_replay.capture.api import configure, request_scope, shutdown
from pytest_replay.capture.http import (
    http_capture_installed,
    install_http_capture,
    uninstall_http_capture,
)
from pytest_replay.capture.sinks import MemorySink
from pytest_replay.redaction import Redactor, redact_event
from pytest_replay.replay.external import ServedCalls, UnrecordedCall
from pytest_replay.replay.http_serve import HttpCassetteError, HttpOverrides, serve_http
from pytest_replay.replay.network import seal_network

if TYPE_CHECKING:  # conftest is pytest's to import; the fixtures hand out its objects
    from tests.external.conftest import LocalServer

T = TypeVar("T")
VOLATILE = frozenset({"timestamp_ns", "duration_ns", "correlation_id", "trace_id", "service"})
Events = list[dict[str, Any]]


def http_calls(sink: MemorySink) -> Events:
    return [e for e in sink.events() if e["event_type"] == "http_call"]


def comparable(events: Events) -> Events:
    return [{k: v for k, v in e.items() if k not in VOLATILE} for e in events]


@contextmanager
def capturing() -> Iterator[MemorySink]:
    sink = MemorySink()
    configure(sink=sink)
    install_http_capture()
    try:
        with request_scope("req_replay"):
            yield sink
    finally:
        uninstall_http_capture()
        shutdown()


def record(scenario: Callable[[], T]) -> tuple[T, Events]:
    with capturing() as sink:
        result = scenario()
    return result, http_calls(sink)


@contextmanager
def replaying(events: Events, **options: Any) -> Iterator[tuple[ServedCalls, MemorySink]]:
    with capturing() as sink, seal_network() as net, serve_http(events, **options) as served:
        yield served, sink
    assert net.unrecorded == []  # vcrpy's stubs opened no socket


def replay(events: Events, scenario: Callable[[], T], **options: Any
           ) -> tuple[T, ServedCalls, Events]:
    with replaying(events, **options) as (served, sink):
        result = scenario()
    return result, served, http_calls(sink)


# -- each client library: record, stop the server, replay, same events ------------------


def requests_scenario(base: str, refused: int) -> list[Any]:
    out: list[Any] = []
    with requests.Session() as session:
        for answer in (session.get(f"{base}/json?page=2"),
                       session.post(f"{base}/echo", json={"item": 1}),
                       session.get(f"{base}/status/500"),
                       session.get(f"{base}/count"), session.get(f"{base}/count"),
                       session.get(f"{base}/gzip"), session.get(f"{base}/binary"),
                       session.get(f"{base}/redirect"), session.head(f"{base}/json")):
            out.append((answer.status_code, answer.content, answer.headers.get("Content-Type")))
        with pytest.raises(requests.ConnectionError) as refusal:
            session.get(f"http://127.0.0.1:{refused}/down")
        out.append(type(refusal.value))
    return out


def httpx_scenario(base: str, refused: int) -> list[Any]:
    out: list[Any] = []
    with httpx.Client(follow_redirects=True) as client:
        for answer in (client.get(f"{base}/json?page=2"),
                       client.post(f"{base}/echo", json={"item": 1}),
                       client.get(f"{base}/status/500"),
                       client.get(f"{base}/count"), client.get(f"{base}/count"),
                       client.get(f"{base}/gzip"), client.get(f"{base}/binary"),
                       client.get(f"{base}/redirect")):
            out.append((answer.status_code, answer.content, answer.headers.get("content-type")))
        with pytest.raises(httpx.ConnectError) as refusal:
            client.get(f"http://127.0.0.1:{refused}/down")
        out.append(type(refusal.value))
    return out


def httpx_async_scenario(base: str, refused: int) -> list[Any]:
    async def run() -> list[Any]:
        out: list[Any] = []
        async with httpx.AsyncClient() as client:
            for path in ("/json?page=2", "/count", "/count", "/gzip", "/status/500"):
                answer = await client.get(f"{base}{path}")
                out.append((answer.status_code, answer.content))
            answer = await client.post(f"{base}/echo", content=b"raw bytes")
            out.append((answer.status_code, answer.content))
            with pytest.raises(httpx.ConnectError) as refusal:
                await client.get(f"http://127.0.0.1:{refused}/down")
            out.append(type(refusal.value))
        return out

    return asyncio.run(run())


def urllib3_scenario(base: str, refused: int) -> list[Any]:
    pool = urllib3.PoolManager(retries=urllib3.Retry(1, redirect=2))
    out: list[Any] = []
    try:
        for method, path in (("GET", "/json?page=2"), ("GET", "/count"), ("GET", "/count"),
                             ("GET", "/binary"), ("GET", "/chunked"), ("GET", "/redirect"),
                             ("GET", "/status/500")):
            answer = pool.request(method, f"{base}{path}")
            out.append((answer.status, answer.data))
        answer = pool.request("POST", f"{base}/echo", body=b"abc",
                              headers={"Content-Type": "text/plain"})
        out.append((answer.status, answer.data))
        with pytest.raises(urllib3.exceptions.MaxRetryError) as refusal:
            pool.request("GET", f"http://127.0.0.1:{refused}/down")
        out.append(type(refusal.value))
    finally:
        pool.clear()
    return out


def http_client_scenario(base: str, refused: int) -> list[Any]:
    port = int(base.rsplit(":", 1)[1])
    out: list[Any] = []
    connection = http.client.HTTPConnection("127.0.0.1", port)
    try:
        for method, path, body in (("GET", "/json?page=2", None), ("GET", "/count", None),
                                   ("GET", "/count", None), ("POST", "/echo", b'{"a": 1}'),
                                   ("GET", "/status/500", None)):
            connection.request(method, path, body=body,
                               headers={"Content-Type": "application/json"})
            answer = connection.getresponse()
            out.append((answer.status, answer.read(), answer.getheader("Content-Type")))
    finally:
        connection.close()
    with urllib.request.urlopen(f"{base}/json?via=urllib") as opened:
        out.append(opened.read())
    failing = http.client.HTTPConnection("127.0.0.1", refused)
    with pytest.raises(ConnectionRefusedError) as refusal:
        failing.request("GET", "/down")
        failing.getresponse()
    failing.close()
    out.append(type(refusal.value))
    return out


SCENARIOS: dict[str, Callable[[str, int], list[Any]]] = {
    "requests": requests_scenario,
    "httpx": httpx_scenario,
    "httpx-async": httpx_async_scenario,
    "urllib3": urllib3_scenario,
    "http.client": http_client_scenario,
}


@pytest.mark.parametrize("library", list(SCENARIOS))
def test_replay_serves_every_call_with_the_server_stopped(
        library: str, http_server: LocalServer, closed_port: int) -> None:
    scenario = SCENARIOS[library]
    first, recorded = record(lambda: scenario(http_server.url, closed_port))
    reached = len(http_server.seen)
    http_server.stop()

    again, served, replayed = replay(recorded, lambda: scenario(http_server.url, closed_port))

    assert again == first  # the application saw the same answers and the same errors
    assert comparable(replayed) == comparable(recorded)
    assert len(recorded) >= reached  # every call that reached the server was recorded
    assert served.unrecorded == [] and served.unused == []
    assert served.served == len(recorded)
    assert any("error_type" in e for e in recorded)


@pytest.mark.parametrize("library", list(SCENARIOS))
def test_nothing_reaches_the_listener_during_replay(
        library: str, http_server: LocalServer, closed_port: int) -> None:
    scenario = SCENARIOS[library]
    _first, recorded = record(lambda: scenario(http_server.url, closed_port))
    connections, seen = http_server.connections, len(http_server.seen)
    assert connections > 0 and seen > 0

    replay(recorded, lambda: scenario(http_server.url, closed_port))  # server still listening

    assert (http_server.connections, len(http_server.seen)) == (connections, seen)


# -- what the recording does not hold --------------------------------------------------


def test_an_unrecorded_request_fails_naming_method_and_url(http_server: LocalServer) -> None:
    _r, recorded = record(lambda: requests.get(f"{http_server.url}/json", timeout=5))
    http_server.stop()
    charge = f"{http_server.url}/charge"

    with replaying(recorded) as (served, sink):
        with pytest.raises(UnrecordedCall) as refused:
            requests.post(charge, json={"amount": 5}, timeout=5)
        with pytest.raises(UnrecordedCall):
            httpx.post(charge, json={"amount": 5})
        requests.get(f"{http_server.url}/json", timeout=5)
        events = http_calls(sink)

    assert str(refused.value).startswith(f"unrecorded external call: http POST {charge}")
    assert "closest recorded call GET" in str(refused.value)
    assert [e.request for e in served.unrecorded] == [f"POST {charge}"] * 2
    assert events[0]["error_type"] == "UnrecordedCall"  # the replayed trace shows the refusal
    assert served.unused == []


def test_bodies_are_matched_cut_where_production_cut_them(http_server: LocalServer) -> None:
    """Production kept 64 KB bodies (``max_body``): replay must cut live requests alike."""
    url, body = f"{http_server.url}/echo", {"notes": "n" * 30_000}
    sink = MemorySink()
    configure(sink=sink)
    install_http_capture(max_body=65_536)
    try:
        with request_scope("req_big"):
            requests.post(url, json=body, timeout=5)
    finally:
        uninstall_http_capture()
        shutdown()
    recorded = http_calls(sink)
    assert "request_body_truncated" not in recorded[0]  # recorded whole
    http_server.stop()

    with replaying(recorded, max_body=65_536) as (served, replayed):
        assert requests.post(url, json=body, timeout=5).status_code == 200
    assert served.unrecorded == []
    assert "request_body_truncated" not in http_calls(replayed)[0]

    # The default 16 KB cuts the live body, which then matches nothing recorded.
    with replaying(recorded), pytest.raises(UnrecordedCall):
        requests.post(url, json=body, timeout=5)


def test_calls_never_made_are_listed_as_unused(http_server: LocalServer) -> None:
    def two_calls() -> None:
        requests.get(f"{http_server.url}/json?n=1", timeout=5)
        requests.get(f"{http_server.url}/json?n=2", timeout=5)

    _r, recorded = record(two_calls)
    recorded[1]["_line"] = 42
    _r2, served, _events = replay(
        recorded, lambda: requests.get(f"{http_server.url}/json?n=1", timeout=5))
    assert served.unused == [f"GET {http_server.url}/json?n=2 (line 42)"]


def test_a_repeated_request_takes_the_next_recorded_answer(http_server: LocalServer) -> None:
    def three() -> list[Any]:
        return [httpx.get(f"{http_server.url}/count").json()["count"] for _ in range(3)]

    counts, recorded = record(three)
    assert counts == [1, 2, 3]
    again, _served, _events = replay(recorded, three)
    assert again == [1, 2, 3]
    with replaying(recorded) as (served, _sink):
        three()
        with pytest.raises(UnrecordedCall, match="already served"):
            httpx.get(f"{http_server.url}/count")
    assert len(served.unrecorded) == 1


# -- redaction: placeholders match today's real secrets ---------------------------------


def test_redacted_requests_match_the_real_secrets_of_the_replay(
        http_server: LocalServer) -> None:
    def login(secret: str) -> Callable[[], list[Any]]:
        def run() -> list[Any]:
            with requests.Session() as session:
                token = session.get(f"{http_server.url}/secret", timeout=5).json()
                answer = session.post(
                    f"{http_server.url}/echo?token={secret}&page=1",
                    json={"password": secret, "card": "4111 1111 1111 1111", "n": 1},
                    headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=5)
                return [token, answer.json()]
        return run

    first, recorded = record(login("prod-secret"))
    assert "prod-secret" not in json.dumps(recorded)
    http_server.stop()
    again, served, replayed = replay(recorded, login("other-secret"))
    assert served.unrecorded == []
    assert comparable(replayed) == comparable(recorded)  # cookie, token, query, body alike
    assert again[0] == {"access_token": "[REDACTED]", "user": "ann"}
    assert first[0]["access_token"] == "tok-123"


def test_secret_shaped_values_under_plain_names_still_match(http_server: LocalServer) -> None:
    def call(key: str) -> int:
        return requests.post(
            f"{http_server.url}/echo?next=https://user:{key}@other.test/x",
            json={"note": f"Bearer {key}", "stripe": f"sk_live_{key}"},
            headers={"X-Debug": f"Bearer {key}"}, timeout=5).status_code

    _r, recorded = record(lambda: call("prodvalue123456"))
    assert "prodvalue123456" not in json.dumps(recorded)
    http_server.stop()
    for rules in (("method", "url", "body"), ("method", "headers")):
        status, served, _events = replay(recorded, lambda: call("othervalue98765"),
                                         match_on=rules)
        assert status == 200 and served.unrecorded == []


def test_tokens_put_in_by_extraction_match_the_live_values(http_server: LocalServer) -> None:
    def signup() -> int:
        return requests.post(
            f"{http_server.url}/echo?email=jane.doe@example.com&page=1",
            json={"email": "jane.doe@example.com", "phone": "+1 555 123 4567", "n": 1},
            headers={"X-Contact": "jane.doe@example.com"}, timeout=5).status_code

    _r, recorded = record(signup)
    redactor = Redactor()
    extracted = [redact_event(event, redactor) for event in recorded]
    assert "jane.doe" not in json.dumps(extracted)  # tokens in URL, header and body
    assert redactor.counts["email"] >= 3
    http_server.stop()
    for rules in (("method", "url", "body"), ("method", "query", "headers")):
        status, served, _events = replay(extracted, signup, match_on=rules)
        assert status == 200 and served.unrecorded == []


# -- matching rules --------------------------------------------------------------------


def test_match_rules_decide_what_counts_as_the_same_request(http_server: LocalServer) -> None:
    def call(query: str, tenant: str, amount: int) -> Callable[[], int]:
        return lambda: requests.post(f"{http_server.url}/echo?{query}", json={"amount": amount},
                                     headers={"X-Tenant": tenant}, timeout=5).status_code

    _r, recorded = record(call("v=1", "acme", 5))
    http_server.stop()

    replay(recorded, call("v=1", "other", 5))  # default rules: method, url, body
    with replaying(recorded) as (served, _sink), pytest.raises(UnrecordedCall) as body_differs:
        call("v=1", "acme", 6)()
    assert "body:" in str(body_differs.value)
    with replaying(recorded, match_on=("method", "path")) as (served, _sink):
        call("v=2", "other", 6)()
    assert served.unrecorded == []
    with replaying(recorded, match_on=("method", "url", "headers")) as (served, _sink):
        with pytest.raises(UnrecordedCall, match="header X-Tenant: 'other' now, 'acme'"):
            call("v=1", "other", 5)()
        call("v=1", "acme", 9)()
    with replaying(recorded, match_on=("method", "query")) as (served, _sink), \
            pytest.raises(UnrecordedCall, match="query"):
        call("v=3", "acme", 5)()
    with pytest.raises(ValueError, match=r"unknown HTTP match rule.*'verb'.*valid rules: method"
                       ), serve_http(recorded, match_on=("verb",)):
        pass


def test_a_truncated_request_body_matches_on_its_head_and_length(
        http_server: LocalServer) -> None:
    def upload(size: int) -> Callable[[], int]:
        return lambda: requests.post(f"{http_server.url}/json", data="x" * size,
                                     timeout=5).status_code

    _r, recorded = record(upload(50_000))
    assert recorded[0]["request_body_truncated"] is True
    assert recorded[0]["request_body_length"] == 50_000
    http_server.stop()
    replay(recorded, upload(50_000))
    with replaying(recorded) as (served, _sink), pytest.raises(UnrecordedCall, match="body"):
        upload(50_001)()
    assert len(served.unrecorded) == 1


# -- overrides -------------------------------------------------------------------------


def test_overrides_answer_first_for_every_client(http_server: LocalServer) -> None:
    _r, recorded = record(lambda: requests.get(f"{http_server.url}/json", timeout=5))
    http_server.stop()
    overrides = HttpOverrides()
    overrides.add("GET", f"{http_server.url}/json", json={"what": "if"})
    overrides.add("POST", f"{http_server.url}/refund", json={"refunded": True}, status=201,
                  headers={"X-Ref": "r1"},
                  match=[responses.matchers.json_params_matcher({"order": 7})])
    overrides.add("GET", re.compile(r".*/down$"), body=ConnectionError("payment API down"))

    async def async_refund() -> int:
        async with httpx.AsyncClient() as client:
            return (await client.post(f"{http_server.url}/refund", json={"order": 7})
                    ).status_code

    with replaying(recorded, overrides=overrides) as (served, _sink):
        assert requests.get(f"{http_server.url}/json", timeout=5).json() == {"what": "if"}
        refund = httpx.post(f"{http_server.url}/refund", json={"order": 7})
        assert (refund.status_code, refund.json(), refund.headers["X-Ref"]) == (
            201, {"refunded": True}, "r1")
        assert asyncio.run(async_refund()) == 201
        with pytest.raises(UnrecordedCall):  # the matcher wants order 7
            requests.post(f"{http_server.url}/refund", json={"order": 8}, timeout=5)
        with pytest.raises(ConnectionError, match="payment API down"):
            requests.get(f"{http_server.url}/down", timeout=5)
    assert overrides.calls[:3] == [f"GET {http_server.url}/json",
                                   f"POST {http_server.url}/refund",
                                   f"POST {http_server.url}/refund"]
    assert served.unused == [f"GET {http_server.url}/json (index 0)"]  # the override won


# -- the outside of serve_http ----------------------------------------------------------


def test_serving_installs_capture_for_its_duration_when_missing(
        http_server: LocalServer) -> None:
    _r, recorded = record(lambda: requests.get(f"{http_server.url}/json", timeout=5))
    assert not http_capture_installed()
    with serve_http(recorded) as served:
        assert http_capture_installed()
        with pytest.raises(UnrecordedCall):
            requests.get(f"{http_server.url}/other", timeout=5)
    assert not http_capture_installed()
    assert len(served.unrecorded) == 1
    with serve_http(recorded), pytest.raises(RuntimeError, match="already serving"), \
            serve_http(recorded):
        pass


# -- bad recordings: a clear error naming the event ------------------------------------


def good_call() -> dict[str, Any]:
    return {"event_type": "http_call", "method": "GET", "url": "http://127.0.0.1:1/x",
            "request_headers": {}, "request_body": None, "status": 200,
            "response_headers": {"Content-Type": "application/octet-stream"},
            "response_body": {"$type": "bytes", "b64": "AAEC/w=="}}


@pytest.mark.parametrize(("change", "field", "problem"), [
    ({"method": None}, "method", "expected an HTTP method"),
    ({"url": "ftp://x/y"}, "url", "absolute http"),
    ({"status": "200"}, "status", "expected an HTTP status code"),
    ({"event_type": "db_call"}, "event_type", "expected 'http_call'"),
    ({"response_headers": ["a"]}, "response_headers", "header name -> value"),
    ({"response_body": {"$type": "pickle", "data": "x"}}, "response_body",
     "unknown body encoding 'pickle'"),
    ({"response_body": {"$type": "bytes", "b64": "not base64!"}}, "response_body",
     "invalid base64"),
    ({"response_body": 12}, "response_body", "expected text, null or a tagged bytes"),
    ({"response_body": "head", "response_body_truncated": True, "response_body_length": 9000},
     "response_body_truncated", "cut at capture (9000 bytes"),
    ({"request_body_truncated": True}, "request_body_length", "full length"),
    ({"response_headers": {"Content-Encoding": "compress"}}, "response_headers",
     "unknown Content-Encoding 'compress'"),
])
def test_bad_recorded_calls_are_refused_naming_event_and_field(
        change: dict[str, Any], field: str, problem: str) -> None:
    bad = {**good_call(), **change}
    with pytest.raises(HttpCassetteError) as error, serve_http([good_call(), {**bad, "_line": 17}]):
        pass
    assert error.value.field == field and error.value.line == 17
    assert str(error.value).startswith(f"recorded http_call at line 17: field {field!r}")
    assert problem in str(error.value)
    with pytest.raises(HttpCassetteError, match="at index 1 of the HTTP calls"), \
            serve_http([good_call(), bad]):
        pass


def test_binary_payloads_and_errors_without_answers_are_served() -> None:
    refused: dict[str, Any] = {"event_type": "http_call", "method": "GET",
                               "url": "http://127.0.0.1:1/gone", "error_type": "ReadTimeout",
                               "error_module": "httpx", "error_message": "timed out"}
    with serve_http([good_call(), refused]) as served:
        assert httpx.get("http://127.0.0.1:1/x").content == b"\x00\x01\x02\xff"
        with pytest.raises(httpx.ReadTimeout, match=r"^timed out$"):
            httpx.get("http://127.0.0.1:1/gone")
    assert served.served == 2


def test_error_classes_are_looked_up_without_running_module_code() -> None:
    lazy = types.ModuleType("replay_lazy_errors")
    asked: list[str] = []

    def module_getattr(name: str) -> type[Exception]:
        asked.append(name)
        return type(name, (Exception,), {})

    lazy.__getattr__ = module_getattr  # type: ignore[method-assign]
    lazy.Known = type("Known", (Exception,), {})  # type: ignore[attr-defined]
    sys.modules[lazy.__name__] = lazy
    try:
        for name in ("Lazy", "Known.__subclasses__", "Known"):
            call = {"event_type": "http_call", "method": "GET", "url": "http://127.0.0.1:1/x",
                    "error_type": name, "error_module": lazy.__name__, "error_message": "m"}
            with serve_http([call]), pytest.raises(Exception, match=r"^m$") as raised:
                requests.get("http://127.0.0.1:1/x", timeout=5)
            expected = lazy.Known if name == "Known" else ConnectionError
            assert type(raised.value) is expected
    finally:
        del sys.modules[lazy.__name__]
    assert asked == []


def test_an_unknown_recorded_error_class_replays_as_a_connection_error() -> None:
    failed: Sequence[dict[str, Any]] = [{
        "event_type": "http_call", "method": "GET", "url": "http://127.0.0.1:1/x",
        "error_type": "Boom", "error_module": "not_imported_anywhere",
        "error_message": "it broke"}]
    with serve_http(failed), pytest.raises(ConnectionError, match=r"^it broke$"):
        requests.get("http://127.0.0.1:1/x", timeout=5)
