"""Every kind of ``@traced`` call, captured and printed: run once per implementation.

``test_capture_speedups`` runs this module in two processes, one with the C
accelerator and one with ``TELEMETRY_REPLAY_PURE_PYTHON=1``, and compares the
lines byte for byte (ids, clocks and durations aside). The first output line
names the implementation that ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest_replay as replay
from pytest_replay.capture._speedups_loader import implementation
from pytest_replay.capture.redact import Redaction
from pytest_replay.format.values import Limits


class Level(enum.IntEnum):
    LOW = 1


class Text(str):
    pass


class Number(float):
    pass


class Point:
    def __init__(self, x: int, y: int) -> None:
        self.x = x
        self.y = y


FLOATS: list[float] = [
    0.0, -0.0, 1.0, -1.0, 100.0, 0.08, 0.1 + 0.2, 1 / 3, 19.99, -19.99, 123456.789, 1e-5, 1e-6,
    1e-7, 2.5e-5, 0.000123456789, 1e14, 999999999999999.9, 1e15, 1e16, 1.5e16, 1e21, 1e300,
    5e-324, 1.7976931348623157e308, 9007199254740993.0, float("nan"), float("inf"),
    float("-inf"),
]
INTS: list[int] = [0, 1, -1, 2**31, 2**63 - 1, -(2**63), 2**63, 2**64 - 1, 2**64, -(2**63) - 1,
                   10**30]
STRINGS: list[str] = [
    "", "a", "plain words", "".join(chr(c) for c in range(128)), 'quote"back\\slash',
    "tab\tnew\nline", "héllo wörld", "日本語", "emoji 😀", "\ud800 lone", "x" * 5000,
    "Bearer abc.def.ghi-secret-token-value", "api_key=1234567890abcdef", "short",
]
OTHERS: list[Any] = [None, True, False, Level.LOW, Text("sub"), Number(2.5), [1, 2.5, "x"],
                     {"a": 1, "b": [True, None]}, (1, 2), {3, 1, 2}, Point(1, 2), b"bytes",
                     {"password": "hunter2"}]


@replay.traced
def one(x: Any) -> Any:
    return x


@replay.traced
def two(a: Any, b: Any) -> Any:
    return b


@replay.traced
def three(a: Any, b: Any, c: Any) -> Any:
    return (a, b, c) if c == "tuple" else a


@replay.traced
def four(a: Any, b: Any, c: Any, d: Any) -> Any:
    return d


@replay.traced
def nothing() -> None:
    return None


@replay.traced
def login(user: str, password: str) -> str:
    return "ok"


@replay.traced
def issue_api_key(user: str) -> str:
    return "k-123456789"


@replay.traced
def spread(first: Any, *items: Any, scale: float = 1.0, **named: Any) -> int:
    return len(items) + len(named)


@replay.traced
def fails(x: Any) -> None:
    detail = f"bad {x!r}"
    raise ValueError(detail)


@replay.traced
def catches(x: Any) -> str:
    try:
        fails(x)
    except ValueError:
        return "caught"
    return "unreachable"


@replay.traced
def rethrows(x: Any) -> None:
    try:
        fails(x)
    except ValueError as exc:
        raise RuntimeError("wrapped") from exc


@replay.traced
def numbers(n: int) -> Iterator[int]:
    yield from range(n)


@replay.traced
def parent(name: str, *args: Any, **kwargs: Any) -> Any:
    """Calls a traced function by name: a function passed as a value is recorded as one
    only once the encoder knows the C wrapper (see test_a_traced_function_as_a_value)."""
    return FUNCTIONS[name](*args, **kwargs)


@replay.traced
async def task(x: int) -> Any:
    await asyncio.sleep(0)
    return parent("two", x, float(x))


class Account:
    def __init__(self, owner: str) -> None:
        self.owner = owner

    @replay.traced
    def deposit(self, amount: float) -> float:
        return amount

    @classmethod
    @replay.traced
    def opened(cls, owner: str) -> Account:
        return cls(owner)

    @staticmethod
    @replay.traced
    def fee(amount: float) -> float:
        return amount * 0.01


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "one": one, "two": two, "three": three, "nothing": nothing, "login": login,
    "issue_api_key": issue_api_key, "spread": spread, "catches": catches, "rethrows": rethrows,
    "numbers": numbers, "fee": Account.fee, "deposit": Account.deposit,
}


def calls() -> None:
    """Each value alone, nested and at the root; mixed arities; every path of the wrapper."""
    for value in [*FLOATS, *INTS, *STRINGS, *OTHERS]:
        one(value)
        parent("one", value)
        parent("two", value, value)
        parent("three", 1, value, "c")
        four(value, 1, 2.5, "d")
    parent("three", 1, 2, "tuple")
    nothing()
    parent("nothing")
    login("ann", "hunter2")
    parent("login", "ann", "hunter2")
    issue_api_key("ann")
    parent("issue_api_key", "ann")
    spread(1, 2, 3, scale=2.0, extra="e")
    parent("spread", 1, 2, 3, scale=2.0, extra="e")
    one(x=5)
    parent("one", x=5.5)
    parent("catches", 7)
    with contextlib.suppress(RuntimeError):
        parent("rethrows", 8)
    with contextlib.suppress(ValueError):
        fails(9)
    list(parent("numbers", 3))
    account = Account.opened("bob")
    parent("deposit", account, 5.0)
    account.deposit(6.5)
    Account.fee(100.0)
    parent("fee", 100.0)

    async def both() -> list[Any]:
        return list(await asyncio.gather(task(1), task(2)))

    asyncio.run(both())


def main() -> int:
    """Capture :func:`calls` under several configurations; print the implementation and lines."""
    out = sys.stdout.buffer
    out.write(implementation().encode() + b"\n")
    settings: list[dict[str, Any]] = [
        {},
        {"service": "shop%d"},
        {"limits": Limits(max_str=8, max_items=3)},
        {"redact": Redaction(values=False)},
        {"redact": Redaction(everywhere=True)},
        {"redact": False},
        {"sample_rate": 0.0},
    ]
    for options in settings:
        sink = replay.MemorySink()
        replay.configure(sink=sink, capture_http=False, capture_db=False, capture_chance=False,
                         **options)
        calls()
        with replay.request_scope("req-1", trace_id="trace-1", parent_correlation_id="up-1"):
            one(1.5)
            parent("one", "in a request")
            one(2.5)  # a second root of the same request
        replay.shutdown()
        out.write(f"-- {sorted(options)}\n".encode())
        out.writelines(sink.lines)
    out.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
