"""redis-py during a replay: commands and pipelines answered from the recording.

``redis.Redis(...)`` opens nothing until a command runs, so clients made
before the replay (at import time) are served too. While serving, any
attempt to open a real Redis connection is refused.
"""

from __future__ import annotations

from typing import Any

import redis.exceptions
from redis.client import Pipeline, Redis
from redis.connection import AbstractConnection

from pytest_replay.capture.db_patch import Patch
from pytest_replay.capture.db_record import COMMAND, PIPELINE, Call, ids_for
from pytest_replay.capture.db_redis import (
    SYSTEM,
    command_parts,
    is_transaction,
    pipeline_parts,
)
from pytest_replay.format.values import TAG
from pytest_replay.replay.db_session import DatabaseSession, Recorded, current_session
from pytest_replay.replay.external import UnrecordedCall


def _reply(session: DatabaseSession, recorded: Recorded) -> Any:
    value = recorded.event["result"]
    if recorded.operation == PIPELINE and isinstance(value, list):
        return [_pipeline_item(session, recorded, item, index) for index, item in enumerate(value)]
    return session.decoded(recorded, value, "result")


def _pipeline_item(session: DatabaseSession, recorded: Recorded, item: Any, index: int) -> Any:
    """A pipeline reply; a recorded Redis error (``raise_on_error=False``) is rebuilt."""
    if isinstance(item, dict) and item.get(TAG) == "exception":
        path = str(item.get("class", ""))
        module, _, name = path.partition(":")
        if module == "redis.exceptions":
            cls = getattr(redis.exceptions, name, None)
            if isinstance(cls, type) and issubclass(cls, Exception):
                return cls(str(item.get("message", "")))
    return session.decoded(recorded, item, f"result[{index}]")


def _serve(operation: str, statement: str, parameters: list[Any]) -> Any:
    session = current_session()
    ids = ids_for(SYSTEM)
    call = Call(SYSTEM, operation, ids, statement, parameters) if ids is not None else None
    try:
        recorded = session.take(SYSTEM, operation, statement, parameters)
        value = None if recorded.error_class is not None else _reply(session, recorded)
    except UnrecordedCall as exc:
        if call is not None:
            call.failed(exc)
        raise
    error = recorded.error()
    if error is not None:
        if call is not None:
            call.failed(error)
        raise error
    if call is not None:
        call.result(value)
    return value


def _served_command(self: Any, *args: Any, **options: Any) -> Any:
    statement, parameters = command_parts(args)
    return _serve(COMMAND, statement, parameters)


def _served_immediate(self: Any, *args: Any, **options: Any) -> Any:
    value = _served_command(self, *args, **options)
    name = args[0] if args else None
    if name == "WATCH":
        self.watching = True
    elif name in getattr(self, "UNWATCH_COMMANDS", ()):
        self.watching = False
    return value


def _served_pipeline(self: Any, raise_on_error: bool = True) -> Any:
    stack = self.command_stack
    if not stack:
        self.reset()
        return []
    try:
        statement, parameters = pipeline_parts([args for args, _options in stack],
                                               is_transaction(self))
        return _serve(PIPELINE, statement, parameters)
    finally:
        self.reset()


def _refuse_connect(self: Any, *args: Any, **kwargs: Any) -> None:
    where = f"{getattr(self, 'host', '?')}:{getattr(self, 'port', '?')}"
    raise current_session().calls.refuse(
        f"redis connect: {where}",
        f"unrecorded database call: redis connection to {where}; only commands sent through "
        "Redis.execute_command and pipelines are served",
    )


def serve() -> list[Patch]:
    """Swap redis-py's command entry points for served ones (restored by the caller)."""
    patches = [
        Patch(Redis, "execute_command", _served_command),
        Patch(Pipeline, "immediate_execute_command", _served_immediate),
        Patch(Pipeline, "execute", _served_pipeline),
        Patch(AbstractConnection, "connect", _refuse_connect),
    ]
    return [patch.apply() for patch in patches]
