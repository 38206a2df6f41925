"""Serve a replay the chance and environment values its recording drew.

While active, the sources ``capture.nondeterminism`` records (``random``'s
module functions, ``uuid1``/``uuid4``, ``os.urandom``, ``secrets``,
``os.environ.get``) answer from the recorded ``nondeterminism`` events in
order, per source. When the recording runs out (or never recorded them) they
answer from a generator seeded by the request id, so two replays of the same
trace still draw the same values.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final, final

from pytest_replay.capture.nondeterminism import SOURCES, source_name
from pytest_replay.capture.runtime import current_ids
from pytest_replay.format import events as ev
from pytest_replay.format.decode import DecodeError, Opaque, decode
from pytest_replay.format.events import Event
from pytest_replay.replay.external import ServedCalls

_SOURCES: Final = tuple((owner, attribute, source_name(owner, attribute))
                        for owner, attribute in SOURCES)
"""``(owner, attribute, event source name)`` of every source (the names never change)."""


@contextmanager
def serve_nondeterminism(recorded: Sequence[Event], seed: str) -> Iterator[ServedCalls]:
    """Patch every source for the block; restore the originals afterwards."""
    report = ServedCalls("determinism")
    queues: dict[str, deque[Any]] = {}
    environment: dict[str, deque[Any]] = {}
    for event in recorded:
        if event.get("event_type") != ev.NONDETERMINISM:
            continue
        value = _decoded(event.get("value"))
        if value is _UNUSABLE:
            continue
        source = str(event.get("source"))
        if source == "os.environ.get":
            environment.setdefault(str(event.get("key")), deque()).append(value)
        else:
            queues.setdefault(source, deque()).append(value)
    chance = _Chance(seed)
    saved: list[tuple[Any, str, Any]] = []
    had_own_get = "get" in vars(os.environ)
    real_get = os.environ.get
    try:
        for owner, attribute, name in _SOURCES:
            original = getattr(owner, attribute, None)
            if original is None:
                continue
            server = _server(name, attribute, original, queues.get(name), chance, report)
            saved.append((owner, attribute, original))
            setattr(owner, attribute, server)
        os.environ.get = _environment_server(  # type: ignore[method-assign]
            environment, real_get, report)
        yield report
    finally:
        for owner, attribute, original in reversed(saved):
            setattr(owner, attribute, original)
        if "get" in vars(os.environ):
            del vars(os.environ)["get"]
        if had_own_get:
            os.environ.get = real_get  # type: ignore[method-assign]
        report.unused.extend(f"{name}: {len(queue)} recorded value(s) never drawn"
                             for name, queue in queues.items() if queue)


_UNUSABLE = object()


@final
class _Chance:
    """The stand-in generator for draws the recording lacks, seeded by the request id.

    Made on the first such draw (and each source's fallback with it): most
    replays never need one, and making them for every serve cost more than the
    rest of the serve. Draws still come in call order from one generator, so
    every replay of a trace draws the same values.
    """

    __slots__ = ("_rng", "_seed")

    def __init__(self, seed: str) -> None:
        self._seed = seed
        self._rng: random.Random | None = None

    @property
    def rng(self) -> random.Random:
        """The generator (made now if this is the first draw it serves)."""
        if self._rng is None:
            digest = hashlib.sha256(self._seed.encode()).digest()[:8]
            # Not for secrets: a stable stand-in for draws the recording did not hold.
            self._rng = random.Random(int.from_bytes(digest, "big"))  # noqa: S311
        return self._rng


def _decoded(value: Any) -> Any:
    try:
        decoded = decode(value)
    except DecodeError:
        return _UNUSABLE
    return _UNUSABLE if isinstance(decoded, Opaque) else decoded


def _server(name: str, attribute: str, original: Callable[..., Any], queue: deque[Any] | None,
            chance: _Chance, report: ServedCalls) -> Callable[..., Any]:
    kind = attribute if not name.startswith("secrets.") else f"s_{attribute}"
    fallback: list[Callable[..., Any]] = []  # made on the first draw the recording lacks

    def serve(*args: Any, **kwargs: Any) -> Any:
        if current_ids()[0] is None:  # outside the request, as capture never recorded it
            return original(*args, **kwargs)
        report.served += 1
        if queue:
            return queue.popleft()
        if not fallback:
            fallback.append(_fallback(kind, chance.rng))
        return fallback[0](*args, **kwargs)

    serve.__name__ = attribute
    return serve


def _fallback(kind: str, rng: random.Random) -> Callable[..., Any]:
    table: dict[str, Callable[..., Any]] = {
        "uuid4": lambda: uuid.UUID(int=rng.getrandbits(128), version=4),
        "uuid1": lambda node=None, clock_seq=None: uuid.UUID(int=rng.getrandbits(128),
                                                              version=1),
        "urandom": rng.randbytes,
        "s_token_bytes": lambda nbytes=None: rng.randbytes(32 if nbytes is None else nbytes),
        "s_token_hex": lambda nbytes=None: rng.randbytes(32 if nbytes is None else nbytes).hex(),
        "s_token_urlsafe": lambda nbytes=None: base64.urlsafe_b64encode(
            rng.randbytes(32 if nbytes is None else nbytes)).rstrip(b"=").decode("ascii"),
        "s_randbelow": rng.randrange,
        "s_choice": rng.choice,
    }
    if kind in table:
        return table[kind]
    method: Callable[..., Any] = getattr(rng, kind)
    return method


def _environment_server(environment: dict[str, deque[Any]], real_get: Callable[..., Any],
                        report: ServedCalls) -> Callable[..., Any]:
    def get(key: str, default: Any = None) -> Any:
        queue = environment.get(key) if current_ids()[0] is not None else None
        if queue:
            report.served += 1
            value = queue[0] if len(queue) == 1 else queue.popleft()
            return default if value is None else value
        return real_get(key, default)

    return get
