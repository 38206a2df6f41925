"""Deferred events: HTTP, database, environment and variable events built by the writer thread.

A sink with a writer thread gets the raw facts of a call and builds the line
itself; every other sink gets the line at once. These tests run real HTTP
calls (a server on 127.0.0.1, through http.client, urllib, requests, httpx
and urllib3) and a real sqlite database, and prove that the lines the writer
builds are byte for byte those the request thread would have built, in the
same order, even when the application changes its objects after the call.
"""

from __future__ import annotations

import http.client
import http.server
import os
import re
import sqlite3
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import requests
import urllib3

import pytest_replay as replay
from pytest_replay.capture.buffered import RENDER_BATCH, BufferedSink, Deferred
from pytest_replay.capture.runtime import RUNTIME
from pytest_replay.capture.stats import SinkStats

# -- a real server ----------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path.startswith("/binary"):
            answer, kind = bytes(range(256)), "application/octet-stream"
        else:
            answer = orjson.dumps({"path": self.path, "got": len(body),
                                   "access_token": "tok-123456"})
            kind = "application/json"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Set-Cookie", "session=abc123; Path=/")
        self.send_header("X-Repeated", "one")
        self.send_header("X-Repeated", "two")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def server_url() -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 answering JSON (with a secret) or bytes."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# -- sinks ------------------------------------------------------------------------------


class TeeSink(BufferedSink):
    """A buffered sink that also builds each deferred item at once, on the request thread.

    ``immediate`` holds what the immediate path makes of every event, in order;
    ``delivered`` what the writer thread made of the same events later.
    """

    def __init__(self) -> None:
        self.immediate: list[bytes] = []
        self.delivered: list[bytes] = []
        self.deferred = 0
        super().__init__(flush_interval=60.0)  # the writer builds only at flush

    def write(self, line: bytes) -> None:
        """Keep the line on both sides."""
        self.immediate.append(line)
        super().write(line)

    def defer(self, item: Deferred) -> None:
        """Build the item now too, then queue it as the writer will see it."""
        self.deferred += 1
        line = item.render(SinkStats())
        assert line is not None
        self.immediate.append(line)
        super().defer(item)

    def _deliver(self, batch: list[bytes]) -> None:
        self.delivered.extend(batch)
        self._delivered(len(batch))


# -- the scenario -----------------------------------------------------------------------


def _scenario(url: str, database: Path) -> None:
    """One request making real calls, changing what it handed over right after each one."""
    with replay.request_scope("req_deferred"):
        _traced_work(url, database)


@replay.traced
def _traced_work(url: str, database: Path) -> None:
    os.environ.get("TELEMETRY_REPLAY_DEFERRED_TEST", "unset")
    replay.variable("tax_rate", 0.08)
    replay.variable("note", "Bearer abcdef123456 in a value")

    body = bytearray(b'{"card": "4111 1111 1111 1111", "api_key": "k-1", "n": 1}')
    headers = {"Content-Type": "application/json", "Authorization": "Bearer xyz-secret",
               "X-Trace": "first"}
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=5)
    connection.request("POST", "/post?token=abc&page=2", body=body, headers=headers)
    answer = connection.getresponse().read()
    body[:] = b"changed after the call"
    headers["X-Trace"] = "changed"
    headers["Authorization"] = "changed"
    connection.close()
    assert b"tok-123456" in answer

    with urllib.request.urlopen(f"{url}/binary", timeout=5) as response:
        assert response.read() == bytes(range(256))
    prepared = requests.Request("POST", f"{url}/requests", data=b"plain text body",
                                headers={"X-Api-Key": "secret-key"}).prepare()
    with requests.Session() as session:
        assert session.send(prepared, timeout=5).status_code == 200
    prepared.headers["X-Api-Key"] = "changed"
    with httpx.Client() as client:
        assert client.post(f"{url}/httpx", content=b'{"password": "p"}').status_code == 200
    with urllib3.PoolManager() as pool:
        assert pool.request("GET", f"{url}/urllib3", timeout=5).status == 200

    connection_db = sqlite3.connect(database)
    try:
        parameters = [1, "first"]
        connection_db.execute("INSERT OR REPLACE INTO items (id, name) VALUES (?, ?)", parameters)
        parameters[1] = "changed after the call"
        named = {"id": 1}
        rows = connection_db.execute("SELECT id, name FROM items WHERE id = :id",
                                     named).fetchall()
        named["id"] = 99
        assert rows == [(1, "first")]
        connection_db.execute("SELECT id, name FROM items WHERE id = ?", (1,)).fetchone()
        connection_db.commit()
    finally:
        connection_db.close()


@pytest.fixture
def database(tmp_path: Path) -> Path:
    """A real sqlite database with one table."""
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
    connection.close()
    return path


# -- the tests --------------------------------------------------------------------------


def test_the_writer_builds_the_bytes_the_request_thread_would_have(
        restore_capture: None, server_url: str, database: Path) -> None:
    sink = TeeSink()
    replay.configure(sink=sink)

    _scenario(server_url, database)

    assert sink.deferred >= 10  # http, db, environment and variable events all went deferred
    assert sink.delivered == []  # nothing built yet: the writer waits for the flush
    assert sink.flush()
    assert sink.delivered == sink.immediate
    assert sink.stats.as_dict()["dropped"] == 0
    text = b"".join(sink.delivered)
    for leaked in (b"changed", b"xyz-secret", b"secret-key", b"tok-123456", b"4111 1111",
                   b"abcdef123456", b"k-1"):
        assert leaked not in text
    events = [orjson.loads(line) for line in sink.delivered]
    kinds = [event["event_type"] for event in events]
    assert kinds.count("http_call") == 5
    assert kinds.count("db_call") == 4
    first = next(event for event in events if event["event_type"] == "http_call")
    assert first["request_headers"]["X-Trace"] == "first"
    assert "REDACTED" in first["request_body"]
    inserted = next(event for event in events if event.get("operation") == "execute")
    assert inserted["parameters"] == [1, "first"]


def _normalized(lines: list[bytes]) -> list[str]:
    """Lines with what differs between two runs (times, generated ids, dates) made fixed."""
    out = []
    for line in lines:
        text = line.decode()
        text = re.sub(r'"(timestamp_ns|duration_ns)":\d+', r'"\1":0', text)
        text = re.sub(r'"Date":"[^"]*"', '"Date":""', text)
        text = re.sub(r'"[0-9a-f]{9}_[0-9a-f]+"', '"id"', text)
        out.append(text)
    return out


def test_a_file_gets_the_lines_a_memory_sink_gets_in_the_same_order(
        restore_capture: None, server_url: str, database: Path, tmp_path: Path) -> None:
    memory = replay.MemorySink()
    replay.configure(sink=memory)
    assert RUNTIME.defer_to is None  # replay's sink: lines at once
    _scenario(server_url, database)
    replay.shutdown()

    path = tmp_path / "events.jsonl"
    file_sink = replay.configure(path)
    assert RUNTIME.defer_to is not None
    _scenario(server_url, database)
    replay.shutdown()

    assert file_sink.stats.as_dict()["dropped"] == 0
    written = path.read_bytes().splitlines(keepends=True)
    assert len(written) == len(memory.lines) > 12
    assert _normalized(written) == _normalized(memory.lines)


def test_a_memory_sink_has_the_line_right_after_the_call(
        restore_capture: None, server_url: str) -> None:
    sink = replay.MemorySink()
    replay.configure(sink=sink)
    with replay.request_scope("req_now"), \
            urllib.request.urlopen(f"{server_url}/now", timeout=5) as response:
        response.read()
        assert [orjson.loads(line)["event_type"] for line in sink.lines] == ["http_call"]


class _Broken:
    """A deferred item whose building fails (a capture bug)."""

    def render(self, stats: SinkStats) -> bytes | None:
        raise RuntimeError("bug while building")


def test_a_failure_to_build_costs_one_event_and_never_the_writer(
        restore_capture: None, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    sink = replay.FileSink(path, flush_interval=60.0)
    try:
        sink.write(b'{"n":1}\n')
        sink.defer(_Broken())
        sink.write(b'{"n":2}\n')
        assert sink.flush()
        sink.defer(_Broken())
        sink.write(b'{"n":3}\n')
        assert sink.flush()
        stats = sink.stats.as_dict()
    finally:
        sink.close()
    assert path.read_bytes() == b'{"n":1}\n{"n":2}\n{"n":3}\n'
    assert stats["written"] == 3
    assert stats["dropped"] == 2
    assert stats["dropped_by_reason"] == {"render_error": 2}
    assert "bug while building" in str(stats["last_error"])


def test_a_failing_redaction_rule_in_the_writer_is_counted_as_before(
        restore_capture: None, server_url: str, tmp_path: Path) -> None:
    class Broken:
        def search(self, text: str) -> None:
            raise RuntimeError("bad pattern")

    path = tmp_path / "events.jsonl"
    sink = replay.configure(sink=replay.FileSink(path, flush_interval=60.0),
                            redact=replay.Redaction(patterns=[Broken()]))  # type: ignore[list-item]
    with replay.request_scope("req_broken"):
        assert requests.get(f"{server_url}/json", timeout=5).status_code == 200
    assert sink.flush()
    stats = sink.stats.as_dict()  # type: ignore[attr-defined]
    assert stats["dropped_by_reason"] == {"http_capture": 1}
    assert isinstance(sink, BufferedSink) and sink._thread.is_alive()


def test_events_built_after_the_settings_changed_are_dropped_and_counted(
        restore_capture: None, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    sink = replay.configure(sink=replay.FileSink(path, flush_interval=60.0))
    with replay.request_scope("req_settings"):
        replay.variable("rate", 0.08)
    RUNTIME.service = "another-service"  # the line would now say a service it was not from
    assert sink.flush()
    stats = sink.stats.as_dict()  # type: ignore[attr-defined]
    assert not path.exists() or path.read_bytes() == b""
    assert stats["dropped_by_reason"] == {"reconfigured": 1}


def test_deferred_items_left_at_a_closed_sink_are_counted(
        restore_capture: None, tmp_path: Path) -> None:
    sink = replay.FileSink(tmp_path / "events.jsonl", flush_interval=60.0)
    sink.close()
    sink.defer(_Broken())
    assert sink.stats.as_dict()["dropped_by_reason"] == {"sink_closed": 1}


class _Line:
    """A deferred item that builds a fixed line."""

    def __init__(self, number: int) -> None:
        self.number = number

    def render(self, stats: SinkStats) -> bytes | None:
        return b'{"n":%d}\n' % self.number


def test_a_batch_of_deferred_items_wakes_the_writer_before_its_interval(
        tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    sink = replay.FileSink(path, flush_interval=60.0)
    try:
        for number in range(RENDER_BATCH):
            sink.defer(_Line(number))
        deadline = time.monotonic() + 10.0
        while sink.buffered and time.monotonic() < deadline:  # built without any flush
            time.sleep(0.01)
        assert sink.buffered == 0
    finally:
        sink.close()
    assert path.read_bytes() == b"".join(b'{"n":%d}\n' % n for n in range(RENDER_BATCH))
