"""Record what a request drew from chance and from the environment, so replay can serve it.

``install_nondeterminism_capture()`` wraps ``random``'s module functions,
``uuid.uuid1``/``uuid4``, ``os.urandom``, ``secrets``' functions and
``os.environ.get`` (which ``os.getenv`` calls). A source called by another
(``uuid4`` draws from ``os.urandom``) is recorded once, as the outer call.
Inside a sampled request each call writes a ``nondeterminism`` event
(``source``, ``value``, and ``key`` for environment reads); outside one the
wrappers cost one flag check.

Code that bound these functions before installation (``from uuid import
uuid4`` at import time) is not seen; install early (``configure`` does).
"""

from __future__ import annotations

import functools
import os
import random
import secrets
import threading
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Final

from pytest_replay.capture.clock import wall_ns
from pytest_replay.capture.runtime import RUNTIME, current_ids
from pytest_replay.format import events as ev

SOURCES: Final[tuple[tuple[Any, str], ...]] = (
    (random, "random"), (random, "randint"), (random, "randrange"), (random, "uniform"),
    (random, "choice"), (random, "getrandbits"), (random, "sample"), (random, "choices"),
    (uuid, "uuid1"), (uuid, "uuid4"), (os, "urandom"),
    (secrets, "token_hex"), (secrets, "token_bytes"), (secrets, "token_urlsafe"),
    (secrets, "randbelow"), (secrets, "choice"),
)
ENV_SOURCES: Final = frozenset({"os.environ.get"})
_INSIDE: ContextVar[bool] = ContextVar("replay_inside_source", default=False)
_MARK: Final = "__telemetry_replay_nondeterminism__"
_lock = threading.Lock()
_installed: list[tuple[Any, str, Any]] = []


def source_name(owner: Any, attribute: str) -> str:
    """``uuid.uuid4``-style name of a source, as written in events."""
    return f"{getattr(owner, '__name__', 'os.environ')}.{attribute}"


def install_nondeterminism_capture() -> None:
    """Wrap every source (idempotent, thread-safe)."""
    with _lock:
        if _installed:
            return
        for owner, attribute in SOURCES:
            original = getattr(owner, attribute, None)
            if original is None or getattr(original, _MARK, False):
                continue
            setattr(owner, attribute, _recording(source_name(owner, attribute), original))
            _installed.append((owner, attribute, original))
        environ_get = os.environ.get
        os.environ.get = _recording("os.environ.get", environ_get)  # type: ignore[method-assign]
        _installed.append((os.environ, "get", None))


def uninstall_nondeterminism_capture() -> None:
    """Put every original back."""
    with _lock:
        for owner, attribute, original in reversed(_installed):
            if owner is os.environ:
                vars(os.environ).pop("get", None)
            else:
                setattr(owner, attribute, original)
        _installed.clear()


def _recording(source: str, original: Callable[..., Any]) -> Callable[..., Any]:
    keyed = source in ENV_SOURCES

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not RUNTIME.active or _INSIDE.get():
            return original(*args, **kwargs)
        token = _INSIDE.set(True)
        try:
            value = original(*args, **kwargs)
        finally:
            _INSIDE.reset(token)
        _record(source, args[0] if keyed and args else None, value)
        return value

    if not keyed:
        # pickle finds a function by module and qualified name: name the wrapper as the
        # module attribute it replaces (``random.random``, not ``Random.random``), so
        # ``ProcessPoolExecutor.submit(os.urandom, 16)`` still pickles it
        module, _, attribute = source.rpartition(".")
        wrapper.__module__, wrapper.__qualname__ = module, attribute
    setattr(wrapper, _MARK, True)
    return wrapper


def _record(source: str, key: Any, value: Any) -> None:
    try:
        cid, trace_id = current_ids()
        if cid is None:
            return
        event: dict[str, Any] = {"event_type": ev.NONDETERMINISM, "timestamp_ns": wall_ns(),
                                 "correlation_id": cid, "source": source,
                                 "value": RUNTIME.encode(value)}
        if key is not None:
            event["key"] = str(key)
            if RUNTIME.redaction.is_secret_key(str(key)):
                event["value"] = {"$type": "redacted", "rule": "key"}
        if trace_id is not None and trace_id != cid:
            event["trace_id"] = trace_id
        RUNTIME.emit(event)
    except Exception:  # recording chance must never change the application's luck
        return
