"""HTTP capture: one ``http_call`` event per outbound call, whatever client made it.

:func:`install_http_capture` wraps the public entry points of requests
(``Session.send``), httpx (``Client.send``, ``AsyncClient.send``), urllib3
(``HTTPConnectionPool.urlopen``) and http.client (``HTTPConnection.request`` +
``getresponse``, which urllib.request also uses). Each library is imported only
by the installer, and only when it is installed.

The outermost wrapper owns the call: it sets a context variable naming its
layer, so the layers below it (requests -> urllib3 -> http.client) pass
through and one call is one event. The same wrappers run during replay, so a
served call emits the same event the recorded one did; for that, everything
written here is deterministic and redaction is idempotent (redacting a
redacted request gives it back unchanged).

Capture never raises into the application and never consumes a streamed body
the application has not read: such a body is marked ``*_body_skipped``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterable
from typing import Any, Final

from pytest_replay.capture.http_client import http_client_wrappers, wrap_http_client_class
from pytest_replay.capture.http_event import as_written, body_fields, request_fields
from pytest_replay.capture.http_libs import (
    wrap_httpx_async_send,
    wrap_httpx_send,
    wrap_requests_send,
    wrap_urlopen,
)
from pytest_replay.capture.http_redact import REDACTED_CARD, redact_headers, redact_url
from pytest_replay.capture.http_state import (
    DEFAULT_MAX_BODY,
    LOG,
    STATE,
    HttpCaptureConfig,
    ServedError,
    active_layer,
    http_capture_installed,
)

__all__ = [
    "DEFAULT_MAX_BODY",
    "REDACTED_CARD",
    "HttpCaptureConfig",
    "ServedError",
    "active_layer",
    "as_written",
    "body_fields",
    "http_capture_installed",
    "install_http_capture",
    "redact_headers",
    "redact_url",
    "request_fields",
    "uninstall_http_capture",
    "wrap_http_client_class",
]


# -- installing --------------------------------------------------------------------------


def _patch(owner: Any, name: str, make: Callable[[Callable[..., Any]], Callable[..., Any]]
           ) -> None:
    original = owner.__dict__[name]
    wrapper = make(original)
    setattr(owner, name, wrapper)
    STATE.patches.append((owner, name, original, wrapper))


def _install_http_client() -> None:
    import http.client

    https = http.client.HTTPSConnection
    wrap_request, wrap_getresponse = http_client_wrappers(
        lambda conn: "https" if isinstance(conn, https) else "http")
    _patch(http.client.HTTPConnection, "request", wrap_request)
    _patch(http.client.HTTPConnection, "getresponse", wrap_getresponse)


def _install_urllib3() -> None:
    connectionpool = importlib.import_module("urllib3.connectionpool")
    _patch(connectionpool.HTTPConnectionPool, "urlopen", wrap_urlopen)


def _install_requests() -> None:
    sessions = importlib.import_module("requests.sessions")
    _patch(sessions.Session, "send", wrap_requests_send)


def _install_httpx() -> None:
    httpx = importlib.import_module("httpx")
    _patch(httpx.Client, "send", wrap_httpx_send)
    _patch(httpx.AsyncClient, "send", wrap_httpx_async_send)


_INSTALLERS: Final = (
    ("http.client", _install_http_client),
    ("urllib3", _install_urllib3),
    ("requests", _install_requests),
    ("httpx", _install_httpx),
)


_MISSING: dict[str, tuple[str, ...]] = {}
"""Client libraries found missing, with the ``sys.path`` they were looked for on."""


def _installed(name: str) -> bool:
    """Whether the library ``name`` can be imported; a miss is remembered per ``sys.path``.

    Replay installs capture for every run, and looking for a library that is
    not there walks every path entry (about 30 us each time).
    """
    if name in sys.modules:
        return True
    searched = tuple(sys.path)
    if _MISSING.get(name) == searched:
        return False
    if importlib.util.find_spec(name) is None:
        _MISSING[name] = searched
        return False
    _MISSING.pop(name, None)
    return True


def install_http_capture(*, exclude_hosts: Iterable[str] = (),
                         max_body: int = DEFAULT_MAX_BODY) -> None:
    """Capture outbound HTTP calls of every installed client library as ``http_call`` events.

    Idempotent and thread-safe; calling it again only changes the options.
    ``exclude_hosts`` leaves calls to those hosts out (``"api.example.com"``,
    or ``"*.example.com"`` for a domain); ``max_body`` caps each body in bytes.
    A call is written only inside a sampled request while capture is active.
    """
    if isinstance(exclude_hosts, str):
        raise TypeError("exclude_hosts takes a sequence of host names, not one string")
    if max_body < 0:
        raise ValueError(f"max_body must be 0 or more bytes, got {max_body!r}")
    with STATE.lock:
        STATE.config = HttpCaptureConfig(exclude_hosts, max_body)
        if STATE.enabled:
            return
        for module, installer in _INSTALLERS:
            if not _installed(module.partition(".")[0]):
                continue
            try:
                installer()
            except Exception as exc:  # an incompatible version: capture the others
                LOG.warning("telemetry-replay: HTTP capture for %s not installed: %s: %s",
                             module, type(exc).__name__, exc)
        STATE.enabled = True


def uninstall_http_capture() -> None:
    """Remove what :func:`install_http_capture` installed (idempotent, thread-safe)."""
    with STATE.lock:
        STATE.enabled = False
        while STATE.patches:
            owner, name, original, wrapper = STATE.patches.pop()
            if owner.__dict__.get(name) is wrapper:
                setattr(owner, name, original)
            else:  # someone wrapped us since; ours stays, inert, under theirs
                LOG.warning("telemetry-replay: %s.%s was re-patched after HTTP capture; "
                             "the capture wrapper stays in place, disabled",
                             getattr(owner, "__qualname__", owner), name)
        STATE.config = HttpCaptureConfig((), DEFAULT_MAX_BODY)
