"""The streaming reader: the seed's lines, gzip, stdin, and every problem located exactly."""

from __future__ import annotations

import gzip
import io
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from pytest_replay.format import lines
from pytest_replay.format.reader import (
    LineEvent,
    LineParser,
    ReadResult,
    TraceFormatError,
    TraceProblem,
    iter_events,
    open_binary,
    parse_line,
    read_stream,
    read_trace,
)
from pytest_replay.format.writer import dumps_event, write_events

# The five example lines of the seed document, section "1. Capture Production Trace",
# byte for byte (spaces after the colons included).
SEED_LINES = (
    b'{"event_type": "function_entry", "timestamp_ns": 1698765432123456789, "function_name": '
    b'"process_order", "args": {"order_id": 12345, "user_id": 67890}, "correlation_id": '
    b'"req_abc123"}\n'
    b'{"event_type": "variable_change", "timestamp_ns": 1698765432123567890, "variable_name": '
    b'"tax_rate", "value": 0.08, "correlation_id": "req_abc123"}\n'
    b'{"event_type": "function_entry", "timestamp_ns": 1698765432124000000, "function_name": '
    b'"calculate_tax", "args": {"amount": 100.0, "rate": 0.08}, "parent_correlation_id": '
    b'"req_abc123", "correlation_id": "func_xyz789"}\n'
    b'{"event_type": "error", "timestamp_ns": 1698765432124100000, "error_type": '
    b'"ZeroDivisionError", "message": "division by zero", "correlation_id": "func_xyz789"}\n'
    b'{"event_type": "function_exit", "timestamp_ns": 1698765432124200000, "function_name": '
    b'"calculate_tax", "error": true, "correlation_id": "func_xyz789"}\n'
)


def write(tmp_path: Path, data: bytes, name: str = "trace.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def line(**fields: object) -> bytes:
    return orjson.dumps(fields) + b"\n"


def entry(cid: str = "r1", **extra: object) -> bytes:
    return line(event_type="function_entry", timestamp_ns=1, correlation_id=cid,
                function_name="f", **extra)


def only_error(result: ReadResult) -> TraceProblem:
    assert len(result.errors) == 1, result.problems
    return result.errors[0]


# -- the seed ---------------------------------------------------------------------------


def test_seed_lines_load_as_they_are(tmp_path: Path) -> None:
    result = read_trace(write(tmp_path, SEED_LINES, "incident_abc123.jsonl"))
    assert result.problems == []
    assert [item.line for item in result.events] == [1, 2, 3, 4, 5]
    kinds = [item.event["event_type"] for item in result.events]
    assert kinds == ["function_entry", "variable_change", "function_entry", "error",
                     "function_exit"]
    first = result.events[0].event
    assert first["timestamp_ns"] == 1698765432123456789
    assert type(first["timestamp_ns"]) is int
    assert first["args"] == {"order_id": 12345, "user_id": 67890}
    assert result.events[1].event["value"] == 0.08
    assert result.events[4].event["error"] is True


def test_seed_lines_from_gzip_recognised_by_content(tmp_path: Path) -> None:
    plain = read_trace(write(tmp_path, SEED_LINES))
    zipped = read_trace(write(tmp_path, gzip.compress(SEED_LINES), "incident.jsonl"))
    assert zipped.problems == []
    assert zipped.events == plain.events


def test_gzip_named_gz_reads_the_same(tmp_path: Path) -> None:
    zipped = read_trace(write(tmp_path, gzip.compress(SEED_LINES), "incident.jsonl.gz"))
    assert len(zipped.events) == 5


def test_plain_file_named_gz_is_read_as_plain(tmp_path: Path) -> None:
    result = read_trace(write(tmp_path, SEED_LINES, "not-really.gz"))
    assert len(result.events) == 5 and result.problems == []


# -- stdin --------------------------------------------------------------------------------


def test_read_stream_from_memory() -> None:
    result = read_stream(io.BytesIO(SEED_LINES), "<memory>")
    assert len(result.events) == 5
    assert result.path == "<memory>"


def test_read_stream_detects_gzip() -> None:
    result = read_stream(io.BytesIO(gzip.compress(SEED_LINES)))
    assert len(result.events) == 5 and result.path == "-"


_STDIN_SCRIPT = """
import sys
from pytest_replay.format.reader import open_binary, read_stream
with open_binary("-") as stream:
    via_dash = sum(1 for _ in stream)
print(via_dash)
"""

_STREAM_SCRIPT = """
import sys
from pytest_replay.format.reader import read_stream
result = read_stream(sys.stdin.buffer)
print(len(result.events), len(result.problems), result.path)
"""


@pytest.mark.parametrize("data", [SEED_LINES, gzip.compress(SEED_LINES)], ids=["plain", "gzip"])
def test_real_stdin_is_read_through_read_stream(data: bytes) -> None:
    done = subprocess.run([sys.executable, "-c", _STREAM_SCRIPT], input=data,
                          capture_output=True, timeout=60, check=True)
    assert done.stdout.split() == [b"5", b"0", b"-"]


def test_dash_opens_stdin_and_ungzips_it() -> None:
    done = subprocess.run([sys.executable, "-c", _STDIN_SCRIPT], input=gzip.compress(SEED_LINES),
                          capture_output=True, timeout=60, check=True)
    assert done.stdout.strip() == b"5"


# -- problems name file, line, column and field -------------------------------------------


def test_corrupt_middle_line_names_file_line_and_column(tmp_path: Path) -> None:
    lines = SEED_LINES.split(b"\n")
    lines[2] = b'{"event_type": "function_entry", "timestamp_ns": 16987654321240, oops}'
    path = write(tmp_path, b"\n".join(lines))
    result = read_trace(path)
    problem = only_error(result)
    column = lines[2].index(b"oops") + 1
    assert (problem.path, problem.line, problem.column) == (str(path), 3, column)
    assert str(problem).startswith(f"{path}:3:{column}: not valid JSON")
    assert [item.line for item in result.events] == [1, 2, 4, 5]


def test_invalid_utf8_names_the_byte(tmp_path: Path) -> None:
    bad = b'{"event_type": "context", "x": "caf\xe9"}'
    path = write(tmp_path, entry() + bad + b"\n" + entry("r2"))
    problem = only_error(read_trace(path))
    column = bad.index(b"\xe9") + 1
    assert problem.line == 2 and problem.column == column
    assert f"not valid UTF-8 at byte {column}" in str(problem)


@pytest.mark.parametrize(("field", "value", "says"), [
    ("timestamp_ns", "1698765432123456789", "must be an integer, got string"),
    ("timestamp_ns", 1.5, "must be an integer, got number"),
    ("lineno", True, "must be an integer, got boolean"),
    ("correlation_id", 12345, "must be a string, got integer"),
    ("args", [1, 2], "must be an object, got array"),
    ("error", "yes", "must be true or false, got string"),
    ("event_type", None, "must be a string, got null"),
])
def test_wrong_field_type_names_the_field(tmp_path: Path, field: str, value: object,
                                          says: str) -> None:
    bad = orjson.loads(entry())
    bad[field] = value
    path = write(tmp_path, entry("r0") + orjson.dumps(bad) + b"\n")
    problem = only_error(read_trace(path))
    assert str(problem) == f"{path}:2: field '{field}': {says}"


def test_missing_event_type_is_an_error_naming_it(tmp_path: Path) -> None:
    path = write(tmp_path, line(correlation_id="r1"))
    assert str(only_error(read_trace(path))) == f"{path}:1: field 'event_type': missing"


def test_json_that_is_not_an_object_is_an_error(tmp_path: Path) -> None:
    problem = only_error(read_trace(write(tmp_path, b"[1, 2]\n")))
    assert "expected a JSON object, got array" in str(problem)


def test_parse_line_raises_with_the_problem() -> None:
    with pytest.raises(TraceFormatError) as caught:
        parse_line(b'{"event_type": 3}', "t.jsonl", 9)
    assert caught.value.problem.field == "event_type"
    assert str(caught.value) == "t.jsonl:9: field 'event_type': must be a string, got integer"


@pytest.mark.parametrize("raw", [
    *SEED_LINES.splitlines(),
    b'{"event_type": "context", "timestamp_ns": "late"}',
    b'{"event_type": "function_entry", "correlation_id": "r", "v": 0}',
    b'{"event_type": "context", "n": 123456789012345678901234}',
    b"{not json",
    b"[]",
])
def test_line_parser_agrees_with_parse_line(raw: bytes) -> None:
    parser = LineParser()
    for _ in range(2):  # the second time, the shape is known
        try:
            expected = parse_line(raw, "t", 3)
        except TraceFormatError as exc:
            with pytest.raises(TraceFormatError) as caught:
                parser(raw, "t", 3)
            assert caught.value.problem == exc.problem
        else:
            assert parser(raw, "t", 3) == expected
    shaped = b'{"event_type": "function_entry", "correlation_id": "r", "v": 1}'
    parser(shaped, "t", 1)
    with pytest.raises(TraceFormatError, match="must be 1 or more"):
        parser(shaped.replace(b'"v": 1', b'"v": 0'), "t", 2)


def test_missing_file_is_a_problem_not_an_exception(tmp_path: Path) -> None:
    path = tmp_path / "absent.jsonl"
    result = read_trace(path)
    problem = only_error(result)
    assert problem.line == 0 and str(problem).startswith(f"{path}: cannot read")


# -- warnings: kept, and said once --------------------------------------------------------


def test_unknown_event_types_are_kept_with_one_warning_each(tmp_path: Path) -> None:
    data = (entry() + line(event_type="cache_hit", correlation_id="r1", key="k")
            + line(event_type="cache_hit", correlation_id="r1") + line(event_type="gc_pause"))
    result = read_trace(write(tmp_path, data))
    assert [item.event["event_type"] for item in result.events] == [
        "function_entry", "cache_hit", "cache_hit", "gc_pause"]
    assert result.errors == []
    warned = [(p.line, p.field) for p in result.warnings]
    assert warned == [(2, "event_type"), (4, "event_type")]
    assert "'cache_hit' (kept" in str(result.warnings[0])


def test_truncated_last_line_is_kept_aside_with_a_warning(tmp_path: Path) -> None:
    cut = b'{"event_type": "function_exit", "timestamp_ns": 16987'
    result = read_trace(write(tmp_path, SEED_LINES + cut))
    assert len(result.events) == 5
    assert result.errors == []
    (warning,) = result.warnings
    assert warning.line == 6 and "last line is cut short (kept aside)" in warning.message
    assert result.cut_short == cut


def test_last_line_without_newline_that_parses_is_an_event(tmp_path: Path) -> None:
    result = read_trace(write(tmp_path, SEED_LINES.rstrip(b"\n")))
    assert len(result.events) == 5 and result.problems == []


def test_wrong_type_on_the_last_line_is_still_an_error(tmp_path: Path) -> None:
    result = read_trace(write(tmp_path, entry() + b'{"event_type": "x", "lineno": "7"}'))
    assert only_error(result).field == "lineno"
    assert result.cut_short is None


def test_newer_version_warns_once_and_keeps_the_events(tmp_path: Path) -> None:
    data = entry(v=2) + entry("r2", v=2) + entry("r3", v=1)
    result = read_trace(write(tmp_path, data))
    assert len(result.events) == 3
    (warning,) = result.problems
    assert warning.severity == "warning" and warning.field == "v" and warning.line == 1


def test_version_below_one_is_an_error(tmp_path: Path) -> None:
    result = read_trace(write(tmp_path, entry(v=1) + entry("r2", v=0)))
    assert str(only_error(result)).endswith(":2: field 'v': must be 1 or more, got 0")
    assert len(result.events) == 1


# -- tolerated input ----------------------------------------------------------------------


def test_bom_crlf_and_blank_lines(tmp_path: Path) -> None:
    data = b"\xef\xbb\xbf" + SEED_LINES.replace(b"\n", b"\r\n\r\n   \r\n")
    result = read_trace(write(tmp_path, data))
    assert result.problems == []
    assert [item.line for item in result.events] == [1, 4, 7, 10, 13]


def test_duplicate_keys_last_wins(tmp_path: Path) -> None:
    data = b'{"event_type": "context", "correlation_id": "a", "correlation_id": "b"}\n'
    assert read_trace(write(tmp_path, data)).events[0].event["correlation_id"] == "b"


@pytest.mark.parametrize("number", [2**64, 2**64 + 1, -(2**63) - 1, 10**40, -(10**40)])
def test_integers_past_64_bits_are_exact(tmp_path: Path, number: int) -> None:
    data = entry(args={"n": 0}).replace(b'"n":0', b'"n":' + str(number).encode())
    result = read_trace(write(tmp_path, data))
    assert result.problems == []
    value = result.events[0].event["args"]["n"]
    assert value == number and type(value) is int


def test_big_timestamp_is_still_an_integer(tmp_path: Path) -> None:
    data = b'{"event_type": "context", "timestamp_ns": 123456789012345678901234}\n'
    assert read_trace(write(tmp_path, data)).events[0].event["timestamp_ns"] == (
        123456789012345678901234)


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_nan_and_infinity_are_refused(tmp_path: Path, literal: bytes) -> None:
    data = b'{"event_type": "context", "value": ' + literal + b"}\n"
    assert "not valid JSON" in str(only_error(read_trace(write(tmp_path, data))))


@pytest.mark.parametrize("literal", [b"NaN", b"1e400"])
def test_nan_is_refused_on_the_exact_path_too(tmp_path: Path, literal: bytes) -> None:
    data = (b'{"event_type": "context", "n": 123456789012345678901234, "value": ' + literal
            + b"}\n")
    assert "not valid JSON" in str(only_error(read_trace(write(tmp_path, data))))


def test_lone_surrogate_escape_is_refused_on_both_paths(tmp_path: Path) -> None:
    fast = b'{"event_type": "context", "s": "\\ud800"}\n'
    exact = b'{"event_type": "context", "n": 123456789012345678901234, "s": "\\ud800"}\n'
    result = read_trace(write(tmp_path, fast + exact))
    assert [p.line for p in result.errors] == [1, 2]


def test_line_over_the_cap_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lines, "MAX_LINE_BYTES", 200)
    big = line(event_type="context", correlation_id="r1", blob="x" * 1000)
    result = read_trace(write(tmp_path, entry() + big + entry("r2")))
    problem = only_error(result)
    assert problem.line == 2 and "200-byte cap" in problem.message
    assert [item.line for item in result.events] == [1, 3]


def test_writer_output_reads_back(tmp_path: Path) -> None:
    events = [orjson.loads(raw) for raw in SEED_LINES.splitlines()]
    path = tmp_path / "out" / "trace.jsonl"
    assert write_events(path, events) == 5
    assert [item.event for item in read_trace(path).events] == events
    assert parse_line(dumps_event(events[0]).rstrip(b"\n"), "x", 1) == events[0]


def test_corrupt_gzip_keeps_what_came_before(tmp_path: Path) -> None:
    zipped = gzip.compress(SEED_LINES * 200)
    path = write(tmp_path, zipped[: len(zipped) // 2])
    result = read_trace(path)
    assert 0 < len(result.events) < 1000
    assert any("compressed stream" in p.message for p in result.problems)


# -- streaming many files -----------------------------------------------------------------


def test_iter_events_streams_and_reports_problems(tmp_path: Path) -> None:
    good = write(tmp_path, SEED_LINES, "a.jsonl")
    bad = write(tmp_path, entry() + b"{broken\n" + entry("r2"), "b.jsonl")
    seen: list[TraceProblem] = []
    got = list(iter_events([good, tmp_path / "missing.jsonl", bad], on_problem=seen.append))
    assert [(Path(name).name, item.line) for name, item in got] == [
        ("a.jsonl", 1), ("a.jsonl", 2), ("a.jsonl", 3), ("a.jsonl", 4), ("a.jsonl", 5),
        ("b.jsonl", 1), ("b.jsonl", 3)]
    assert [(Path(p.path).name, p.line) for p in seen] == [("missing.jsonl", 0), ("b.jsonl", 2)]


def test_iter_events_interleaves_problems_in_file_order(tmp_path: Path) -> None:
    data = b"".join(entry(f"r{i}") for i in range(3000)) + b"{broken\n" + entry("last")
    path = write(tmp_path, data)
    order: list[str] = []
    for _name, item in iter_events([path], on_problem=lambda p: order.append(f"p{p.line}")):
        order.append(str(item.line))
    assert order[-3:] == ["3000", "p3001", "3002"]


def test_open_binary_reads_plain_and_gzip(tmp_path: Path) -> None:
    for name, data in (("a.jsonl", SEED_LINES), ("b.jsonl", gzip.compress(SEED_LINES))):
        with open_binary(write(tmp_path, data, name)) as stream:
            assert stream.read() == SEED_LINES


def test_line_event_and_problem_shapes() -> None:
    assert LineEvent(3, {"event_type": "x"}) == LineEvent(3, {"event_type": "x"})
    problem = TraceProblem("t.jsonl", 4, "bad", field="args", column=7)
    assert problem.location() == "t.jsonl:4:7"
    assert str(problem) == "t.jsonl:4:7: field 'args': bad"
