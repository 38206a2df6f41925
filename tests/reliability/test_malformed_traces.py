"""Every malformed input has a defined outcome, and none hangs, blows up memory or raises.

Each case is read with ``read_trace`` and modelled with ``build_trace``; the test
states exactly which problems come out (severity, line, field, column) and
which lines survive as events. The heavy inputs (a 50 MB line, 10,000-deep
nesting) run in a child process under a memory limit and a timeout, so a
hang or a runaway allocation fails the test instead of the machine.
"""

from __future__ import annotations

import gzip
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import orjson
import pytest

from pytest_replay.format.events import FIELD_TYPES
from pytest_replay.format.reader import ReadResult, read_trace
from pytest_replay.model import Trace, build_trace

WATCHDOG_SECONDS = 30
CHILD_TIMEOUT_SECONDS = 60
CHILD_MEMORY_BYTES = 2 * 1024**3


@pytest.fixture(autouse=True)
def watchdog() -> Iterator[None]:
    """Fail (rather than hang) any case that takes far longer than it should."""

    def expired(_signum: int, _frame: FrameType | None) -> None:
        raise TimeoutError(f"case still running after {WATCHDOG_SECONDS} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(WATCHDOG_SECONDS)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def ev(**fields: Any) -> bytes:
    return orjson.dumps(fields) + b"\n"


def entry(cid: str = "r1", ts: int = 1, **extra: Any) -> bytes:
    return ev(event_type="function_entry", timestamp_ns=ts, correlation_id=cid,
              function_name="f", **extra)


def leave(cid: str = "r1", ts: int = 9) -> bytes:
    return ev(event_type="function_exit", timestamp_ns=ts, correlation_id=cid, return_value=1)


GOOD = entry() + ev(event_type="variable_change", timestamp_ns=2, correlation_id="r1",
                    variable_name="x", value=1) + leave()
"""Three good lines: most cases put their bad line between or after them."""

Problem = tuple[str, int, "str | None"]


@dataclass(frozen=True)
class Case:
    """One malformed input and everything that must come out of it."""

    id: str
    data: bytes
    problems: tuple[Problem, ...]
    kept: tuple[int, ...]
    column: int | None = None


def _middle(bad: bytes) -> bytes:
    first, second, third = GOOD.splitlines(keepends=True)
    return first + bad + b"\n" + second + third


def _flipped(zipped: bytes) -> bytes:
    """A gzip stream with 30 bytes of its compressed body inverted."""
    return zipped[:30] + bytes(byte ^ 0xFF for byte in zipped[30:60]) + zipped[60:]


CASES: tuple[Case, ...] = (
    Case("truncated-last-line", GOOD + b'{"event_type": "function_exit", "times',
         (("warning", 4, None),), (1, 2, 3)),
    Case("corrupt-middle-line", _middle(b'{"event_type": "context", oops}'),
         (("error", 2, None),), (1, 3, 4), column=27),
    Case("invalid-utf8", _middle(b'{"event_type": "context", "x": "\xff"}'),
         (("error", 2, None),), (1, 3, 4), column=33),
    Case("overlong-utf8", _middle(b'{"event_type": "context", "x": "\xc0\xaf"}'),
         (("error", 2, None),), (1, 3, 4), column=33),
    Case("bom", b"\xef\xbb\xbf" + GOOD, (), (1, 2, 3)),
    Case("bom-not-at-start", _middle(b"\xef\xbb\xbf" + entry("r2").rstrip()),
         (("error", 2, None),), (1, 3, 4)),
    Case("crlf", GOOD.replace(b"\n", b"\r\n"), (), (1, 2, 3)),
    Case("blank-lines", b"\n  \n" + GOOD.replace(b"\n", b"\n\t\n"), (), (3, 5, 7)),
    Case("empty-file", b"", (), ()),
    Case("only-blank-lines", b"\n\r\n   \n", (), ()),
    Case("nul-bytes", _middle(b"\x00\x00\x00"), (("error", 2, None),), (1, 3, 4)),
    Case("raw-control-character", _middle(b'{"event_type": "context", "x": "a\x01b"}'),
         (("error", 2, None),), (1, 3, 4)),
    Case("trailing-garbage", _middle(b'{"event_type": "context"} extra'),
         (("error", 2, None),), (1, 3, 4)),
    Case("two-objects-one-line", _middle(b'{"event_type": "context"}{"event_type": "context"}'),
         (("error", 2, None),), (1, 3, 4)),
    Case("array-not-object", _middle(b"[1, 2]"), (("error", 2, None),), (1, 3, 4)),
    Case("string-not-object", _middle(b'"event_type"'), (("error", 2, None),), (1, 3, 4)),
    Case("null-not-object", _middle(b"null"), (("error", 2, None),), (1, 3, 4)),
    Case("missing-event-type", _middle(b'{"correlation_id": "r1"}'),
         (("error", 2, "event_type"),), (1, 3, 4)),
    Case("nan", _middle(b'{"event_type": "context", "value": NaN}'),
         (("error", 2, None),), (1, 3, 4)),
    Case("infinity", _middle(b'{"event_type": "context", "value": Infinity}'),
         (("error", 2, None),), (1, 3, 4)),
    Case("minus-infinity", _middle(b'{"event_type": "context", "value": -Infinity}'),
         (("error", 2, None),), (1, 3, 4)),
    Case("float-overflow", _middle(b'{"event_type": "context", "value": 1e999}'),
         (("error", 2, None),), (1, 3, 4)),
    Case("nan-on-the-exact-path",
         _middle(b'{"event_type": "context", "n": 123456789012345678901, "value": NaN}'),
         (("error", 2, None),), (1, 3, 4)),
    Case("integers-past-64-bits",
         _middle(b'{"event_type": "context", "correlation_id": "r1", "n": 18446744073709551616,'
                 b' "m": -9223372036854775809}'), (), (1, 2, 3, 4)),
    Case("integer-over-4300-digits", _middle(b'{"event_type": "context", "n": ' + b"9" * 5000
                                             + b"}"), (("error", 2, None),), (1, 3, 4)),
    Case("deep-but-legal-nesting", _middle(b'{"event_type": "context", "correlation_id": "r1",'
                                           b' "v2": ' + b"[" * 500 + b"]" * 500 + b"}"),
         (), (1, 2, 3, 4)),
    Case("nesting-past-orjson-limit", _middle(b"[" * 2000 + b"]" * 2000),
         (("error", 2, None),), (1, 3, 4)),
    Case("lone-surrogate-escape", _middle(b'{"event_type": "context", "s": "\\udc00"}'),
         (("error", 2, None),), (1, 3, 4)),
    Case("duplicate-keys", _middle(b'{"event_type": "error", "event_type": "context",'
                                   b' "correlation_id": "r1"}'), (), (1, 2, 3, 4)),
    Case("duplicate-key-of-wrong-type-then-right",
         _middle(b'{"event_type": "context", "timestamp_ns": "x", "timestamp_ns": 5,'
                 b' "correlation_id": "r1"}'), (), (1, 2, 3, 4)),
    Case("version-zero", _middle(entry("r2", v=0).rstrip()), (("error", 2, "v"),), (1, 3, 4)),
    Case("version-from-the-future", _middle(entry("r2", v=7).rstrip()),
         (("warning", 2, "v"),), (1, 2, 3, 4)),
    Case("unknown-event-type", _middle(ev(event_type="cache_hit", correlation_id="r1").rstrip()),
         (("warning", 2, "event_type"),), (1, 2, 3, 4)),
    Case("empty-event-type", _middle(ev(event_type="", correlation_id="r1").rstrip()),
         (("warning", 2, "event_type"),), (1, 2, 3, 4)),
    Case("gzip-corrupt-body", _flipped(gzip.compress(GOOD * 50)), (("error", 1, None),), ()),
    Case("orphan-event", _middle(ev(event_type="variable_change", correlation_id="ghost",
                                    variable_name="x", value=1).rstrip()),
         (("warning", 2, "correlation_id"),), (1, 2, 3, 4)),
    Case("entry-with-empty-id", _middle(entry("").rstrip()),
         (("warning", 2, "correlation_id"), ("warning", 2, "correlation_id")), (1, 2, 3, 4)),
)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_malformed_input_has_a_defined_outcome(case: Case, tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    path.write_bytes(case.data)
    result = read_trace(path)
    trace = build_trace(result)
    got = tuple((p.severity, p.line, p.field) for p in trace.problems)
    assert got == case.problems, [str(p) for p in trace.problems]
    assert tuple(item.line for item in result.events) == case.kept
    for problem in trace.problems:
        assert str(problem).startswith(f"{path}:{problem.line}")
    if case.column is not None:
        assert trace.problems[0].column == case.column
        assert str(trace.problems[0]).startswith(f"{path}:{case.problems[0][1]}:{case.column}: ")


def test_gzip_that_ends_early_keeps_every_line_before(tmp_path: Path) -> None:
    data = b"".join(entry(f"r{i}") + leave(f"r{i}") for i in range(600))
    path = tmp_path / "trace.jsonl"
    path.write_bytes(gzip.compress(data)[:-40])
    trace = build_trace(read_trace(path))
    kept = [item.line for root in trace.roots for item in root.events]
    assert 0 < len(kept) < 1200 and kept == list(range(1, len(kept) + 1))
    (problem,) = trace.problems
    assert (problem.severity, problem.line) == ("warning", len(kept) + 1)
    assert "compressed stream ends early" in problem.message


# -- wrong types for every checked field --------------------------------------------------

_WRONG_VALUES: dict[str, tuple[Any, ...]] = {
    "a string": (5, ["x"], {"a": 1}, True),
    "an integer": ("5", 1.5, True, [1]),
    "true or false": (1, "true", 0),
    "an object": ([], "x", 3),
}
FIELD_CASES = [
    (name, value)
    for name, (_types, kind) in sorted(FIELD_TYPES.items())
    for value in _WRONG_VALUES[kind] + ((None,) if name == "event_type" else ())
]


@pytest.mark.parametrize(("field", "value"), FIELD_CASES,
                         ids=[f"{name}={value!r}" for name, value in FIELD_CASES])
def test_wrong_type_for_a_checked_field_is_an_error_naming_it(field: str, value: Any,
                                                              tmp_path: Path) -> None:
    bad = orjson.loads(entry("r2"))
    bad[field] = value
    path = tmp_path / "trace.jsonl"
    path.write_bytes(_middle(orjson.dumps(bad)))
    trace = build_trace(read_trace(path))
    (problem,) = trace.problems
    assert (problem.severity, problem.line, problem.field) == ("error", 2, field)
    assert str(problem).startswith(f"{path}:2: field '{field}': must be ")
    assert [root.correlation_id for root in trace.roots] == ["r1"]


def test_every_checked_field_is_covered() -> None:
    assert {name for name, _ in FIELD_CASES} == set(FIELD_TYPES)


# -- the model's share: order, cycles, chains ---------------------------------------------


def _trace(data: bytes, tmp_path: Path) -> tuple[ReadResult, Trace]:
    path = tmp_path / "trace.jsonl"
    path.write_bytes(data)
    result = read_trace(path)
    return result, build_trace(result)


def test_events_out_of_order_are_put_in_time_order(tmp_path: Path) -> None:
    data = (leave("r1", ts=90) + entry("c", ts=20, parent_correlation_id="r1")
            + entry("r1", ts=10) + leave("c", ts=30))
    _result, trace = _trace(data, tmp_path)
    assert [item.line for item in trace.roots[0].events] == [3, 2, 4, 1]
    assert trace.problems == []


def test_ids_forming_a_long_parent_ring_never_loop(tmp_path: Path) -> None:
    size = 10_000
    data = b"".join(entry(f"f{i}", parent_correlation_id=f"f{(i + 1) % size}")
                    for i in range(size))
    _result, trace = _trace(data + entry("root"), tmp_path)
    assert [root.correlation_id for root in trace.roots] == ["root"]
    cycle = [p for p in trace.problems if "parent cycle" in p.message]
    assert len(cycle) == size and all(p.severity == "warning" for p in cycle)


def test_two_frame_cycle_with_a_child_below(tmp_path: Path) -> None:
    data = (entry("a", parent_correlation_id="b") + entry("b", parent_correlation_id="a")
            + entry("c", parent_correlation_id="a")
            + ev(event_type="variable_change", correlation_id="c", variable_name="x", value=1))
    _result, trace = _trace(data, tmp_path)
    assert trace.roots == []
    assert [(p.line, p.field) for p in trace.problems] == [(1, "parent_correlation_id"),
                                                           (2, "parent_correlation_id"),
                                                           (3, "parent_correlation_id")]


def test_a_10000_deep_call_chain_is_modelled_without_recursion(tmp_path: Path) -> None:
    depth = 10_000
    data = entry("f0") + b"".join(entry(f"f{i}", parent_correlation_id=f"f{i - 1}")
                                  for i in range(1, depth))
    _result, trace = _trace(data, tmp_path)
    (root,) = trace.roots
    assert len(root.events) == depth
    deepest = trace.frames[f"f{depth - 1}"]
    assert len(deepest.path) == depth
    assert sum(1 for _ in root.frame.walk()) == depth


# -- heavy inputs, in a child process under limits ----------------------------------------

_CHILD = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
from pytest_replay.format.reader import read_trace
from pytest_replay.model import build_trace
result = read_trace(sys.argv[1])
trace = build_trace(result)
print(json.dumps({{
    "events": [item.line for item in result.events],
    "sizes": [len(json.dumps(item.event)) for item in result.events],
    "problems": [[p.severity, p.line, p.column, p.field, p.message[:120]]
                 for p in trace.problems],
    "roots": len(trace.roots),
}}))
"""

_FIFTY_MB = 50 * 1024 * 1024


def _bounded(path: Path) -> dict[str, Any]:
    """read_trace + build_trace in a child limited in memory and time."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD.format(limit=CHILD_MEMORY_BYTES), str(path)],
        capture_output=True, timeout=CHILD_TIMEOUT_SECONDS, check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def _heavy(tmp_path: Path, line: bytes) -> dict[str, Any]:
    path = tmp_path / "heavy.jsonl"
    with path.open("wb") as stream:
        stream.write(entry())
        stream.write(line)
        stream.write(leave())
    return _bounded(path)


def test_50mb_valid_line_is_read_within_limits(tmp_path: Path) -> None:
    blob = b'{"event_type": "context", "correlation_id": "r1", "blob": "' + b"x" * _FIFTY_MB
    answer = _heavy(tmp_path, blob + b'"}\n')
    assert answer["events"] == [1, 2, 3] and answer["problems"] == []
    assert answer["sizes"][1] > _FIFTY_MB


def test_50mb_garbage_line_is_an_error_within_limits(tmp_path: Path) -> None:
    answer = _heavy(tmp_path, b"{" + b"\x01" * _FIFTY_MB + b"}\n")
    assert answer["events"] == [1, 3]
    assert [p[:2] for p in answer["problems"]] == [["error", 2]]


def test_50mb_number_is_an_error_within_limits(tmp_path: Path) -> None:
    answer = _heavy(tmp_path, b'{"event_type": "context", "n": ' + b"7" * _FIFTY_MB + b"}\n")
    assert answer["events"] == [1, 3]
    assert [p[:2] for p in answer["problems"]] == [["error", 2]]


def test_50mb_unterminated_last_line_is_kept_aside_within_limits(tmp_path: Path) -> None:
    path = tmp_path / "heavy.jsonl"
    path.write_bytes(GOOD + b'{"event_type": "context", "blob": "' + b"y" * _FIFTY_MB)
    answer = _bounded(path)
    assert answer["events"] == [1, 2, 3]
    assert [p[:2] for p in answer["problems"]] == [["warning", 4]]


def test_line_over_the_64mib_cap_is_skipped_within_limits(tmp_path: Path) -> None:
    answer = _heavy(tmp_path, b'{"event_type": "context", "blob": "' + b"z" * (65 * 1024**2)
                    + b'"}\n')
    assert answer["events"] == [1, 3]
    assert answer["problems"][0][:2] == ["error", 2] and "cap" in answer["problems"][0][4]


@pytest.mark.parametrize("nested", [
    b"[" * 10_000 + b"]" * 10_000,
    b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    b'{"event_type": "context", "n": 123456789012345678901234, "deep": '
    + b"[" * 10_000 + b"]" * 10_000 + b"}",
], ids=["arrays", "objects", "arrays-on-the-exact-path"])
def test_10000_deep_nesting_is_an_error_within_limits(tmp_path: Path, nested: bytes) -> None:
    answer = _heavy(tmp_path, nested + b"\n")
    assert answer["events"] == [1, 3]
    assert [p[:2] for p in answer["problems"]] == [["error", 2]]
    assert "not valid JSON" in answer["problems"][0][4]


def test_child_limit_is_real() -> None:
    """The memory limit the heavy cases run under does stop a runaway allocation."""
    script = (f"import resource; resource.setrlimit(resource.RLIMIT_AS, "
              f"({CHILD_MEMORY_BYTES}, {CHILD_MEMORY_BYTES})); b = bytearray(3 * 1024**3)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True,
                          timeout=CHILD_TIMEOUT_SECONDS, check=False)
    assert done.returncode != 0 and b"MemoryError" in done.stderr
