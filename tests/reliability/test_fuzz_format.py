"""Property tests over the reader, the encoder and the decoder.

The profile (``ci`` by default, ``long`` with ``HYPOTHESIS_PROFILE=long``) is
registered in this directory's conftest and applied to these tests only.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import decimal
import enum
import io
import json
import math
import os
import uuid
from typing import Any, NamedTuple

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_replay.format.decode import DecodeError, Opaque, decode, find_opaque
from pytest_replay.format.events import FIELD_TYPES, KNOWN_EVENT_TYPES
from pytest_replay.format.reader import read_stream
from pytest_replay.format.values import TAG, Limits, class_path, encode, encode_mapping
from pytest_replay.model import build_trace

PROFILE = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# -- strategies -------------------------------------------------------------------------

ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=30)
"""Any code point, lone surrogates included."""



def _utf8_ok(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


JSON_SCALARS = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(
    allow_nan=False, allow_infinity=False) | ANY_TEXT.filter(_utf8_ok)

PLAIN_KEYS = st.text(max_size=8).filter(lambda key: key != TAG)
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(PLAIN_KEYS, inner, max_size=5),
    max_leaves=25,
)
"""JSON without tagged objects (an object with a ``$type`` key is a tagged value)."""

TAGS = ("datetime", "date", "time", "timedelta", "decimal", "uuid", "bytes", "complex", "int",
        "float", "str", "list", "tuple", "set", "frozenset", "dict", "dataclass", "object",
        "enum", "exception", "ref", "subclass", "cycle", "max_depth", "unencodable",
        "redacted", "mystery")

TAGGED = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=6), inner, max_size=4)
        | st.fixed_dictionaries(
            {TAG: st.sampled_from(TAGS) | inner},
            optional={
                "value": inner | st.sampled_from(["nan", "-inf", "2023-10-31", "12", "1.5"]),
                "items": st.lists(inner | st.lists(inner, min_size=2, max_size=2), max_size=4)
                | inner,
                "class": st.sampled_from([f"{__name__}:Item", f"{__name__}:Color",
                                          f"{__name__}:Point", f"{__name__}:Bag",
                                          "collections:Counter", "os:system"]) | inner,
                "fields": st.dictionaries(st.text(max_size=4), inner, max_size=3) | inner,
                "attrs": st.dictionaries(st.text(max_size=4), inner, max_size=3) | inner,
                "name": st.sampled_from(["RED", "BLUE"]) | inner,
                "b64": st.sampled_from(["", "AA==", "!!", "w4k="]) | inner,
                "days": inner, "seconds": inner, "real": inner, "imag": inner,
                "truncated": st.booleans() | inner, "len": inner,
            },
        )
    ),
    max_leaves=20,
)
"""Arbitrary JSON shaped like tagged values: the decoder's worst day."""


class Color(enum.Enum):
    RED = 1
    GREEN = 2


@dataclasses.dataclass
class Item:
    sku: str
    qty: int


class Point(NamedTuple):
    x: int
    y: int


class Bag(dict[str, Any]):
    pass


class Opaqueish:
    def __init__(self, value: Any) -> None:
        self.value = value


ALLOWED: dict[str, type] = {class_path(c): c for c in (Color, Item, Point, Bag)}

HASHABLE = st.recursive(
    st.none() | st.booleans() | st.integers() | ANY_TEXT | st.binary(max_size=8)
    | st.decimals(allow_nan=False) | st.uuids() | st.dates() | st.times(),
    lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3),
    max_leaves=8,
)

INERT = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | ANY_TEXT | st.binary(max_size=20)
    | st.decimals() | st.uuids() | st.dates() | st.times()
    | st.datetimes(timezones=st.none() | st.just(dt.timezone.utc)
                   | st.builds(lambda m: dt.timezone(dt.timedelta(minutes=m)),
                               st.integers(-1439, 1439)))
    | st.timedeltas() | st.complex_numbers(),
    lambda inner: (
        st.lists(inner, max_size=5) | st.tuples(inner, inner) | st.sets(HASHABLE, max_size=5)
        | st.frozensets(HASHABLE, max_size=5)
        | st.dictionaries(ANY_TEXT, inner, max_size=5)
        | st.dictionaries(HASHABLE, inner, max_size=5)
    ),
    max_leaves=20,
)
"""Values made only of types decode() always rebuilds."""

ANYTHING = st.recursive(
    INERT | st.sampled_from([Color.RED, len, math, Item, object(), Ellipsis, range(3)])
    | st.builds(Item, ANY_TEXT, st.integers()) | st.builds(Point, st.integers(), st.integers()),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(HASHABLE, inner, max_size=4)
        | st.builds(Bag, st.dictionaries(st.text(max_size=5), inner, max_size=3))
        | st.builds(Opaqueish, inner) | st.builds(collections.OrderedDict,
                                                 st.dictionaries(ANY_TEXT, inner, max_size=3))
    ),
    max_leaves=20,
)

LIMITS = st.builds(Limits, max_str=st.integers(0, 50), max_items=st.integers(0, 6),
                   max_depth=st.integers(0, 6), max_repr=st.integers(0, 50),
                   max_nodes=st.integers(0, 200))


def same(left: Any, right: Any) -> bool:
    """Equality that also holds the types and treats NaN as equal to NaN."""
    if type(left) is not type(right):
        return False
    if isinstance(left, float):
        return (math.isnan(left) and math.isnan(right)) or left == right
    if isinstance(left, complex):
        return same(left.real, right.real) and same(left.imag, right.imag)
    if isinstance(left, decimal.Decimal):
        return left.is_nan() == right.is_nan() and (left.is_nan() or str(left) == str(right))
    if isinstance(left, (list, tuple)):
        return len(left) == len(right) and all(map(same, left, right))
    if isinstance(left, dict):
        return len(left) == len(right) and all(
            key in right and same(value, right[key]) for key, value in left.items())
    return bool(left == right)


def _has_nan(value: Any) -> bool:
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, complex):
        return math.isnan(value.real) or math.isnan(value.imag)
    if isinstance(value, decimal.Decimal):
        return value.is_nan()
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_has_nan(item) for item in value)
    if isinstance(value, dict):
        return any(_has_nan(k) or _has_nan(v) for k, v in value.items())
    return False


# -- the reader -------------------------------------------------------------------------


@PROFILE
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_crash_the_reader(data: bytes) -> None:
    result = read_stream(io.BytesIO(data), "fuzz")
    trace = build_trace(result)
    for problem in trace.problems:
        assert problem.line >= 1 and str(problem).startswith("fuzz:")
    for item in result.events:
        assert type(item.event) is dict and type(item.event["event_type"]) is str


FIELD_NAMES = st.sampled_from(sorted(FIELD_TYPES)) | st.text(max_size=5)
SMALL_JSON = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=4)
EVENTS = st.dictionaries(
    FIELD_NAMES, SMALL_JSON | st.sampled_from(sorted(KNOWN_EVENT_TYPES)) | st.sampled_from(
        ["r1", "r2", "c1"]), max_size=6)


@PROFILE
@given(st.lists(EVENTS, max_size=12), st.integers(0, 400), st.sampled_from([b"\n", b"\r\n"]))
def test_event_like_lines_never_crash_and_checked_fields_hold(
    events: list[dict[str, Any]], cut: int, newline: bytes
) -> None:
    data = newline.join(json.dumps(event).encode() for event in events)
    data = data[: len(data) - cut] if cut < len(data) else data
    result = read_stream(io.BytesIO(data), "fuzz")
    build_trace(result)
    for item in result.events:
        for name, value in item.event.items():
            spec = FIELD_TYPES.get(name)
            assert spec is None or type(value) in spec[0], (name, value)
    assert len(result.events) + len(result.errors) + (result.cut_short is not None) <= len(
        events)


# -- the encoder ------------------------------------------------------------------------


def _secret(name: str) -> bool:
    return "pass" in name


@PROFILE
@given(ANYTHING, LIMITS)
def test_encode_never_raises_and_is_always_json(value: Any, limits: Limits) -> None:
    out = encode(value, limits, _secret)
    orjson.dumps(out)
    orjson.dumps(encode_mapping({"value": value, "password": value, "\ud800": value}, limits,
                                _secret))


@PROFILE
@given(INERT)
def test_inert_values_round_trip_through_json(value: Any) -> None:
    roomy = Limits(max_str=10_000, max_items=1_000, max_depth=50)
    back = decode(orjson.loads(orjson.dumps(encode(value, roomy))))
    if _has_nan(value) and isinstance(value, (set, frozenset, dict)):
        return  # NaN members are equal to nothing, themselves included
    assert same(back, value), (value, back)


@PROFILE
@given(ANYTHING)
def test_allowed_classes_round_trip_and_nothing_else_is_built(value: Any) -> None:
    roomy = Limits(max_str=10_000, max_items=1_000, max_depth=50)
    loaded = orjson.loads(orjson.dumps(encode(value, roomy)))
    back = decode(loaded, ALLOWED.get)
    opaque = find_opaque(back)
    if opaque is not None:
        assert isinstance(opaque, Opaque) and opaque.reason
    elif not _has_nan(value):
        assert encode(back, roomy) == encode(value, roomy)


# -- the decoder ------------------------------------------------------------------------


@PROFILE
@given(TAGGED)
def test_decode_raises_nothing_but_decode_error(value: Any) -> None:
    for resolve in (None, ALLOWED.get):
        try:
            decoded = decode(value) if resolve is None else decode(value, resolve)
        except DecodeError as exc:
            assert exc.path.startswith("$")
            continue
        find_opaque(decoded)


@PROFILE
@given(JSON)
def test_plain_json_decodes_to_itself(value: Any) -> None:
    assert decode(value) == value


def test_uuid_and_datetime_helpers_used_by_strategies_exist() -> None:
    """The strategies above lean on these; a rename would silently narrow the fuzzing."""
    assert isinstance(uuid.uuid4(), uuid.UUID) and dt.timezone.utc is not None
