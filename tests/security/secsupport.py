"""Shared pieces of the security suite: throwaway packages, trace writing, replay helpers.

The packages are written into a temporary folder so that nothing a hostile
trace names is importable by accident, and so that modules *outside* the
targets leave a mark (a line in a marker file) the moment they are imported.
"""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from pytest_replay.config import ReplayConfig
from pytest_replay.model import load_trace
from pytest_replay.replay.engine import ReplayEngine, ReplayResult
from tests.security.secret_corpus import write_shop

RECORDED_AT_NS: Final = 1_614_834_367_000_000_000
"""2021-03-04 05:06:07 UTC: far enough from today that a leaked frozen clock is obvious."""

TARGET: Final = "sec_target"
NARROW: Final = "sec_narrow"
"""A package of which only ``sec_narrow.app`` is a target; ``sec_narrow.danger`` is not."""
OUTSIDE: Final = "sec_outside"
LOOKALIKE: Final = "sec_target_evil"
"""Shares the target's name as a prefix: must not pass for it."""
BRITTLE: Final = "sec_brittle"
"""A target package with a sub-package that raises (not ImportError) when imported."""
LAZY: Final = "sec_lazy"
"""A library outside the targets with a lazy module ``__getattr__`` (as many have)."""
SHOP: Final = "sec_shop"
"""The realistic application of the secrets tests."""
OWN_PACKAGES: Final = (TARGET, NARROW, OUTSIDE, LOOKALIKE, BRITTLE, LAZY, SHOP)


# ---------------------------------------------------------------- packages


_MARK_ON_IMPORT = """\
from __future__ import annotations

with open({marker!r}, "a", encoding="utf-8") as _handle:
    _handle.write("imported " + __name__ + "\\n")
"""

_TARGET_APP = """\
'''A replay target that also holds aliases to dangerous things, as real modules do.'''
from __future__ import annotations

import asyncio
import dataclasses
import importlib
import os
import socket
import subprocess
import json
import sys
import time
import threading
import urllib.request
from os import system
from socket import getaddrinfo as resolve_alias
from subprocess import Popen, run
from time import time as imported_time

MARKER = {marker!r}
alias_eval = eval
alias_import_module = importlib.import_module
KEEP = (os, subprocess, system, Popen, run, imported_time)


def add(a: int, b: int) -> int:
    return a + b


def measure(text: str) -> int:
    return len(text)


def write_marker(path: str, text: str) -> str:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(text + "\\n")
    return text


def outer() -> object:
    def inner() -> int:
        return 1

    return inner


class Service:
    def handle(self, value: int) -> int:
        return value * 2


@dataclasses.dataclass
class Order:
    order_id: int


def now_seconds() -> float:
    return time.time()


def fail(message: str) -> None:
    raise ValueError(message)


def leave(code: int) -> None:
    sys.exit(code)


async def nap(seconds: float) -> str:
    await asyncio.sleep(seconds)
    await asyncio.wait_for(asyncio.sleep(seconds), timeout=5)
    return "rested"


def connect(host: str, port: int) -> str:
    with socket.create_connection((host, port), timeout=2) as conn:
        conn.sendall(b"ping")
    return "connected"


def connect_raw(host: str, port: int) -> str:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(2)
        sock.connect((host, port))
    finally:
        sock.close()
    return "connected"


def send_datagram(host: str, port: int) -> str:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.sendto(b"ping", (host, port))
    finally:
        sock.close()
    return "sent"


def lookup(host: str) -> int:
    return len(socket.getaddrinfo(host, 80))


def lookup_aliased(host: str) -> int:
    return len(resolve_alias(host, 80))


def connect_in_thread(host: str, port: int) -> str:
    outcome: list[str] = []

    def work() -> None:
        try:
            outcome.append(connect_raw(host, port))
        except OSError as exc:
            outcome.append(type(exc).__name__)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(5)
    if outcome != ["connected"]:
        raise ConnectionError(str(outcome))
    return "connected"


def fetch_urllib(url: str) -> int:
    with urllib.request.urlopen(url, timeout=2) as response:
        return int(response.status)


def fetch_requests(url: str) -> int:
    import requests

    return int(requests.get(url, timeout=2).status_code)


def fetch_httpx(url: str) -> int:
    import httpx

    return int(httpx.get(url, timeout=2).status_code)


async def connect_async(host: str, port: int) -> str:
    reader, writer = await asyncio.open_connection(host, port)
    writer.close()
    await writer.wait_closed()
    return "connected"
"""

_OUTSIDE_TOOLS = """\
from __future__ import annotations

from sec_outside import _marker


def drop_marker() -> None:
    _marker.note("drop_marker called")
"""

_OUTSIDE_MARKER = """\
from __future__ import annotations

MARKER = {marker!r}


def note(text: str) -> None:
    with open(MARKER, "a", encoding="utf-8") as handle:
        handle.write(text + "\\n")


note("imported " + __name__)
"""

_OUTSIDE_MODELS = """\
from __future__ import annotations

import dataclasses

from sec_outside import _marker


@dataclasses.dataclass
class Payload:
    command: str

    def __post_init__(self) -> None:
        _marker.note("Payload built")
"""

_LAZY_INIT = """\
from __future__ import annotations

import importlib
from typing import Any


class LibraryError(Exception):
    pass


def __getattr__(name: str) -> Any:
    if name == "Heavy":
        return importlib.import_module("sec_lazy.heavy").Heavy
    raise AttributeError(name)
"""

_PLAIN_APP = """\
from __future__ import annotations


def handle(value: int) -> int:
    return value
"""

_LOOKALIKE_APP = """\
from __future__ import annotations

from sec_target_evil import _marker


def run_payload() -> None:
    _marker.note("run_payload called")
"""


@dataclass(frozen=True)
class Packages:
    """Where the throwaway packages live and the file any forbidden import writes to."""

    root: Path
    marker: Path

    def marks(self) -> list[str]:
        """What was written to the marker file (nothing, when all went well)."""
        if not self.marker.exists():
            return []
        return self.marker.read_text(encoding="utf-8").splitlines()


def write_packages(root: Path) -> Packages:
    """Write every package of the suite under ``root`` and return where they are."""
    write_shop(root)
    marker = root / "MARKER.txt"
    files: dict[str, str] = {
        f"{TARGET}/__init__.py": '"""Replay target of the security suite."""\n',
        f"{TARGET}/app.py": _TARGET_APP.format(marker=str(marker)),
        f"{NARROW}/__init__.py": "",
        f"{NARROW}/app.py": _PLAIN_APP,
        f"{NARROW}/danger.py": _MARK_ON_IMPORT.format(marker=str(marker)),
        f"{OUTSIDE}/__init__.py": "",
        f"{OUTSIDE}/_marker.py": _OUTSIDE_MARKER.format(marker=str(marker)),
        f"{OUTSIDE}/tools.py": _OUTSIDE_TOOLS,
        f"{OUTSIDE}/models.py": _OUTSIDE_MODELS,
        f"{LOOKALIKE}/__init__.py": "",
        f"{LOOKALIKE}/_marker.py": _OUTSIDE_MARKER.format(marker=str(marker)),
        f"{LOOKALIKE}/app.py": _LOOKALIKE_APP,
        f"{LAZY}/__init__.py": _LAZY_INIT,
        f"{LAZY}/heavy.py": _MARK_ON_IMPORT.format(marker=str(marker))
        + "\n\nclass Heavy(Exception):\n    pass\n",
        f"{BRITTLE}/__init__.py": "",
        f"{BRITTLE}/app.py": _PLAIN_APP,
        f"{BRITTLE}/broken/__init__.py": 'raise RuntimeError("broken at import")\n',
    }
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return Packages(root, marker)


def forget_packages() -> None:
    """Drop the suite's packages from ``sys.modules`` (other tests never see them)."""
    for name in list(sys.modules):
        if name.split(".")[0] in OWN_PACKAGES:
            del sys.modules[name]


# ---------------------------------------------------------------- traces


def entry(module: str | None, qualname: str | None, args: Mapping[str, Any] | None = None,
          *, cid: str = "req_sec", function_name: str | None = None,
          timestamp_ns: int = RECORDED_AT_NS, **extra: Any) -> dict[str, Any]:
    """A root ``function_entry`` naming ``module:qualname``."""
    name = function_name if function_name is not None else (
        (qualname or "?").rsplit(".", 1)[-1])
    event: dict[str, Any] = {"event_type": "function_entry", "timestamp_ns": timestamp_ns,
                             "correlation_id": cid, "function_name": name,
                             "args": dict(args or {}), "v": 1}
    if module is not None:
        event["module"] = module
    if qualname is not None:
        event["qualname"] = qualname
    event.update(extra)
    return event


def exit_(function_name: str, return_value: Any = None, *, cid: str = "req_sec",
          timestamp_ns: int = RECORDED_AT_NS + 1_000_000) -> dict[str, Any]:
    """A ``function_exit`` returning ``return_value``."""
    return {"event_type": "function_exit", "timestamp_ns": timestamp_ns,
            "correlation_id": cid, "function_name": function_name,
            "return_value": return_value, "duration_ns": 1_000_000}


def failed_exit(function_name: str, error_type: str, message: str, *, cid: str = "req_sec"
                ) -> list[dict[str, Any]]:
    """The ``error`` and raising ``function_exit`` of a root that ended in an error."""
    return [
        {"event_type": "error", "timestamp_ns": RECORDED_AT_NS + 500_000, "correlation_id": cid,
         "error_type": error_type, "message": message, "function_name": function_name},
        {"event_type": "function_exit", "timestamp_ns": RECORDED_AT_NS + 1_000_000,
         "correlation_id": cid, "function_name": function_name, "error": True,
         "error_type": error_type, "message": message, "duration_ns": 1_000_000},
    ]


def write_trace(path: Path, events: Iterable[Mapping[str, Any]]) -> Path:
    """Write ``events`` as a JSONL trace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(dict(e)) + "\n" for e in events), encoding="utf-8")
    return path


def time_traces() -> dict[str, tuple[tuple[dict[str, Any], ...], str]]:
    """Traces for every kind of outcome, with the verdict each must get (frozen-time tests)."""
    app = f"{TARGET}.app"
    return {
        "passing": ((entry(app, "now_seconds"), exit_("now_seconds", RECORDED_AT_NS / 1e9)),
                    "passed"),
        "failing": ((entry(app, "add", {"a": 2, "b": 2}), exit_("add", 5)), "diverged"),
        "raising": ((entry(app, "fail", {"message": "boom"}),
                     *failed_exit("fail", "ValueError", "boom")), "reproduced"),
        "not-replayable": ((entry("os", "system", {"command": "id"}), exit_("system", 0)),
                           "not_replayable"),
        "async": ((entry(app, "nap", {"seconds": 0.01}), exit_("nap", "rested")), "passed"),
    }


# ---------------------------------------------------------------- replaying


@dataclass
class Replayed:
    """Every verdict of one trace file."""

    path: Path
    results: list[ReplayResult] = field(default_factory=list)

    @property
    def only(self) -> ReplayResult:
        """The verdict of a single-root trace."""
        assert len(self.results) == 1, f"{self.path}: expected one root, got {self.results}"
        return self.results[0]


def replay_file(path: Path, targets: Sequence[str], **config: Any) -> Replayed:
    """Replay every root of ``path`` through the engine API, as the plugin does."""
    trace = load_trace(path)
    assert trace.roots, f"{path}: no root to replay ({trace.problems})"
    engine = ReplayEngine(ReplayConfig(targets=tuple(targets), **config))
    return Replayed(path, [engine.replay(root, check_noise=False) for root in trace.roots])


def outside_targets(modules: Iterable[str], targets: Sequence[str]) -> list[str]:
    """The names among ``modules`` that are not one of ``targets`` or inside one."""
    return sorted(m for m in modules
                  if not any(m == t or m.startswith(t + ".") for t in targets))
