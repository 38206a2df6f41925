"""The payment gateway client (HTTP), and a tiny gateway the demo runs on 127.0.0.1."""

from __future__ import annotations

import itertools
import json
import os
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest_replay as replay

API_KEY = "sk_test_demo_4eC39HqLyjWDarjtT1zdp7dc"


@replay.traced
def charge(user_id: int, amount: float) -> dict[str, Any]:
    """Charge ``amount`` to the user's saved card through the gateway."""
    url = os.environ.get("PAYMENTS_URL", "http://127.0.0.1:8931") + "/v1/charges"
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"PAYMENTS_URL must be an http(s) URL, got {url!r}")
    body = json.dumps({"user_id": user_id, "amount": amount, "currency": "usd"}).encode()
    request = urllib.request.Request(url, data=body, method="POST", headers={  # noqa: S310
        "Content-Type": "application/json", "Authorization": f"Bearer {API_KEY}"})
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - checked above
        answer: dict[str, Any] = json.loads(response.read())
    return answer


class _Gateway(BaseHTTPRequestHandler):
    counter = itertools.count(1001)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        request = json.loads(self.rfile.read(length) or b"{}")
        answer = json.dumps({"id": f"ch_{next(self.counter)}", "status": "succeeded",
                             "amount": request.get("amount")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextmanager
def gateway() -> Iterator[str]:
    """Run a local payment gateway for the length of the block; yield its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
