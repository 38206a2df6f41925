"""redis-py: every command through ``Redis.execute_command``, and pipelines as one call each.

A command's ``statement`` is its name and arguments as short text (for
reading); ``parameters`` holds the arguments encoded (for matching) and
``result`` the reply as the application received it. Arguments of ``AUTH``
and ``HELLO``, and hash values stored under secret-looking field names, are
redacted, and so are those values when ``HGET``/``HMGET`` read them back
(alone or in a pipeline). Async clients (``redis.asyncio``) are not captured.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

from redis.client import Pipeline, Redis
from redis.connection import AbstractConnection

from pytest_replay.capture.db_patch import Patch
from pytest_replay.capture.db_record import (
    COMMAND,
    PIPELINE,
    Call,
    Ids,
    capture_failed,
    ids_for,
    quiet_nondeterminism,
    quietly,
    restore_nondeterminism,
)
from pytest_replay.capture.db_sql import Method
from pytest_replay.capture.runtime import RUNTIME
from pytest_replay.format.values import REDACTED_TEXT, redacted

SYSTEM: Final = "redis"
_SECRET_COMMANDS: Final = frozenset({"AUTH", "HELLO"})
_FIELD_VALUE_COMMANDS: Final = frozenset({"HSET", "HMSET", "HSETNX"})
_FIELD_READ_COMMANDS: Final = frozenset({"HGET", "HMGET"})
_SHOWN: Final = 64
_STATEMENT_LIMIT: Final = 1024


def _text(arg: Any) -> str:
    if isinstance(arg, str):
        text = arg
    elif isinstance(arg, (bytes, bytearray, memoryview)):
        text = bytes(arg[:_SHOWN + 1]).decode("utf-8", "replace")
    elif isinstance(arg, (int, float)):
        text = repr(arg)
    else:
        return f"<{type(arg).__name__}>"
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


def command_parts(args: Sequence[Any]) -> tuple[str, list[Any]]:
    """``(statement, parameters)`` of one command: readable text, and its encoded arguments."""
    name = _text(args[0]) if args else ""
    rest = args[1:]
    upper = name.upper()
    if upper in _SECRET_COMMANDS:
        return f"{name} {REDACTED_TEXT}" if rest else name, [redacted() for _ in rest]
    shown = [_text(arg) for arg in rest]
    encode = RUNTIME.encode
    parameters = [encode(arg) for arg in rest]
    if upper in _FIELD_VALUE_COMMANDS:
        is_secret = RUNTIME.is_secret
        for index in range(1, len(rest) - 1, 2):
            if is_secret(shown[index]):
                shown[index + 1] = REDACTED_TEXT
                parameters[index + 1] = redacted()
    statement = " ".join([name, *shown])
    if len(statement) > _STATEMENT_LIMIT:
        statement = statement[:_STATEMENT_LIMIT] + "..."
    return statement, parameters


def secret_fields(args: Sequence[Any]) -> list[int] | None:
    """Where a field read's reply holds a secret: ``[0]`` for ``HGET key password`` (the
    reply itself, as ``-1``), the positions of secret fields for ``HMGET``; None if none."""
    command = _text(args[0]).upper() if len(args) >= 3 else ""
    if command not in _FIELD_READ_COMMANDS:
        return None
    is_secret = RUNTIME.is_secret
    if command == "HGET":
        return [-1] if is_secret(_text(args[2])) else None
    fields = args[2:]
    if len(fields) == 1 and isinstance(fields[0], (list, tuple)):
        fields = fields[0]
    found = [index for index, field in enumerate(fields) if is_secret(_text(field))]
    return found or None


def _hide_fields(positions: list[int], encoded: Any) -> Any:
    if positions == [-1]:
        return encoded if encoded is None else redacted()
    if type(encoded) is not list:
        return encoded
    out = list(encoded)
    for index in positions:
        if index < len(out) and out[index] is not None:
            out[index] = redacted()
    return out


def reply_hider(commands: Sequence[Sequence[Any]], pipeline: bool
                ) -> Callable[[Any], Any] | None:
    """What redacts the encoded reply of ``commands`` (one command, or a pipeline's list):
    hash fields read back under secret names (``HGET``/``HMGET``), as ``HSET`` hides them
    when written. None when nothing is to be hidden."""
    found = [secret_fields(args) for args in commands]
    if not any(found):
        return None

    def hide(encoded: Any) -> Any:
        if not pipeline:
            return _hide_fields(found[0], encoded) if found[0] else encoded
        if type(encoded) is not list:
            return encoded
        return [_hide_fields(positions, item) if positions else item
                for positions, item in zip(found, encoded, strict=False)]

    return hide


def pipeline_parts(commands: Sequence[Sequence[Any]], transaction: bool) -> tuple[str, list[Any]]:
    """``(statement, parameters)`` of a pipeline: every command, in order."""
    statements: list[str] = []
    parameters: list[Any] = []
    for args in commands:
        statement, encoded = command_parts(args)
        statements.append(statement)
        parameters.append([_text(args[0]) if args else "", *encoded])
    text = ("MULTI: " if transaction else "PIPELINE: ") + "; ".join(statements)
    if len(text) > _STATEMENT_LIMIT:
        text = text[:_STATEMENT_LIMIT] + "..."
    return text, parameters


def command_call(ids: Ids, args: Sequence[Any]) -> Call | None:
    """Start recording one command (None if even that fails: counted, never raised)."""
    try:
        statement, parameters = command_parts(args)
        return Call(SYSTEM, COMMAND, ids, statement, parameters)
    except Exception as exc:
        capture_failed(exc)
        return None


def pipeline_call(ids: Ids, commands: Sequence[Sequence[Any]], transaction: bool
                  ) -> Call | None:
    """Start recording one pipeline execution."""
    try:
        statement, parameters = pipeline_parts(commands, transaction)
        return Call(SYSTEM, PIPELINE, ids, statement, parameters)
    except Exception as exc:
        capture_failed(exc)
        return None


def is_transaction(pipeline: Any) -> bool:
    """Whether a pipeline runs inside MULTI/EXEC."""
    return bool(pipeline.transaction or pipeline.explicit_transaction)


def _recorded(original: Method, open_call: Callable[[Any, Any, tuple[Any, ...]], Any],
              hider: Callable[[Any, tuple[Any, ...]], Callable[[Any], Any] | None]) -> Method:
    """``original`` recording one ``db_call``, opened by ``open_call(self, ids, args)``.

    ``open_call`` answers None for a call not to record (no command, capture off);
    ``hider(self, args)`` what redacts parts of the reply (asked before the call: a
    pipeline's queue is emptied by it).
    """

    def recorded(self: Any, *args: Any, **kwargs: Any) -> Any:
        ids = ids_for(SYSTEM)
        call = None if ids is None else open_call(self, ids, args)
        if call is None:
            return original(self, *args, **kwargs)
        try:
            hide = hider(self, args)
        except Exception as exc:
            capture_failed(exc)
            hide = None
        quiet = quiet_nondeterminism()  # retry back-off draws are redis-py's, not the app's
        try:
            value = original(self, *args, **kwargs)
        except Exception as exc:
            call.failed(exc)
            raise
        finally:
            restore_nondeterminism(quiet)
        call.result(value, hide)
        return value

    recorded.__name__ = getattr(original, "__name__", "recorded")
    recorded.__qualname__ = getattr(original, "__qualname__", "recorded")
    recorded.__wrapped__ = original  # type: ignore[attr-defined]
    return recorded


def _command_hider(self: Any, args: tuple[Any, ...]) -> Callable[[Any], Any] | None:
    return reply_hider([args], False) if args else None


def _pipeline_hider(self: Any, args: tuple[Any, ...]) -> Callable[[Any], Any] | None:
    return reply_hider([command for command, _options in self.command_stack], True)


def _command(self: Any, ids: Any, args: tuple[Any, ...]) -> Any:
    return command_call(ids, args) if args else None


def _pipeline(self: Any, ids: Any, args: tuple[Any, ...]) -> Any:
    stack = self.command_stack
    if not stack:
        return None
    return pipeline_call(ids, [command for command, _options in stack], is_transaction(self))


def _wrap_command(original: Method) -> Method:
    return _recorded(original, _command, _command_hider)


def _wrap_pipeline(original: Method) -> Method:
    return _recorded(original, _pipeline, _pipeline_hider)


def install() -> list[Patch]:
    """Wrap ``Redis.execute_command`` and the pipeline's entry points."""
    patches = [
        Patch(Redis, "execute_command", _wrap_command(vars(Redis)["execute_command"])),
        Patch(Pipeline, "immediate_execute_command",
              _wrap_command(vars(Pipeline)["immediate_execute_command"])),
        Patch(Pipeline, "execute", _wrap_pipeline(vars(Pipeline)["execute"])),
        Patch(AbstractConnection, "connect", quietly(vars(AbstractConnection)["connect"])),
    ]
    return [patch.apply() for patch in patches]
