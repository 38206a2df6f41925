"""Which servers answer a replay's outside calls, built from the recorded events."""

from __future__ import annotations

from collections.abc import Sequence

from pytest_replay.config import ReplayConfig
from pytest_replay.format import events as ev
from pytest_replay.format.events import Event
from pytest_replay.replay.sandbox import Server


def servers_for(recorded: Sequence[Event], config: ReplayConfig, seed: str, *,
                http: bool = True, database: bool = True) -> list[Server]:
    """The network seal, HTTP and database calls served from ``recorded``, and chance.

    ``seed`` (the request id) makes unrecorded random draws the same on every
    replay. ``http=False`` (``--no-mock-apis``) lets HTTP reach the real
    network and lifts the seal; ``database=False`` lets database clients
    connect for real. Both are explicit choices of the command line only.
    """
    from pytest_replay.replay.determinism import serve_nondeterminism

    chance = [e for e in recorded if e.get("event_type") == ev.NONDETERMINISM]
    servers: list[Server] = [lambda: serve_nondeterminism(chance, seed)]
    http_calls = [e for e in recorded if e.get("event_type") == ev.HTTP_CALL]
    db_calls = [e for e in recorded if e.get("event_type") == ev.DB_CALL]
    try:  # INTEGRATION-PENDING: these modules are being written; remove the guards
        from pytest_replay.replay.network import seal_network

        if http and database:
            servers.append(seal_network)
    except ModuleNotFoundError:
        pass
    try:
        from pytest_replay.replay.http_serve import serve_http

        if http:
            servers.append(lambda: serve_http(http_calls, match_on=config.http_match_on))
    except ModuleNotFoundError:
        pass
    try:
        from pytest_replay.replay.db_serve import serve_database

        if database:
            servers.append(lambda: serve_database(db_calls))
    except ModuleNotFoundError:
        pass
    return servers
