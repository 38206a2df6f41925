"""The reader's bulk path: blocks of lines parsed at once, events decoded on first use.

A block read at once must give exactly what reading it line by line gives:
the same events, the same problems at the same lines and fields, whatever
the chunk edges. These tests put the odd line in the middle of a block.
"""

from __future__ import annotations

import gc
import io
import weakref
from pathlib import Path
from typing import Any

import orjson
import pytest

from pytest_replay.format import lines, reader
from pytest_replay.format.events import FIELD_TYPES
from pytest_replay.format.lines import KnownShapes, TraceFormatError, check_fields, parse_line
from pytest_replay.format.reader import ReadResult, iter_events, read_stream, read_trace

LONG = 2**70


def ev(**fields: Any) -> bytes:
    return orjson.dumps(fields) + b"\n"


def entry(index: int, **extra: Any) -> bytes:
    return ev(event_type="function_entry", timestamp_ns=1000 + index, correlation_id=f"r{index}",
              function_name="f", args={"n": index, "tags": ["a", "b"]}, v=1, **extra)


def many(count: int) -> list[bytes]:
    """``count`` good lines (line n is ``entry(n)``), for a bad one to replace."""
    return [entry(index) for index in range(1, count + 1)]


def read(data: bytes) -> ReadResult:
    return read_stream(io.BytesIO(data), "t.jsonl")


def summary(result: ReadResult) -> tuple[list[tuple[int, Any]], list[str], bytes | None]:
    """Everything a reader promises, in a form two reads can be compared by."""
    return ([(item.line, item.event) for item in result.events],
            [str(problem) for problem in result.problems], result.cut_short)


# -- a bad line inside a block --------------------------------------------------------------


@pytest.mark.parametrize(("bad", "says"), [
    (ev(event_type="context", correlation_id="r1", lineno="7"),
     "t.jsonl:1501: field 'lineno': must be an integer, got string"),
    (ev(event_type="context", correlation_id=5),
     "t.jsonl:1501: field 'correlation_id': must be a string, got integer"),
    (ev(event_type="context", args=[1]),
     "t.jsonl:1501: field 'args': must be an object, got array"),
    (ev(correlation_id="r1"), "t.jsonl:1501: field 'event_type': missing"),
    (ev(event_type="function_entry", correlation_id="r", v=0),
     "t.jsonl:1501: field 'v': must be 1 or more, got 0"),
    (b'{"event_type": "context", oops}\n', "t.jsonl:1501:27: not valid JSON"),
    (b"[1, 2]\n", "t.jsonl:1501: expected a JSON object, got array"),
])
def test_bad_line_in_a_bulk_block_is_named_exactly_and_loses_nothing(bad: bytes,
                                                                      says: str) -> None:
    data = many(3000)
    data[1500] = bad
    result = read(b"".join(data))
    (problem,) = result.problems
    assert str(problem).startswith(says)
    assert [item.line for item in result.events] == [*range(1, 1501), *range(1502, 3001)]
    around = {item.line: item.event for item in result.events if 1495 <= item.line <= 1505}
    assert around[1500] == orjson.loads(data[1499]) and around[1502] == orjson.loads(data[1501])


def test_bulk_blocks_and_line_by_line_agree_on_every_line() -> None:
    data = many(2000)
    data[700] = b"\n"  # a blank line: its block goes line by line
    result = read(b"".join(data))
    assert result.problems == []
    for item in result.events:
        assert item.event == parse_line(data[item.line - 1].rstrip(), "t.jsonl", item.line)
    assert [item.line for item in result.events] == [*range(1, 701), *range(702, 2001)]


# -- events kept as bytes --------------------------------------------------------------------


def test_events_read_in_bulk_keep_their_bytes_until_used() -> None:
    result = read(b"".join(many(10)))
    first = result.events[0]
    assert isinstance(first.source, bytes) and first.decoded == {}
    assert (first.kind, first.correlation_id, first.timestamp_ns) == ("function_entry", "r1", 1001)
    assert first.decoded == {}  # the copied fields need no decoding
    event = first.event
    assert event == orjson.loads(entry(1)) and first.event is event
    assert first.decoded == {1: event}


def test_forgotten_events_go_back_to_bytes_and_decode_again_the_same() -> None:
    from pytest_replay.format.line_event import LineEvent, forget_decoded

    result = read(b"".join(many(10)))
    used = result.events[:3]
    before = [item.event for item in used]
    kept = result.events[5].event
    forget_decoded(used)
    assert sorted(used[0].decoded or {}) == [6]  # only the others' dicts stay
    assert [item.event for item in used] == before  # decoded again, equal
    assert result.events[5].event is kept
    made = LineEvent(1, {"event_type": "context"})
    forget_decoded([made])  # a dict-made event has nothing to go back to
    assert made.event == {"event_type": "context"}


def test_big_integers_decode_exactly_from_bulk_events() -> None:
    data = b"".join(many(5)) + ev(event_type="context", correlation_id="r1").replace(
        b'"r1"', b'"r1","n":' + str(LONG).encode() + b',"m":-' + str(LONG).encode())
    result = read(data)
    assert result.problems == [] and isinstance(result.events[5].source, bytes)
    event = result.events[5].event
    assert (event["n"], event["m"]) == (LONG, -LONG) and type(event["n"]) is int


def test_a_big_timestamp_takes_the_exact_path_and_stays_an_integer() -> None:
    data = b"".join(many(5)) + b'{"event_type": "context", "timestamp_ns": ' + str(
        LONG).encode() + b"}\n"
    (item,) = read(data).events[5:]
    assert item.timestamp_ns == LONG and item.event["timestamp_ns"] == LONG


def test_deep_line_with_a_big_integer_reads_the_same_in_bulk_and_line_by_line() -> None:
    deep = (b'{"event_type": "context", "n": ' + str(LONG).encode() + b', "deep": '
            + b"[" * 1000 + b"]" * 1000 + b"}\n")
    alone = read(deep)
    with_blank = read(b"\n" + deep)
    assert alone.problems == [] and with_blank.problems == []
    assert isinstance(alone.events[0].source, bytes)  # read in bulk, decoded here
    for event in (alone.events[0].event, with_blank.events[0].event):
        assert event["n"] == LONG and _depth(event["deep"]) == 1000


def _depth(value: Any) -> int:
    depth = 0
    while isinstance(value, list):
        depth += 1
        value = value[0] if value else None
    return depth


def test_iter_events_hands_out_decoded_events(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"".join(many(3)))
    got = [item for _name, item in iter_events([path])]
    assert [type(item.source) for item in got] == [dict, dict, dict]
    assert got[2].event == orjson.loads(entry(3))


# -- warnings first met in a later block ------------------------------------------------------


def test_unknown_type_first_met_in_a_later_block_is_warned_once_at_its_line() -> None:
    data = many(3000)
    data[2000] = ev(event_type="cache_hit", correlation_id="r1")
    data[2900] = ev(event_type="cache_hit", correlation_id="r2")
    result = read(b"".join(data))
    assert [(p.line, p.field, p.severity) for p in result.problems] == [
        (2001, "event_type", "warning")]
    assert len(result.events) == 3000
    assert result.events[2900].kind == "cache_hit"


def test_newer_version_first_met_in_a_later_block_is_warned_once_at_its_line() -> None:
    data = many(3000)
    data[1999] = entry(2000).replace(b'"v":1', b'"v":2')
    data[2999] = entry(3000).replace(b'"v":1', b'"v":3')
    result = read(b"".join(data))
    assert [(p.line, p.field, p.severity) for p in result.problems] == [(2000, "v", "warning")]
    assert len(result.events) == 3000


# -- chunk edges -----------------------------------------------------------------------------

MIXED = (
    b"\xef\xbb\xbf" + entry(1) + entry(2).replace(b"\n", b"\r\n") + b"\n   \n"
    + ev(event_type="cache_hit", correlation_id="r1") + b'{"event_type": "context", oops}\n'
    + ev(event_type="context", timestamp_ns="late") + entry(9, note="x" * 300)
    + entry(10).replace(b'"v":1', b'"v":5') + b"".join(many(40)) + b'{"event_type": "func'
)


@pytest.mark.parametrize("chunk", [1, 2, 5, 64, 333, 64 * 1024])
def test_chunk_edges_do_not_change_the_result(chunk: int, monkeypatch: pytest.MonkeyPatch
                                              ) -> None:
    expected = summary(read(MIXED))
    monkeypatch.setattr(reader, "_CHUNK", chunk)
    assert summary(read(MIXED)) == expected
    lines_, problems, cut = expected
    assert [line for line, _ in lines_][:6] == [1, 2, 5, 8, 9, 10]
    assert [p.split(": ", 1)[0] for p in problems] == [
        "t.jsonl:5", "t.jsonl:6:27", "t.jsonl:7", "t.jsonl:9", "t.jsonl:50:21"]
    assert cut == b'{"event_type": "func'


@pytest.mark.parametrize("chunk", [16, 64, 1000])
def test_line_over_the_cap_is_dropped_as_it_comes(chunk: int, monkeypatch: pytest.MonkeyPatch
                                                  ) -> None:
    monkeypatch.setattr(lines, "MAX_LINE_BYTES", 200)
    monkeypatch.setattr(reader, "_CHUNK", chunk)
    big = ev(event_type="context", correlation_id="r1", blob="x" * 1000)
    result = read(entry(1) + big + entry(3) + big + entry(5) + big.rstrip(b"\n"))
    assert [(p.line, p.severity) for p in result.problems] == [
        (2, "error"), (4, "error"), (6, "error")]
    assert all("200-byte cap" in p.message for p in result.problems)
    assert [item.line for item in result.events] == [1, 3, 5]
    assert result.cut_short is None


# -- the shape check of the bulk path --------------------------------------------------------

_WRONG = {"a string": 5, "an integer": "5", "true or false": 1, "an object": [1]}


@pytest.mark.parametrize("name", sorted(FIELD_TYPES))
def test_shapes_admit_exactly_what_check_fields_accepts(name: str) -> None:
    for value in (None, _WRONG[FIELD_TYPES[name][1]], "x", 1, True, {}):
        event = {"event_type": "x", name: value}
        shape = (*event, *map(type, event.values()))
        try:
            check_fields(event, "", 0)
        except TraceFormatError:
            accepted = False
        else:
            accepted = True
        assert KnownShapes().admit(shape) is accepted, (name, value)
    assert not KnownShapes().admit(("correlation_id", str))


# -- the collector ---------------------------------------------------------------------------


class _Node:
    """A cycle's member the collector must still free after a read."""

    other: object = None


def test_read_files_what_it_built_as_old_and_still_frees_earlier_cycles(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"".join(many(5000)))
    gc.collect(1)  # no collection of the middle generation is due during the read
    node = _Node()
    node.other = node  # young cyclic garbage when the read starts
    gone = weakref.ref(node)
    del node
    result = read_trace(path)
    assert gc.isenabled()
    first, last = result.events[0], result.events[-1]
    if not gc.get_freeze_count():  # some builds start with frozen objects: then it files nothing
        gc.disable()  # nothing moves while we look
        try:
            old = {id(thing) for thing in gc.get_objects(2)}
        finally:
            gc.enable()
        assert id(first) in old and id(last) in old
        assert gone() is not None  # filed as old with the trace, not collected yet
    gc.collect()
    assert gone() is None


def test_read_leaves_objects_the_program_froze_frozen(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"".join(many(50)))
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        assert len(read_trace(path).events) == 50
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()
