"""A real HTTP server on 127.0.0.1 and a capture runtime writing into memory."""

from __future__ import annotations

import gzip
import http.server
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from pytest_replay.capture.api import configure, shutdown
from pytest_replay.capture.http import install_http_capture, uninstall_http_capture
from pytest_replay.capture.sinks import MemorySink

BINARY = bytes(range(256)) * 4


@dataclass
class Seen:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class LocalServer:
    """The running server: its base URL and what reached it."""

    url: str
    port: int
    binary: bytes = BINARY
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0
    counter: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    _server: http.server.ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def stop(self) -> None:
        """Stop serving and close the listening socket (the port refuses connections after)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes
    state: LocalServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read ``seen`` instead."""

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            return self.rfile.read(length)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return b""

    def _send(self, status: int, body: bytes, content_type: str = "application/json",
              extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, value: Any, extra: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(value).encode(), extra=extra)

    def _handle(self) -> None:
        body = self._body()
        state = self.state
        with state.lock:
            state.seen.append(Seen(self.command, self.path, dict(self.headers.items()), body))
            state.counter += 1
            count = state.counter
        parts = urlsplit(self.path)
        path = parts.path
        if path == "/json":
            self._json(200, {"ok": True, "path": path, "query": parse_qs(parts.query)})
        elif path == "/echo":
            self._send(200, body, self.headers.get("Content-Type") or "application/octet-stream")
        elif path.startswith("/status/"):
            code = int(path.rsplit("/", 1)[1])
            self._json(code, {"status": code, "error": "upstream failed"})
        elif path == "/count":
            self._json(200, {"count": count})
        elif path == "/gzip":
            packed = gzip.compress(json.dumps({"zipped": True}).encode(), mtime=0)
            self._send(200, packed, extra={"Content-Encoding": "gzip"})
        elif path == "/binary":
            self._send(200, BINARY, "application/octet-stream")
        elif path == "/big":
            size = int(parse_qs(parts.query).get("size", ["100000"])[0])
            self._send(200, b"x" * size, "text/plain")
        elif path == "/redirect":
            self._send(302, b"", "text/plain", {"Location": "/json?from=redirect"})
        elif path == "/secret":
            self._json(200, {"access_token": "tok-123", "user": "ann"},
                       {"Set-Cookie": "session=abc123; Path=/"})
        elif path == "/chunked":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (b'{"chunked":', b" true}"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self._json(404, {"error": "no such path", "path": path})

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _handle


class _CountingServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    state: LocalServer

    def get_request(self) -> tuple[socket.socket, Any]:
        accepted = super().get_request()
        with self.state.lock:
            self.state.connections += 1
        return accepted


def _start_server() -> LocalServer:
    handler: type[_Handler] = type("Handler", (_Handler,), {})
    server = _CountingServer(("127.0.0.1", 0), handler)
    port = server.server_address[1]
    state = LocalServer(url=f"http://127.0.0.1:{port}", port=port)
    handler.state = state
    server.state = state
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                              name="test-http-server", daemon=True)
    thread.start()
    state._server, state._thread = server, thread
    return state


@pytest.fixture
def http_server() -> Iterator[LocalServer]:
    """A real HTTP server on 127.0.0.1 (JSON, echo, errors, gzip, binary, redirect...)."""
    server = _start_server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def capture() -> Iterator[MemorySink]:
    """Capture active into a MemorySink, HTTP capture installed; all undone afterwards."""
    sink = MemorySink()
    configure(sink=sink)
    install_http_capture()
    try:
        yield sink
    finally:
        uninstall_http_capture()
        shutdown()
