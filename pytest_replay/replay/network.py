"""Seal a replay from the network: connects and name lookups fail fast, whoever makes them.

HTTP and database calls are served from the recording by their own servers;
this seal is the floor under them. It patches the socket module itself
(``socket.socket.connect``/``connect_ex``/``sendto``/``sendmsg``,
``socket.create_connection``, ``getaddrinfo``, ``gethostbyname``,
``gethostbyname_ex``, the last three in ``_socket`` too), so a client library
nobody patched meets :class:`UnrecordedCall` (an ``OSError``, which libraries
report as a connection failure) instead of a real server.

``AF_UNIX`` sockets stay allowed: they reach this machine only, and the
event loop and some test tooling use them. The patch is process-wide while
any seal is open (threads the replayed code starts are sealed too); a refusal
is reported to the seal of the current context, else to the newest open one.
"""

from __future__ import annotations

import _socket
import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, Final, final

from pytest_replay.replay.external import ServedCalls, UnrecordedCall

__all__ = ["UnrecordedLookup", "seal_network"]


class UnrecordedLookup(UnrecordedCall, socket.gaierror):
    """A name lookup during a sealed replay: a ``socket.gaierror`` too, as resolvers expect."""


@final
class _Seals:
    """The open seals and the saved socket functions (patched while any seal is open)."""

    __slots__ = ("lock", "made", "open", "saved")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.open: list[ServedCalls] = []
        self.saved: dict[tuple[Any, str], Any] = {}
        self.made: dict[tuple[Any, str], tuple[Any, Any]] = {}
        """Per target: the original last sealed and its stand-in, reused while it stays."""


_SEALS: Final = _Seals()
_CURRENT: ContextVar[ServedCalls | None] = ContextVar("replay_network_seal", default=None)


def _report() -> ServedCalls | None:
    current = _CURRENT.get()
    if current is not None:
        return current
    opened = _SEALS.open
    return opened[-1] if opened else None


def _refuse(request: str, *, lookup: bool = False) -> UnrecordedCall:
    error = (UnrecordedLookup if lookup else UnrecordedCall)(
        "network", request, "the replay is sealed from the network")
    served = _report()
    if served is not None:
        served.unrecorded.append(error)  # every attempt, retries included: what happened
    return error


def _address(address: Any) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        host = host.decode("ascii", "replace") if isinstance(host, bytes) else str(host)
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return repr(address)


def _sealed_connect(original: Callable[..., Any]) -> Callable[..., Any]:
    def connect(self: socket.socket, address: Any) -> Any:
        if self.family == socket.AF_UNIX:
            return original(self, address)
        raise _refuse(f"connect {_address(address)}")

    connect.__wrapped__ = original  # type: ignore[attr-defined]
    return connect


def _sealed_sendto(original: Callable[..., Any]) -> Callable[..., Any]:
    def sendto(self: socket.socket, data: Any, *args: Any) -> Any:
        if self.family == socket.AF_UNIX or not args:
            return original(self, data, *args)
        raise _refuse(f"send a datagram to {_address(args[-1])}")

    sendto.__wrapped__ = original  # type: ignore[attr-defined]
    return sendto


def _sealed_sendmsg(original: Callable[..., Any]) -> Callable[..., Any]:
    def sendmsg(self: socket.socket, *args: Any) -> Any:
        if self.family == socket.AF_UNIX or len(args) < 4:  # no address: a connected socket
            return original(self, *args)
        raise _refuse(f"send a datagram to {_address(args[3])}")

    sendmsg.__wrapped__ = original  # type: ignore[attr-defined]
    return sendmsg


def _sealed_create_connection(original: Callable[..., Any]) -> Callable[..., Any]:
    def create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        raise _refuse(f"connect {_address(address)}")

    create_connection.__wrapped__ = original  # type: ignore[attr-defined]
    return create_connection


def _sealed_lookup(original: Callable[..., Any], verb: str) -> Callable[..., Any]:
    def lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode("ascii", "replace") if isinstance(host, bytes) else host
        raise _refuse(f"{verb} {name}", lookup=True)

    lookup.__wrapped__ = original  # type: ignore[attr-defined]
    return lookup


_TARGETS: Final[tuple[tuple[Any, str, Callable[[Callable[..., Any]], Callable[..., Any]]], ...]] = (
    (socket.socket, "connect", _sealed_connect),
    (socket.socket, "connect_ex", _sealed_connect),
    (socket.socket, "sendto", _sealed_sendto),
    (socket.socket, "sendmsg", _sealed_sendmsg),
    (socket, "create_connection", _sealed_create_connection),
    (socket, "getaddrinfo", lambda f: _sealed_lookup(f, "resolve")),
    (socket, "gethostbyname", lambda f: _sealed_lookup(f, "resolve")),
    (socket, "gethostbyname_ex", lambda f: _sealed_lookup(f, "resolve")),
    # below the socket module too: code that imported ``getaddrinfo`` before the seal
    # still calls socket.py's function, which calls these
    (_socket, "getaddrinfo", lambda f: _sealed_lookup(f, "resolve")),
    (_socket, "gethostbyname", lambda f: _sealed_lookup(f, "resolve")),
    (_socket, "gethostbyname_ex", lambda f: _sealed_lookup(f, "resolve")),
)


def _patch() -> None:
    for owner, name, make in _TARGETS:
        if not hasattr(owner, name):  # sendmsg is not everywhere
            continue
        original = getattr(owner, name)
        _SEALS.saved[(owner, name)] = original
        made = _SEALS.made.get((owner, name))
        if made is None or made[0] is not original:
            made = _SEALS.made[(owner, name)] = (original, make(original))
        setattr(owner, name, made[1])


def _restore() -> None:
    for (owner, name), original in _SEALS.saved.items():
        setattr(owner, name, original)
    _SEALS.saved.clear()


@contextlib.contextmanager
def seal_network() -> Iterator[ServedCalls]:
    """No network while inside: yields the report (kind ``"network"``) of refused calls.

    Nestable and safe across threads; the socket module is restored when
    the last seal closes, also when the body raises.
    """
    served = ServedCalls("network")
    with _SEALS.lock:
        if not _SEALS.open:
            _patch()
        _SEALS.open.append(served)
    token = _CURRENT.set(served)
    try:
        yield served
    finally:
        _CURRENT.reset(token)
        with _SEALS.lock:
            _SEALS.open.remove(served)
            if not _SEALS.open:
                _restore()
