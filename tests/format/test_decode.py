"""decode(): round trips for every tag, classes only through the resolver, malformed input."""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import decimal
import enum
import math
import uuid
from collections.abc import Callable
from typing import Any, NamedTuple

import orjson
import pytest

from pytest_replay.format.decode import MAX_DEPTH, DecodeError, Opaque, decode, find_opaque
from pytest_replay.format.values import REDACTED_TEXT, TAG, Limits, class_path, encode


class Color(enum.Enum):
    RED = 1


@dataclasses.dataclass(frozen=True)
class Item:
    sku: str
    qty: int


@dataclasses.dataclass
class Slotted:
    __slots__ = ("value",)
    value: Any


class Customer:
    def __init__(self, name: str) -> None:
        raise AssertionError("decode must not run __init__")


class Point(NamedTuple):
    x: int
    y: int


class Money(dict[str, int]):
    pass


class Refuses:
    def __new__(cls) -> Refuses:
        raise RuntimeError("not like this")


ALLOWED: dict[str, type] = {class_path(c): c for c in (Color, Item, Slotted, Customer, Point,
                                                       Money, Refuses)}


class Resolver:
    """Allows the classes above and remembers every name it was asked about."""

    def __init__(self, allowed: dict[str, type] | None = None) -> None:
        self.allowed = ALLOWED if allowed is None else allowed
        self.asked: list[str] = []

    def __call__(self, name: str) -> type | None:
        self.asked.append(name)
        return self.allowed.get(name)


def through_json(value: Any, resolve: Callable[[str], type | None] | None = None) -> Any:
    """encode -> JSON text -> decode, as a value makes it from capture to replay."""
    loaded = orjson.loads(orjson.dumps(encode(value)))
    return decode(loaded) if resolve is None else decode(loaded, resolve)


# -- round trips --------------------------------------------------------------------------


@pytest.mark.parametrize("value", [
    "text", 7, -(2**63), 1.25, True, None, [1, [2, "x"]], {"a": {"b": None}},
    2**63, -(2**200), 10**4000,
    "a\udcffb", "é😀",
    dt.datetime(2023, 10, 31, 14, 23, 45, 123456),
    dt.datetime(2023, 10, 31, 14, 23, 45, tzinfo=dt.timezone(dt.timedelta(hours=-7))),
    dt.date(2023, 10, 31), dt.time(14, 23, 45, 1), dt.timedelta(days=-3, microseconds=9),
    decimal.Decimal("100.10"), decimal.Decimal("-0E-7"), uuid.UUID(int=2**100),
    b"\x00\xff", b"", complex(1.5, -2), (1, (2, "b")), (), {1, "a"}, frozenset({(1, 2)}),
    {1: "a", (2, 3): {b"k": "v"}, None: 0.5}, {TAG: "literal"},
    collections.OrderedDict(b=1, a=2), collections.Counter("abca"),
], ids=lambda v: type(v).__name__)  # not repr: a set's repr changes with the hash seed
def test_inert_values_round_trip(value: Any) -> None:
    back = through_json(value)
    assert back == value
    assert type(back) is type(value)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_round_trip(value: float) -> None:
    back = through_json(value)
    assert type(back) is float
    assert (math.isnan(back) and math.isnan(value)) or back == value


def test_complex_with_non_finite_parts_round_trips() -> None:
    back = through_json(complex(math.inf, math.nan))
    assert back.real == math.inf and math.isnan(back.imag)


def test_offset_survives_a_round_trip() -> None:
    value = dt.datetime(2023, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30)))
    assert through_json(value).utcoffset() == dt.timedelta(hours=5, minutes=30)


def test_redacted_decodes_to_the_placeholder_text() -> None:
    assert decode({TAG: "redacted", "rule": "key"}) == REDACTED_TEXT


# -- classes: only through the resolver ---------------------------------------------------


@pytest.mark.parametrize("value", [Item("SKU-1", 2), Color.RED, Point(1, 2), Money(a=1)],
                         ids=repr)
def test_classes_round_trip_through_the_resolver(value: Any) -> None:
    resolve = Resolver()
    back = through_json(value, resolve)
    assert back == value and type(back) is type(value)
    assert resolve.asked == [class_path(type(value))]


@pytest.mark.parametrize("value", [Item("SKU-1", 2), Color.RED, Point(1, 2), Money(a=1)],
                         ids=repr)
def test_classes_without_a_resolver_stay_opaque(value: Any) -> None:
    back = through_json(value)
    assert isinstance(back, Opaque)
    assert back.class_name == class_path(type(value))
    assert "not allowed" in back.reason


def test_resolver_saying_no_leaves_the_value_opaque() -> None:
    resolve = Resolver(allowed={})
    back = decode({TAG: "dataclass", "class": "os:system", "fields": {"command": "rm -rf /"}},
                  resolve)
    assert isinstance(back, Opaque)
    assert resolve.asked == ["os:system"]


def test_objects_are_built_without_running_init() -> None:
    tagged = {TAG: "object", "class": class_path(Customer), "attrs": {"name": "Ada"}}
    back = decode(tagged, Resolver())
    assert type(back) is Customer and back.name == "Ada"  # type: ignore[attr-defined]


def test_slotted_dataclass_is_rebuilt() -> None:
    back = through_json(Slotted(decimal.Decimal("1")), Resolver())
    assert type(back) is Slotted and back.value == decimal.Decimal("1")


def test_object_recorded_without_attributes_is_opaque() -> None:
    """A ``__slots__`` or C object has no ``attrs``: rebuilding it empty would lie."""
    resolve = Resolver()
    back = decode({TAG: "object", "class": class_path(Customer), "repr": "Customer()"}, resolve)
    assert isinstance(back, Opaque) and "without its attrs" in back.reason
    empty = decode({TAG: "object", "class": class_path(Customer), "attrs": {}}, resolve)
    assert type(empty) is Customer


def test_class_that_refuses_to_be_built_is_opaque_not_an_error() -> None:
    back = decode({TAG: "object", "class": class_path(Refuses), "attrs": {}}, Resolver())
    assert isinstance(back, Opaque) and "RuntimeError" in back.reason


def test_enum_member_gone_today_is_opaque() -> None:
    back = decode({TAG: "enum", "class": class_path(Color), "name": "PURPLE"}, Resolver())
    assert isinstance(back, Opaque) and "PURPLE" in back.reason


def test_enum_tag_naming_a_non_enum_is_opaque() -> None:
    back = decode({TAG: "enum", "class": class_path(Item), "name": "RED"}, Resolver())
    assert isinstance(back, Opaque)


def test_subclass_of_another_base_today_is_opaque() -> None:
    tagged = {TAG: "subclass", "class": class_path(Money), "value": [1, 2]}
    assert isinstance(decode(tagged, Resolver()), Opaque)


# -- what is never rebuilt ----------------------------------------------------------------


@pytest.mark.parametrize("value", [
    "x" * 3000, list(range(150)), {str(i): i for i in range(150)}, b"b" * 5000,
    tuple(range(150)), set(range(150)), 10**5000,
], ids=lambda v: type(v).__name__)
def test_values_cut_short_at_capture_are_opaque(value: Any) -> None:
    back = through_json(value)
    assert isinstance(back, Opaque) and "cut short" in back.reason


def test_truncated_object_is_opaque_even_when_allowed() -> None:
    tagged = encode(Item("a", 1)) | {"truncated": True}
    assert isinstance(decode(tagged, Resolver()), Opaque)


@pytest.mark.parametrize("tagged", [
    {TAG: "exception", "class": "builtins:ValueError", "message": "x"},
    {TAG: "ref", "class": "builtins:function", "name": "os:system"},
    {TAG: "cycle", "class": "builtins:list"},
    {TAG: "max_depth", "class": "builtins:dict"},
    {TAG: "unencodable", "class": "x:Y", "reason": "RuntimeError"},
    {TAG: "from_the_future", "value": 1},
], ids=lambda t: t[TAG])
def test_described_only_and_unknown_tags_are_opaque(tagged: dict[str, Any]) -> None:
    resolve = Resolver()
    back = decode(tagged, resolve)
    assert isinstance(back, Opaque) and back.tagged == tagged
    assert resolve.asked == []


def test_value_past_the_node_budget_is_opaque() -> None:
    back = decode(encode([[1], [2], [3]], Limits(max_nodes=4)))
    opaque = find_opaque(back)
    assert opaque is not None and "max_nodes" in opaque.reason


def test_value_nested_past_capture_depth_is_opaque() -> None:
    value: Any = 1
    for _ in range(10):
        value = [value]
    assert find_opaque(decode(encode(value, Limits(max_depth=4)))) is not None


# -- find_opaque --------------------------------------------------------------------------


def test_find_opaque_looks_everywhere() -> None:
    hidden = Opaque({TAG: "ref", "class": "x:y"}, "test")
    assert find_opaque({"a": [1, (2, {3: hidden})]}) is hidden
    assert find_opaque({frozenset({hidden}): 1}) is hidden
    assert find_opaque({hidden: 1}) is hidden
    assert find_opaque(Slotted(hidden)) is hidden
    holder = Item("a", 1)
    object.__setattr__(holder, "qty", [hidden])
    assert find_opaque(holder) is hidden
    assert find_opaque({"a": [1, "b", Item("c", 2)]}) is None


def test_opaque_equality_and_repr() -> None:
    first = Opaque({TAG: "ref", "class": "m:f"}, "one reason")
    assert first == Opaque({TAG: "ref", "class": "m:f"}, "another reason")
    assert hash(first) == hash(Opaque({TAG: "ref", "class": "m:f"}, "x"))
    assert repr(first) == "<recorded m:f: one reason>"


# -- malformed tags: DecodeError with a path ----------------------------------------------


@pytest.mark.parametrize(("value", "path", "words"), [
    ({TAG: 5}, "$", "must be a string"),
    ({"a": [1, {TAG: "decimal", "value": "twelve"}]}, "$.a[1]", "decimal"),
    ({TAG: "datetime", "value": "2023-13-45"}, "$", "datetime"),
    ({TAG: "datetime", "value": 20231031}, "$", "must be a string"),
    ({TAG: "datetime"}, "$", "'value' is missing"),
    ({TAG: "date", "value": "yesterday"}, "$", "date"),
    ({TAG: "time", "value": "25:00"}, "$", "time"),
    ({TAG: "timedelta", "days": "1"}, "$", "must be an integer"),
    ({TAG: "timedelta", "days": 10**10}, "$", "timedelta"),
    ({TAG: "uuid", "value": "not-a-uuid"}, "$", "uuid"),
    ({TAG: "bytes", "b64": "!!!"}, "$", "bytes"),
    ({TAG: "str", "b64": "@@"}, "$", "str"),
    ({TAG: "str", "b64": "/w=="}, "$", "str"),
    ({TAG: "complex", "real": "one", "imag": 0}, "$", "complex"),
    ({TAG: "int", "value": "12a"}, "$", "decimal string"),
    ({TAG: "int", "value": "١٢"}, "$", "decimal string"),
    ({TAG: "int", "value": 12}, "$", "must be a string"),
    ({TAG: "float", "value": "1.5"}, "$", "nan, inf or -inf"),
    ({TAG: "list", "items": {"a": 1}}, "$", "'items' must be a list"),
    ({TAG: "tuple"}, "$", "'items' must be a list"),
    ({TAG: "set", "items": [[1, 2]]}, "$", "unhashable"),
    ({TAG: "dict", "items": [[1]]}, "$.items[0]", "[key, value] pairs"),
    ({TAG: "dict", "items": [[[1], 2]]}, "$.items[0]", "unhashable key"),
    ({"x": {TAG: "list", "items": [0, {TAG: "uuid", "value": "?"}]}}, "$.x.items[1]", "uuid"),
    ({TAG: "dataclass", "class": 3, "fields": {}}, "$", "'class' must be a string"),
    ({TAG: "object", "class": "m:C", "attrs": [1]}, "$", "'attrs' must be an object"),
    ({TAG: "enum", "class": "m:C", "name": 1}, "$", "'name' must be a string"),
    ({TAG: "subclass", "class": "m:C"}, "$", "'value' is missing"),
    ({TAG: "subclass", "class": "collections:Counter", "value": [[1]]}, "$", "Counter"),
], ids=lambda v: str(v)[:40])
def test_malformed_tags_raise_decode_error_with_a_path(value: Any, path: str,
                                                       words: str) -> None:
    with pytest.raises(DecodeError) as caught:
        decode(value, Resolver())
    assert caught.value.path == path
    assert words in str(caught.value)
    assert str(caught.value).startswith(f"{path}: ")


def test_nesting_past_the_decoder_depth_is_refused() -> None:
    value: Any = 0
    for _ in range(MAX_DEPTH + 5):
        value = [value]
    with pytest.raises(DecodeError, match="nested more than"):
        decode(value)


def test_paths_name_dict_keys_inside_objects() -> None:
    tagged = {TAG: "dataclass", "class": class_path(Item),
              "fields": {"sku": {TAG: "decimal", "value": "?"}}}
    with pytest.raises(DecodeError) as caught:
        decode({"args": tagged}, Resolver())
    assert caught.value.path == "$.args.fields.sku"


def test_decode_error_is_a_value_error() -> None:
    assert issubclass(DecodeError, ValueError)
