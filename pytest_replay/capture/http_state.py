"""HTTP capture's process-wide state: what is installed, its options, the layer owning a call.

Kept apart from the wrappers so every piece of HTTP capture (redaction,
events, the per-library wrappers, the installer) reads one state without
importing the others.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any, Final, final
from urllib.parse import urlsplit

DEFAULT_MAX_BODY: Final = 16 * 1024
"""Bodies longer than this many bytes keep their first bytes only (``*_body_truncated``)."""
DROP_CATEGORY: Final = "http_capture"
"""The ``stats()["dropped_by_reason"]`` key for events this module failed to build."""
LOG: Final = logging.getLogger("pytest_replay.capture")

# -- configuration and per-call state ---------------------------------------------------


@final
class HttpCaptureConfig:
    """What :func:`install_http_capture` was told: hosts left out, body cap."""

    __slots__ = ("exact_hosts", "host_suffixes", "max_body")

    def __init__(self, exclude_hosts: Iterable[str], max_body: int) -> None:
        exact: set[str] = set()
        suffixes: list[str] = []
        for host in exclude_hosts:
            name = host.strip().lower()
            if name.startswith("*."):
                suffixes.append(name[1:])
            elif name.startswith("."):
                suffixes.append(name)
            elif name:
                exact.add(name)
        self.exact_hosts = frozenset(exact)
        self.host_suffixes = tuple(suffixes)
        self.max_body = max_body

    def with_max_body(self, max_body: int) -> HttpCaptureConfig:
        """The same hosts left out, with another body cap (replay uses production's)."""
        other = HttpCaptureConfig((), max_body)
        other.exact_hosts, other.host_suffixes = self.exact_hosts, self.host_suffixes
        return other

    def excluded(self, url: str) -> bool:
        """Whether calls to ``url``'s host are left out of the trace."""
        if not self.exact_hosts and not self.host_suffixes:
            return False
        try:
            host = (urlsplit(url).hostname or "").lower()
        except ValueError:
            return False
        return host in self.exact_hosts or host.endswith(self.host_suffixes)


@final
class _State:
    """What is installed: process-wide by nature, like the patched classes themselves."""

    __slots__ = ("config", "enabled", "lock", "patches")

    def __init__(self) -> None:
        self.config = HttpCaptureConfig((), DEFAULT_MAX_BODY)
        self.enabled = False
        self.lock = threading.Lock()
        self.patches: list[tuple[Any, str, Any, Any]] = []  # owner, name, original, wrapper


STATE: Final = _State()
LAYER: ContextVar[str | None] = ContextVar("replay_http_layer", default=None)


class ServedError(Exception):
    """Raised by replay's stubs below the client library; capture re-raises ``replacement``.

    The libraries between the stub and the application wrap ``OSError`` into
    their own errors (and urllib3 retries them). This class is no ``OSError``,
    so it travels through them untouched up to the outermost capture wrapper,
    which raises ``replacement`` in its place: the error the recording holds,
    or :class:`~pytest_replay.replay.external.UnrecordedCall`.
    """

    def __init__(self, replacement: BaseException) -> None:
        super().__init__(str(replacement))
        self.replacement = replacement


def active_layer() -> str | None:
    """The client library that owns the HTTP call in progress (``"httpx"``...), or None."""
    return LAYER.get()


def http_capture_installed() -> bool:
    """Whether :func:`install_http_capture` is in effect."""
    return STATE.enabled

