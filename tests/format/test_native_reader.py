"""The C bulk reader and model builder give exactly what the Python ones give.

``_bulk.c`` checks lines without decoding them and builds the model without
Python frames. Its promise: a block it accepts is one the Python reader
accepts, with the same copied fields; a trace it models is modelled the same
way by Python. Anything it is not sure of, it declines. These tests feed both
the odd lines and thousands of random ones (good, and broken a byte at a time)
and compare; they fail if C ever accepts a line Python rejects.
"""

from __future__ import annotations

import gc
import io
import json
import random
import weakref
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from pytest_replay import model
from pytest_replay.format import native, reader
from pytest_replay.format.bulk import CANONICAL_KINDS, Seen
from pytest_replay.format.events import FIELD_TYPES
from pytest_replay.format.lines import TraceFormatError, parse_line
from pytest_replay.format.reader import ReadResult, read_stream
from pytest_replay.model import Frame, Trace, build_trace

pytestmark = pytest.mark.skipif(
    native.NATIVE_REGION is None, reason=f"the C bulk reader is not in use: {native.WHY_PYTHON}")

KINDS = ("function_entry", "function_exit", "variable_change", "context", "error", "db_call")


def read(data: bytes) -> ReadResult:
    return read_stream(io.BytesIO(data), "t.jsonl")


def read_python(data: bytes, monkeypatch: pytest.MonkeyPatch) -> ReadResult:
    with monkeypatch.context() as patch:
        patch.setattr(reader, "NATIVE_REGION", None)
        return read(data)


def fields(result: ReadResult) -> list[tuple[Any, ...]]:
    """Every copied field and the decoded event of each line."""
    return [(*item[:6], item.event) for item in result.events]


def problems(result: ReadResult) -> list[str]:
    return [str(problem) for problem in result.problems]


def read_in_c(data: bytes, first: int, seen: Seen) -> list[Any] | None:
    """The C reader over all of ``data``, lines numbered from ``first``."""
    assert native.NATIVE_REGION is not None
    return native.NATIVE_REGION(data, 0, len(data), first, seen.kinds, seen.versions, seen.ids,
                              {})


def accepted_by_c(line: bytes) -> list[Any] | None:
    return read_in_c(line, 1, Seen())


def accepted_by_python(line: bytes) -> dict[str, Any] | None:
    try:
        event = parse_line(line.rstrip(b"\r"), "t.jsonl", 1)
    except TraceFormatError:
        return None
    return event if event["event_type"] in Seen().kinds and event.get("v") in (None, 1) else None


# -- lines chosen one by one ---------------------------------------------------------------

GOOD = [
    b'{"event_type":"context","correlation_id":"r1","context":{"a":[1,2.5,-3e10,true,null]}}',
    b' \t{ "event_type" : "function_exit" , "correlation_id" : "r1" , "error" : true } \r',
    b'{"event_type":"function_entry","correlation_id":"\xc3\xa9t\xc3\xa9","timestamp_ns":-5}',
    b'{"event_type":"context","context":{"k\\u00e9y":"\\ud83d\\ude00 \\n\\t\\"\\\\\\/"}}',
    b'{"event_type":"variable_change","value":"\xf0\x9f\x98\x80\xe2\x82\xac\x7f"}',
    b'{"event_type":"context","x":1E5,"y":-0.0e-12,"z":0,"w":-0,"timestamp_ns":9223372036854775807}',
    b'{"event_type":"context","v":1,"timestamp_ns":9999999999999999999}',
    b'{"event_type":"context","deep":' + b"[" * 900 + b"]" * 900 + b"}",
    b'{"event_type":"context","args":{},"x":{},"y":[],"z":""}',
    b'{"event_type":"error","error":null,"correlation_id":null,"parent_correlation_id":null}',
    b'{"unknown":{"event_type":5},"event_type":"context","event_types":7}',
]

BAD_OR_DECLINED = [
    b"",
    b"   ",
    b"[]",
    b'"event_type"',
    b"{}",
    b'{"event_type":"context"',
    b'{"event_type":"context"}}',
    b'{"event_type":"context",}',
    b'{"event_type":"context" "x":1}',
    b'{"event_type":"nope"}',
    b'{"event_type":"context","v":2}',
    b'{"event_type":"context","v":0}',
    b'{"event_type":"context","v":true}',
    b'{"event_type":5}',
    b'{"event_type":null}',
    b'{"event_type":"context","timestamp_ns":1.5}',
    b'{"event_type":"context","timestamp_ns":"1"}',
    b'{"event_type":"context","error":1}',
    b'{"event_type":"context","args":[]}',
    b'{"event_type":"context","correlation_id":7}',
    b'{"event_type":"context","x":01}',
    b'{"event_type":"context","x":1.}',
    b'{"event_type":"context","x":.5}',
    b'{"event_type":"context","x":1e}',
    b'{"event_type":"context","x":1e999}',
    b'{"event_type":"context","x":-}',
    b'{"event_type":"context","x":+1}',
    b'{"event_type":"context","x":NaN}',
    b'{"event_type":"context","x":Infinity}',
    b'{"event_type":"context","x":tru}',
    b'{"event_type":"context","x":nul}',
    b'{"event_type":"context","x":123456789012345678901}',
    b'{"event_type":"context","timestamp_ns":18446744073709551615}',
    b'{"event_type":"context","x":-9223372036854775809}',
    b'{"event_type":"context","x":"\\ud800"}',
    b'{"event_type":"context","x":"\\udc00\\ud800"}',
    b'{"event_type":"context","x":"\\ud800\\u0041"}',
    b'{"event_type":"context","x":"\\x"}',
    b'{"event_type":"context","x":"\\u12g4"}',
    b'{"event_type":"context","x":"tab\there"}',
    b'{"event_type":"context","x":"\xed\xa0\x80"}',
    b'{"event_type":"context","x":"\xc0\xaf"}',
    b'{"event_type":"context","x":"\xe0\x80\xaf"}',
    b'{"event_type":"context","x":"\xf4\x90\x80\x80"}',
    b'{"event_type":"context","x":"\xff"}',
    b'{"event_type":"context","x":"\xe2\x82"}',
    b'{"event_type":"context","x":1}\x0b',
    b'{"event_type":"context","x":1}x',
    b'{"event_type":"context","deep":' + b"[" * 1100 + b"]" * 1100 + b"}",
    b'{"event_type":"context","event_type":"error"}',
    b'{"event_\\u0074ype":"context"}',
    b'{"event_type":"cont\\u0065xt"}',
    b'{"event_type":"context","correlation_id":"a\\u0062"}',
    b'{"event_type":"context",\'x\':1}',
]


@pytest.mark.parametrize("line", GOOD)
def test_a_good_line_is_accepted_with_the_fields_python_reads(line: bytes) -> None:
    made = accepted_by_c(line)
    event = accepted_by_python(line)
    assert made is not None and event is not None
    (item,) = made
    assert item.kind == event["event_type"]
    assert item.correlation_id == event.get("correlation_id")
    assert item.parent_id == event.get("parent_correlation_id")
    assert item.timestamp_ns == event.get("timestamp_ns")
    assert type(item.timestamp_ns) is type(event.get("timestamp_ns"))
    assert item.error == event.get("error")
    assert item.event == event


@pytest.mark.parametrize("line", BAD_OR_DECLINED)
def test_a_line_it_is_not_sure_of_is_declined(line: bytes) -> None:
    assert accepted_by_c(line) is None


@pytest.mark.parametrize("line", BAD_OR_DECLINED)
def test_whatever_it_declines_the_reader_still_judges_the_same(
        line: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    good = b"".join(orjson.dumps({"event_type": "context", "correlation_id": f"r{n}"}) + b"\n"
                    for n in range(50))
    data = good + line + b"\n" + good
    native, python = read(data), read_python(data, monkeypatch)
    assert fields(native) == fields(python)
    assert problems(native) == problems(python)


def _depth(value: Any) -> int:
    depth = 0
    while type(value) is list:  # walked, not compared: == would recurse 999 levels deep
        assert len(value) <= 1
        depth, value = depth + 1, value[0] if value else None
    return depth


def test_the_deepest_line_it_takes_is_one_python_reads_too() -> None:
    # A run of 20 digits sends the line to json, whose nesting the interpreter's recursion
    # limit bounds (the C stack's, on 3.12 and later), not orjson's 1024 levels.
    line = (b'{"event_type":"context","correlation_id":"12345678901234567890","deep":'
            + b"[" * 999 + b"]" * 999 + b"}")
    made, event = accepted_by_c(line), accepted_by_python(line)
    assert made is not None and event is not None
    (item,) = made
    assert item.correlation_id == event["correlation_id"] == item.event["correlation_id"]
    assert _depth(item.event["deep"]) == _depth(event["deep"]) == 999
    assert accepted_by_c(line.replace(b"[]", b"[[]]")) is None  # one more level: declined


def test_the_same_id_is_one_object_across_events() -> None:
    line = b'{"event_type":"context","correlation_id":"req-1","parent_correlation_id":"req-0"}'
    seen = Seen()
    first = read_in_c(line + b"\n" + line, 1, seen)
    second = read_in_c(line, 3, seen)
    assert first is not None and second is not None
    assert first[0].correlation_id is first[1].correlation_id is second[0].correlation_id
    assert [item.line for item in (*first, *second)] == [1, 2, 3]


def test_a_type_warned_about_once_passes_in_bulk_after() -> None:
    seen = Seen()
    seen.kinds.add("custom_metric")
    seen.versions.add(3)
    line = b'{"event_type":"custom_metric","v":3}'
    made = read_in_c(line, 1, seen)
    assert made is not None and made[0].kind == "custom_metric"
    assert accepted_by_c(line) is None  # not before the warning


# -- random lines ----------------------------------------------------------------------------


def _value(rng: random.Random, depth: int = 0) -> Any:
    pick = rng.randrange(9 if depth < 3 else 6)
    if pick == 0:
        return rng.choice([None, True, False])
    if pick == 1:
        return rng.choice([0, -1, 7, 2**31, -(2**53), 2**63 - 1, 2**64 - 1, 2**70, -(2**64)])
    if pick == 2:
        return rng.choice([0.5, -1e-300, 1.7976931348623157e308, 3.14159, 1e22, -0.0])
    if pick in (3, 4, 5):
        alphabet = "ab \"\\/\n\t\x00\x1f\x7f\u00e9\u20ac\U0001f600\ud7ff\ue000"
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(12)))
    if pick in (6, 7):
        return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {f"k{n}": _value(rng, depth + 1) for n in range(rng.randrange(4))}


def _event(rng: random.Random) -> dict[str, Any]:
    event: dict[str, Any] = {"event_type": rng.choice(KINDS)}
    for name, choices in (("correlation_id", ["r1", "r2", None, "\u00e9", 5]),
                          ("parent_correlation_id", ["r1", None]),
                          ("timestamp_ns", [1_700_000_000_000_000_000, 0, -3, None, 1.5, "x"]),
                          ("error", [True, False, None, 0]),
                          ("v", [1, None, 2, 0]),
                          ("lineno", [3, None, "3"]),
                          ("args", [{}, {"a": 1}, None, [1]])):
        if rng.random() < 0.5:
            event[name] = rng.choice(choices)
    for n in range(rng.randrange(4)):
        event[f"extra{n}"] = _value(rng)
    return event


def _encode(rng: random.Random, event: dict[str, Any]) -> bytes:
    if rng.random() < 0.5:
        try:
            return orjson.dumps(event)
        except TypeError:  # an integer past 64 bits: json writes it
            pass
    text = json.dumps(event, ensure_ascii=rng.random() < 0.5,
                      separators=rng.choice([(",", ":"), (", ", ": "), (" ,", " : ")]))
    return text.encode("utf-8", "surrogatepass")


def _broken(rng: random.Random, line: bytes) -> bytes:
    data = bytearray(line)
    for _ in range(rng.randrange(1, 3)):
        where = rng.randrange(len(data) + 1)
        action = rng.randrange(3)
        if action == 0 and where < len(data):
            del data[where]
        elif action == 1:
            data[where:where] = bytes([rng.choice(b'{}[]",:\\ 0e-.tfnu\x80\xc3\xed\xff\x01')])
        elif where < len(data):
            data[where] = rng.randrange(256)
    return bytes(data)


def random_lines(seed: int, count: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    for _ in range(count):
        line = _encode(rng, _event(rng))
        yield _broken(rng, line) if rng.random() < 0.4 else line


@pytest.mark.parametrize("seed", range(4))
def test_random_lines_c_accepts_only_what_python_accepts_and_alike(seed: int) -> None:
    accepted = declined = 0
    for line in random_lines(seed, 1500):
        if b"\n" in line:
            continue
        made = accepted_by_c(line)
        event = accepted_by_python(line)
        if made is None:
            declined += 1
            continue
        accepted += 1
        assert event is not None, line
        (item,) = made
        assert (item.kind, item.correlation_id, item.parent_id, item.timestamp_ns,
                item.error) == (event["event_type"], event.get("correlation_id"),
                                event.get("parent_correlation_id"), event.get("timestamp_ns"),
                                event.get("error")), line
        assert item.event == event, line
    assert accepted > 200 and declined > 200  # both sides of the promise were exercised


@pytest.mark.parametrize("seed", range(3))
def test_random_files_read_the_same_either_way(seed: int, monkeypatch: pytest.MonkeyPatch
                                               ) -> None:
    lines = [line for line in random_lines(seed + 100, 3000) if b"\n" not in line]
    rng = random.Random(seed)
    good = [line for line in lines if accepted_by_python(line) is not None]
    data = b"\n".join(rng.choice(good) if rng.random() < 0.97 else rng.choice(lines)
                      for _ in range(3000)) + b"\n"
    native, python = read(data), read_python(data, monkeypatch)
    assert fields(native) == fields(python)
    assert problems(native) == problems(python)


# -- the model -------------------------------------------------------------------------------


def _line(**event: Any) -> bytes:
    return orjson.dumps(event) + b"\n"


def _request(index: int, stamp: int, child_parent: str | None = None) -> bytes:
    root, child = f"req{index}", f"call{index}"
    return b"".join((
        _line(event_type="function_entry", correlation_id=root, function_name="handle",
              timestamp_ns=stamp),
        _line(event_type="function_entry", correlation_id=child, function_name="work",
              parent_correlation_id=child_parent or root, timestamp_ns=stamp + 1),
        _line(event_type="variable_change", correlation_id=child, variable_name="x", value=1,
              timestamp_ns=stamp + 2),
        _line(event_type="function_exit", correlation_id=child, timestamp_ns=stamp + 3),
        _line(event_type="error", correlation_id=root, error_type="E", timestamp_ns=stamp + 4),
        _line(event_type="function_exit", correlation_id=root, error=True,
              timestamp_ns=stamp + 5),
    ))


def _stamp(line: Any) -> int:
    stamp: int = orjson.loads(line)["timestamp_ns"]
    return stamp


def shape(trace: Trace) -> Any:
    """Everything the model promises, in a form two traces can be compared by."""
    def frame(item: Frame) -> Any:
        parent = item.parent
        return (item.correlation_id, item.entry.line, item.exit.line if item.exit else None,
                [event.line for event in item.events], [child.correlation_id
                                                         for child in item.children],
                parent.correlation_id if parent is not None else None)
    return ([(root.name, root.line, [event.line for event in root.events], root.is_incident)
             for root in trace.roots],
            {cid: frame(item) for cid, item in trace.frames.items()},
            [item.line for item in trace.orphans], [str(problem) for problem in trace.problems])


def build_python(result: ReadResult, monkeypatch: pytest.MonkeyPatch) -> Trace:
    with monkeypatch.context() as patch:
        patch.setattr(model, "_NATIVE_TREE", None)
        return build_trace(result)


TRACES = {
    "plain": b"".join(_request(n, 1000 * n) for n in range(20)),
    "orphans": _request(99, 10) + _line(event_type="context", correlation_id="nobody")
    + _line(event_type="context") + _line(event_type="context", correlation_id=None),
    "out of time order": _request(1, 5000) + _request(2, 10) + _request(3, 7000),
    "parent from another service": _request(1, 10).replace(
        b'"function_name":"handle"', b'"function_name":"handle","parent_correlation_id":"up"'),
    "duplicate entry": _request(1, 10) + _request(1, 20),
    "second exit": _request(1, 10) + _line(event_type="function_exit", correlation_id="call1"),
    "names itself": _request(1, 10, child_parent="call1"),
    "parent comes later": _line(event_type="function_entry", correlation_id="c",
                                parent_correlation_id="p")
    + _line(event_type="function_entry", correlation_id="p"),
    "cycle": _line(event_type="function_entry", correlation_id="a", parent_correlation_id="b")
    + _line(event_type="function_entry", correlation_id="b", parent_correlation_id="a")
    + _request(2, 10),
    "entry without id": _line(event_type="function_entry") + _request(2, 10),
    "timestamps missing": _request(1, 10).replace(b',"timestamp_ns":13', b""),
    "interleaved requests": b"".join(sorted(
        (_request(1, 10) + _request(2, 11)).splitlines(keepends=True), key=_stamp)),
}


@pytest.mark.parametrize("name", list(TRACES))
def test_the_c_model_is_the_python_model(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    result = read(TRACES[name])
    assert not [problem for problem in result.problems if problem.severity == "error"]
    assert shape(build_trace(result)) == shape(build_python(result, monkeypatch))


def test_the_c_model_serves_the_plain_trace(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    tree = model._NATIVE_TREE
    assert tree is not None

    def counting(*args: Any) -> Any:
        made = tree(*args)
        calls.append(made is not None)
        return made

    monkeypatch.setattr(model, "_NATIVE_TREE", counting)
    trace = build_trace(read(TRACES["plain"] + TRACES["orphans"]))
    assert calls == [True] and len(trace.roots) == 21 and len(trace.orphans) == 3
    build_trace(read(TRACES["second exit"]))
    assert calls == [True, False]  # left to Python, which reports it


def test_events_made_by_hand_are_modelled_by_python_the_same_way(
        monkeypatch: pytest.MonkeyPatch) -> None:
    result = read(TRACES["plain"])
    result.events.append(type(result.events[0])(10_000, {"event_type": 7,
                                                          "correlation_id": "req1"}))
    assert shape(build_trace(result)) == shape(build_python(result, monkeypatch))


def test_the_c_model_declines_what_is_no_line_event() -> None:
    # The Python builder reads attributes: a plain tuple has none (it raises), and a
    # subclass may answer otherwise than the tuple's items, which C reads.
    events = read(TRACES["plain"]).events
    tree = model._NATIVE_TREE
    assert tree is not None
    assert tree(events, "function_entry", "function_exit", "t") is not None
    assert tree([tuple(item) for item in events], "function_entry", "function_exit",
                "t") is None


class _SaysContext(reader.LineEvent):
    __slots__ = ()

    @property
    def kind(self) -> Any:
        return "context"


def test_events_of_a_line_event_subclass_are_modelled_as_python_reads_them(
        monkeypatch: pytest.MonkeyPatch) -> None:
    result = read(TRACES["plain"])
    result.events = [tuple.__new__(_SaysContext, item) for item in result.events]
    trace = build_trace(result)
    assert not trace.frames and len(trace.orphans) == len(result.events)
    assert shape(trace) == shape(build_python(result, monkeypatch))


def test_configure_runs_no_code_of_what_it_is_handed() -> None:
    # configure() walks the dict it is handed: a mask that is no int would run Python code
    # (its __index__) in the middle of that walk, which could change the dict under it and
    # leave the fields after it unchecked.
    called: list[str] = []
    masks = {name: sum(native._TYPE_BITS[kind] for kind in spec[0])
             for name, spec in FIELD_TYPES.items()}
    handed: dict[str, Any] = dict(masks)

    class Mask:
        def __index__(self) -> int:
            called.append("index")
            handed.clear()
            return masks["lineno"]

    handed["lineno"] = Mask()
    with pytest.raises(TypeError):
        native._NATIVE.configure(handed, tuple(sorted(CANONICAL_KINDS)), reader.LineEvent)
    assert called == []
    # the configuration in force is still the one native.py made
    for line in GOOD:
        assert accepted_by_c(line) is not None, line
    for name, wrong in (("lineno", b'"3"'), ("context", b"[]"), ("truncated", b"1")):
        assert accepted_by_c(b'{"event_type":"context","%s":%s}' % (name.encode(), wrong)) \
            is None


def test_a_dropped_trace_is_freed_at_once_not_by_the_collector() -> None:
    trace = build_trace(read(TRACES["plain"]))
    child = trace.roots[0].frame.children[0]
    assert child.parent is trace.roots[0].frame
    gone = weakref.ref(child)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        del trace, child
        assert gone() is None  # no reference cycle kept it for the collector
    finally:
        if was_enabled:
            gc.enable()


# -- chunk edges -----------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [1, 7, 64, 333, 4096])
@pytest.mark.parametrize("variant", ["plain", "bom", "crlf", "blank lines", "bad line",
                                     "cut short"])
def test_lines_across_chunk_edges_read_the_same_either_way(
        chunk: int, variant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data = TRACES["plain"] + TRACES["orphans"]
    if variant == "bom":
        data = b"\xef\xbb\xbf" + data
    elif variant == "crlf":
        data = data.replace(b"\n", b"\r\n")
    elif variant == "blank lines":
        data = data.replace(b"}\n{", b"}\n\n \n{", 5)
    elif variant == "bad line":
        data = data.replace(b'"variable_name":"x"', b'"variable_name":7', 3)
    elif variant == "cut short":
        data = data + b'{"event_type":"context","corr'
    monkeypatch.setattr(reader, "_CHUNK", chunk)
    native_read, python_read = read(data), read_python(data, monkeypatch)
    assert fields(native_read) == fields(python_read)
    assert problems(native_read) == problems(python_read)
    assert native_read.cut_short == python_read.cut_short
    assert len(native_read.events) >= 120


def test_a_lowered_line_cap_is_kept_either_way(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_replay.format import lines as line_rules

    long_line = _line(event_type="context", correlation_id="req1", context={"x": "y" * 500})
    data = TRACES["plain"] + long_line + TRACES["orphans"]
    monkeypatch.setattr(line_rules, "MAX_LINE_BYTES", 300)
    monkeypatch.setattr(reader, "_CHUNK", 256)
    native_read, python_read = read(data), read_python(data, monkeypatch)
    assert problems(native_read) == problems(python_read)
    assert any("longer than the 300-byte cap" in text for text in problems(native_read))
    assert fields(native_read) == fields(python_read)
