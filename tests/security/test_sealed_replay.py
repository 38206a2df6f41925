"""Replay is sealed: nothing reaches a real listener on 127.0.0.1 and no name is looked up.

A real server started here counts accepted TCP connections (it speaks HTTP)
and UDP datagrams; name lookups are counted by wrapping the resolver below
``socket.getaddrinfo`` (so code that imported ``getaddrinfo`` early is seen
too). Every probe trace below makes replayed code try to reach out one way;
then every trace this suite uses, and every demo trace, is replayed under
the same counters. The seal is ``pytest_replay/replay/network.py``.
"""

from __future__ import annotations

import _socket
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest

from pytest_replay.config import ReplayConfig
from pytest_replay.model import load_trace
from pytest_replay.replay.engine import ReplayResult
from tests.security.hostile_check import trace_file
from tests.security.hostile_corpus import CASES
from tests.security.listener import Listener
from tests.security.secret_corpus import SECRETS, run_shop
from tests.security.secsupport import (
    TARGET,
    Packages,
    entry,
    exit_,
    replay_file,
    time_traces,
    write_trace,
)

APP: Final = f"{TARGET}.app"
REPO: Final = Path(__file__).resolve().parents[2]
_LOCAL_NAMES: Final = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass
class Lookups:
    """Name lookups that reached the resolver."""

    names: list[str]


@contextmanager
def counted_lookups() -> Iterator[Lookups]:
    """Count every resolver call; answer local names for real, refuse the rest (no network)."""
    seen = Lookups([])
    saved: list[tuple[Any, str, Any]] = []

    def wrap(owner: Any, name: str) -> None:
        original = getattr(owner, name)

        def counting(host: Any, *args: Any, **kwargs: Any) -> Any:
            text = host.decode() if isinstance(host, bytes) else str(host)
            seen.names.append(f"{name}({text})")
            if text in _LOCAL_NAMES:
                return original(host, *args, **kwargs)
            raise socket.gaierror(socket.EAI_NONAME, f"counted, not resolved: {text}")

        saved.append((owner, name, original))
        setattr(owner, name, counting)

    wrap(_socket, "getaddrinfo")
    wrap(socket, "gethostbyname")
    wrap(socket, "gethostbyname_ex")
    try:
        yield seen
    finally:
        for owner, name, original in reversed(saved):
            setattr(owner, name, original)


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    """The counting server on 127.0.0.1 (HTTP over TCP, plus UDP)."""
    with Listener(token=_secret("HTTP_RESP_TOKEN"), cookie=_secret("SET_COOKIE")) as server:
        yield server


def _secret(name: str) -> str:
    return next(s.value for s in SECRETS if s.name == name)


@dataclass
class Sealed:
    """What reached the outside during some replays."""

    connections: int
    datagrams: int
    lookups: list[str]
    results: list[ReplayResult]


@pytest.fixture
def sealed(listener: Listener) -> Callable[[Callable[[], list[ReplayResult]]], Sealed]:
    """Run replays under the counters; say what got out."""

    def run(replays: Callable[[], list[ReplayResult]]) -> Sealed:
        listener.settle()
        connections, datagrams = listener.connections, listener.datagrams
        with counted_lookups() as lookups:
            results = replays()
        listener.settle()
        return Sealed(listener.connections - connections, listener.datagrams - datagrams,
                      lookups.names, results)

    return run


# ---------------------------------------------------------------- the seal itself


def test_network_seal_is_present_and_installed_for_every_replay() -> None:
    """``pytest_replay.replay.network.seal_network`` exists and the engine enters it."""
    from pytest_replay.replay.network import seal_network
    from pytest_replay.replay.servers import servers_for

    servers = servers_for([], ReplayConfig(targets=(TARGET,)), seed="req")
    assert seal_network in servers


# ---------------------------------------------------------------- probes

PROBES: Final[dict[str, tuple[str, Callable[[Listener], dict[str, Any]], Any]]] = {
    "create_connection-ip": ("connect", lambda s: {"host": "127.0.0.1", "port": s.tcp_port},
                             "connected"),
    "create_connection-localhost": ("connect", lambda s: {"host": "localhost",
                                                          "port": s.tcp_port}, "connected"),
    "socket.connect": ("connect_raw", lambda s: {"host": "127.0.0.1", "port": s.tcp_port},
                       "connected"),
    "socket.connect-in-thread": ("connect_in_thread",
                                 lambda s: {"host": "127.0.0.1", "port": s.tcp_port},
                                 "connected"),
    "udp-sendto": ("send_datagram", lambda s: {"host": "127.0.0.1", "port": s.udp_port}, "sent"),
    "getaddrinfo": ("lookup", lambda s: {"host": "sealed-replay.invalid"}, 1),
    "getaddrinfo-imported-early": ("lookup_aliased", lambda s: {"host": "sealed-replay.invalid"},
                                   1),
    "urllib": ("fetch_urllib", lambda s: {"url": s.url + "/probe"}, 200),
    "requests": ("fetch_requests", lambda s: {"url": s.url + "/probe"}, 200),
    "httpx": ("fetch_httpx", lambda s: {"url": s.url + "/probe"}, 200),
    "asyncio.open_connection": ("connect_async", lambda s: {"host": "127.0.0.1",
                                                            "port": s.tcp_port}, "connected"),
}


@pytest.mark.parametrize("probe", sorted(PROBES))
def test_probe_reaches_nothing_and_fails_the_replay(
        probe: str, packages: Packages, listener: Listener, tmp_path: Path,
        sealed: Callable[[Callable[[], list[ReplayResult]]], Sealed]) -> None:
    """Code that reaches out during replay gets nowhere, and the item fails saying so."""
    function, args, returned = PROBES[probe]
    path = write_trace(tmp_path / "probe.jsonl", [entry(APP, function, args(listener)),
                                                  exit_(function, returned)])
    outcome = sealed(lambda: replay_file(path, (TARGET,)).results)
    assert (outcome.connections, outcome.datagrams, outcome.lookups) == (0, 0, []), (
        f"{probe}: reached the outside during replay: {outcome.connections} connection(s), "
        f"{outcome.datagrams} datagram(s), lookups {outcome.lookups}")
    result = outcome.results[0]
    assert result.status == "diverged", result.message
    assert "unrecorded external call" in result.message, result.message


# ---------------------------------------------------------------- every trace of the suite


def _demo_traces(directory: Path) -> list[Path]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *sys.path])}
    done = subprocess.run([sys.executable, "-m", "demo.record", "--out", str(directory)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    traces = sorted(directory.glob("*.jsonl"))
    assert len(traces) >= 3, traces
    return traces


def test_every_trace_of_the_suite_replays_sealed(
        packages: Packages, listener: Listener, tmp_path: Path,
        sealed: Callable[[Callable[[], list[ReplayResult]]], Sealed]) -> None:
    """Demo traces, hostile traces, frozen-time traces and the shop's recording: nothing out."""
    batches: list[tuple[tuple[str, ...], Path]] = []
    batches += [(("demo",), path) for path in _demo_traces(tmp_path / "demo")]
    batches += [(case.targets, trace_file(case, tmp_path / "hostile")) for case in CASES]
    batches += [((TARGET,), write_trace(tmp_path / "time" / f"{name}.jsonl", events))
                for name, (events, _status) in time_traces().items()]
    shop = tmp_path / "shop" / "shop.jsonl"
    before = listener.connections
    run_shop(packages.root, shop, listener.url)
    listener.settle()
    assert listener.connections > before, "the shop never reached the listener while recorded"
    batches += [(("sec_shop",), shop)]

    def replay_all() -> list[ReplayResult]:
        results: list[ReplayResult] = []
        for targets, path in batches:
            assert load_trace(path).roots, path
            results += replay_file(path, targets).results
        return results

    outcome = sealed(replay_all)
    assert (outcome.connections, outcome.datagrams, outcome.lookups) == (0, 0, [])
    assert len(outcome.results) >= len(batches)
