"""Which servers answer a replay's outside calls, built from the recorded events."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pytest_replay.config import ReplayConfig
from pytest_replay.format import events as ev
from pytest_replay.format.events import Event
from pytest_replay.replay.sandbox import Server


def servers_for(recorded: Sequence[Event], config: ReplayConfig, seed: str, *,
                http: bool = True, database: bool = True,
                overrides: Any | None = None) -> list[Server]:
    """The network seal, HTTP and database calls served from ``recorded``, and chance.

    ``seed`` (the request id) makes unrecorded random draws the same on every
    replay. ``overrides`` (an ``HttpOverrides``) answers HTTP calls first, for
    what-if replays. ``http=False`` (``--no-mock-apis``) lets HTTP reach the
    real network and lifts the seal; ``database=False`` lets database clients
    connect for real. Both are explicit choices of the command line only, and
    the calls are still captured so they are compared.
    """
    from pytest_replay.replay.db_serve import serve_database
    from pytest_replay.replay.determinism import serve_nondeterminism
    from pytest_replay.replay.http_serve import serve_http
    from pytest_replay.replay.network import seal_network

    served: dict[Any, list[Event]] = {ev.NONDETERMINISM: [], ev.HTTP_CALL: [], ev.DB_CALL: []}
    for event in recorded:  # one pass, in recorded order
        kind = event.get("event_type")
        calls = served.get(kind) if type(kind) is str else None
        if calls is not None:
            calls.append(event)
    chance, http_calls, db_calls = (served[ev.NONDETERMINISM], served[ev.HTTP_CALL],
                                    served[ev.DB_CALL])
    servers: list[Server] = [lambda: serve_nondeterminism(chance, seed)]
    if http and database:
        servers.append(seal_network)
    if http:
        servers.append(lambda: serve_http(http_calls, match_on=config.http_match_on,
                                          overrides=overrides,
                                          max_body=config.http_max_body()))
    else:
        servers.append(_capturing_http)
    if database:
        servers.append(lambda: serve_database(db_calls))
    else:
        servers.append(_capturing_database)
    return servers


def _capturing_http() -> Any:
    from pytest_replay.capture.http import install_http_capture, uninstall_http_capture

    return _Installed("http", install_http_capture, uninstall_http_capture)


def _capturing_database() -> Any:
    from pytest_replay.capture.db import install_db_capture, uninstall_db_capture

    return _Installed("database", install_db_capture, uninstall_db_capture)


class _Installed:
    """Capture installed for one replay whose calls go to the real world (explicitly)."""

    def __init__(self, kind: Any, install: Any, uninstall: Any) -> None:
        from pytest_replay.replay.external import ServedCalls

        self.report = ServedCalls(kind)
        self._install, self._uninstall = install, uninstall

    def __enter__(self) -> Any:
        self._install()
        return self.report

    def __exit__(self, *_exc: object) -> None:
        self._uninstall()
