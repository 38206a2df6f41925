"""A real server on 127.0.0.1 that counts what reaches it: TCP connections (HTTP) and datagrams.

It answers HTTP like a partner API would (a JSON body with an access token and
a ``Set-Cookie``), so the shop can be recorded against it; during a replay
nothing may reach it.
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


class _PartnerHandler(BaseHTTPRequestHandler):
    server: _CountingHTTPServer

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = json.dumps({"access_token": self.server.token, "ok": True}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Set-Cookie", f"session={self.server.cookie}; HttpOnly")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = _answer
    do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output clean."""


class _CountingHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, token: str, cookie: str) -> None:
        super().__init__(("127.0.0.1", 0), _PartnerHandler)
        self.token = token
        self.cookie = cookie
        self.peers: list[Any] = []
        self.lock = threading.Lock()

    def get_request(self) -> tuple[socket.socket, Any]:
        request = super().get_request()
        with self.lock:
            self.peers.append(request[1])
        return request


class _DatagramHandler(socketserver.BaseRequestHandler):
    server: _CountingUDPServer

    def handle(self) -> None:
        data = self.request[0]
        with self.server.lock:
            if data.startswith(_SENTINEL):
                self.server.sentinels.add(data)
            else:
                self.server.received += 1


_SENTINEL = b"listener-sentinel-"


class _CountingUDPServer(socketserver.UDPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _DatagramHandler)
        self.received = 0
        self.sentinels: set[bytes] = set()
        self.lock = threading.Lock()


class Listener:
    """An HTTP server and a UDP socket on 127.0.0.1, each counting what reached it."""

    def __init__(self, token: str = "listener-token", cookie: str = "listener-cookie") -> None:
        self._http = _CountingHTTPServer(token, cookie)
        self._udp = _CountingUDPServer()
        self._sentinel_peers: set[Any] = set()
        self._threads = [threading.Thread(target=server.serve_forever, kwargs={
            "poll_interval": 0.05}, daemon=True) for server in (self._http, self._udp)]

    def __enter__(self) -> Listener:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        for server in (self._http, self._udp):
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    @property
    def tcp_port(self) -> int:
        """The HTTP/TCP port."""
        return int(self._http.server_address[1])

    @property
    def udp_port(self) -> int:
        """The UDP port."""
        return int(self._udp.server_address[1])

    @property
    def url(self) -> str:
        """Base URL of the HTTP server."""
        return f"http://127.0.0.1:{self.tcp_port}"

    @property
    def connections(self) -> int:
        """TCP connections accepted so far (call :meth:`settle` first)."""
        with self._http.lock:
            return len([p for p in self._http.peers if p not in self._sentinel_peers])

    @property
    def datagrams(self) -> int:
        """UDP datagrams received so far (call :meth:`settle` first)."""
        with self._udp.lock:
            return self._udp.received

    def settle(self, timeout: float = 5.0) -> None:
        """Wait until everything sent before now has been counted.

        A connection or datagram of our own goes in behind whatever is queued;
        once it is seen, everything before it has been counted too. Raw
        sockets, so no name lookup is made (and none is counted).
        """
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.connect(("127.0.0.1", self.tcp_port))
        peer = tcp.getsockname()
        self._sentinel_peers.add(peer)
        tag = _SENTINEL + str(time.monotonic_ns()).encode()
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.sendto(tag, ("127.0.0.1", self.udp_port))
        udp.close()
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                with self._http.lock, self._udp.lock:
                    if peer in self._http.peers and tag in self._udp.sentinels:
                        return
                time.sleep(0.005)
            raise TimeoutError("the listener did not see its own sentinel in time")
        finally:
            tcp.close()
