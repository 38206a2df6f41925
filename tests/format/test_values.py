"""encode(): every tag it writes, the caps, redaction, and what it must never do."""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import decimal
import enum
import math
import os
import subprocess
import sys
import types
import uuid
from typing import Any, NamedTuple

import orjson
import pytest

from pytest_replay.format.values import (
    DEFAULT_LIMITS,
    REDACTED_TEXT,
    TAG,
    Limits,
    class_path,
    encode,
    encode_mapping,
    redacted,
)


def _secret(name: str) -> bool:
    return name in {"password", "token"}


def dumped(value: Any) -> Any:
    """encode() then the JSON round trip every event makes."""
    return orjson.loads(orjson.dumps(encode(value)))


class Color(enum.Enum):
    RED = 1
    GREEN = 2


@dataclasses.dataclass
class Item:
    sku: str
    qty: int


@dataclasses.dataclass(frozen=True)
class Credentials:
    user: str
    password: str


class Point(NamedTuple):
    x: int
    y: int


class Customer:
    def __init__(self, name: str) -> None:
        self.name = name
        self.password = "hunter2"


class WithRepr:
    def __init__(self) -> None:
        self.n = 1

    def __repr__(self) -> str:
        return f"<WithRepr at {hex(id(self))} n=1>"


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class Money(dict[str, int]):
    pass


class Shouting(str):
    def __str__(self) -> str:
        return "OVERRIDDEN"


class Tripwire:
    """Any property, ``__getattr__`` or ``__class__`` lookup is recorded."""

    touched: list[str]

    def __init__(self) -> None:
        object.__setattr__(self, "touched", [])

    @property
    def expensive(self) -> int:
        self.touched.append("property")
        return 1

    def __getattr__(self, name: str) -> Any:
        object.__getattribute__(self, "touched").append(f"getattr:{name}")
        raise AttributeError(name)


class Proxy:
    """Claims to be a datetime through ``__class__``: encode must not believe it."""

    asked = 0

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        Proxy.asked += 1
        return dt.datetime


class HostileList(list[int]):
    def __iter__(self) -> Any:
        raise RuntimeError("iteration refused")


class FakeDatetime(dt.datetime):
    """Like freezegun's: a datetime subclass replay's frozen clock hands out."""


# -- JSON's own values ------------------------------------------------------------------


@pytest.mark.parametrize("value", ["text", "", 0, -5, 2**63 - 1, -(2**63), 1.5, -0.0, True,
                                   False, None, [1, "a", None], {"a": {"b": [1]}}])
def test_json_values_are_written_as_themselves(value: Any) -> None:
    assert encode(value) == value


def test_integers_past_64_bits_are_tagged_exactly() -> None:
    assert encode(2**63) == {TAG: "int", "value": str(2**63)}
    assert encode(-(2**63) - 1) == {TAG: "int", "value": str(-(2**63) - 1)}
    assert encode(10**30) == {TAG: "int", "value": "1" + "0" * 30}


def test_integer_too_long_to_print_is_cut_not_fatal() -> None:
    out = encode(10**5000)
    assert out[TAG] == "int" and out["truncated"] is True
    assert out["digits"] in range(4990, 5010)


@pytest.mark.parametrize(("value", "text"), [(math.nan, "nan"), (math.inf, "inf"),
                                             (-math.inf, "-inf")])
def test_non_finite_floats_are_tagged(value: float, text: str) -> None:
    assert encode(value) == {TAG: "float", "value": text}
    orjson.dumps(encode(value))


# -- caps ---------------------------------------------------------------------------------


def test_long_string_is_cut_at_max_str() -> None:
    out = encode("x" * 3000)
    assert out == {TAG: "str", "head": "x" * DEFAULT_LIMITS.max_str, "len": 3000,
                   "truncated": True}


def test_string_at_the_cap_is_whole() -> None:
    assert encode("y" * DEFAULT_LIMITS.max_str) == "y" * DEFAULT_LIMITS.max_str


def test_lone_surrogate_is_kept_exactly_and_stays_valid_json() -> None:
    out = encode("a\udcffb")
    assert out[TAG] == "str" and "b64" in out
    orjson.dumps(out)


def test_surrogate_in_a_truncated_head_is_escaped() -> None:
    out = encode("\ud800" * 3000)
    assert out["truncated"] is True
    orjson.dumps(out)


def test_list_over_max_items_keeps_the_first_items() -> None:
    out = encode(list(range(150)))
    assert out == {TAG: "list", "items": list(range(100)), "len": 150, "truncated": True}


def test_dict_over_max_items_is_tagged_and_cut() -> None:
    out = encode({str(i): i for i in range(101)})
    assert out[TAG] == "dict" and out["len"] == 101 and out["truncated"] is True
    assert out["items"][:2] == [["0", 0], ["1", 1]] and len(out["items"]) == 100


def test_nesting_past_max_depth_is_a_placeholder() -> None:
    value: Any = 1
    for _ in range(12):
        value = [value]
    out = encode(value, Limits(max_depth=3))
    assert out == [[[{TAG: "max_depth", "class": "builtins:list"}]]]


def test_node_budget_cuts_a_value_that_shares_itself() -> None:
    """50**6 paths to one leaf in a few KB: the whole value is bounded, not just each list."""
    shared: Any = list(range(50))
    for _ in range(6):
        shared = [shared] * 50
    text = orjson.dumps(encode(shared))
    assert b'"budget":true' in text
    assert len(text) < 20 * DEFAULT_LIMITS.max_nodes


def test_node_budget_is_exact_for_small_limits() -> None:
    out = encode([[1, 2], [3, 4], [5, 6]], Limits(max_nodes=5))
    assert out == [[1, 2], [3, 4], {TAG: "max_depth", "class": "builtins:list", "budget": True}]


def test_custom_limits_apply() -> None:
    out = encode({"s": "abcdef", "l": [1, 2, 3]}, Limits(max_str=3, max_items=2))
    assert out["s"] == {TAG: "str", "head": "abc", "len": 6, "truncated": True}
    assert out["l"] == {TAG: "list", "items": [1, 2], "len": 3, "truncated": True}


def test_bytes_over_4096_are_cut() -> None:
    out = encode(b"a" * 5000)
    assert out["len"] == 5000 and out["truncated"] is True


# -- standard library value types ---------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    (dt.datetime(2023, 10, 31, 14, 23, 45, 123456),
     {TAG: "datetime", "value": "2023-10-31T14:23:45.123456"}),
    (dt.datetime(2023, 10, 31, 14, 23, 45, tzinfo=dt.timezone.utc),
     {TAG: "datetime", "value": "2023-10-31T14:23:45+00:00"}),
    (dt.date(2023, 10, 31), {TAG: "date", "value": "2023-10-31"}),
    (dt.time(14, 23, 45), {TAG: "time", "value": "14:23:45"}),
    (dt.timedelta(days=1, seconds=5, microseconds=7),
     {TAG: "timedelta", "days": 1, "seconds": 5, "microseconds": 7}),
    (decimal.Decimal("100.10"), {TAG: "decimal", "value": "100.10"}),
    (uuid.UUID(int=1), {TAG: "uuid", "value": "00000000-0000-0000-0000-000000000001"}),
    (b"\x00\xffhi", {TAG: "bytes", "b64": "AP9oaQ=="}),
    (bytearray(b"hi"), {TAG: "bytes", "b64": "aGk="}),
    (complex(1, -2), {TAG: "complex", "real": 1.0, "imag": -2.0}),
    (complex(math.nan, math.inf), {TAG: "complex", "real": "nan", "imag": "inf"}),
    ((1, "a"), {TAG: "tuple", "items": [1, "a"]}),
    ({3, 1, 2}, {TAG: "set", "items": [1, 2, 3]}),
    (frozenset({"b", "a"}), {TAG: "frozenset", "items": ["a", "b"]}),
    ({1: "a", (2, 3): "b"},
     {TAG: "dict", "items": [[1, "a"], [{TAG: "tuple", "items": [2, 3]}, "b"]]}),
    ({TAG: "not a tag"}, {TAG: "dict", "items": [[TAG, "not a tag"]]}),
])
def test_standard_types_are_tagged(value: Any, expected: Any) -> None:
    assert encode(value) == expected
    assert dumped(value) == expected


def test_datetime_subclass_is_written_as_a_datetime() -> None:
    """freezegun's FakeDatetime must encode like the real one, or replay diverges."""
    value = FakeDatetime(2023, 10, 31, 14, 23, 45)
    assert encode(value) == {TAG: "datetime", "value": "2023-10-31T14:23:45"}


def test_set_order_is_stable_whatever_the_hash_seed() -> None:
    words = {f"w{i}" for i in range(50)}
    assert encode(words)["items"] == sorted(words)


def test_nested_sets_are_written_the_same_whatever_their_insertion_order() -> None:
    """-7 and True collide in a small hash table: their frozenset iterates by insertion."""
    first = {frozenset([True, -7]), frozenset([None])}
    second = {frozenset([None]), frozenset([-7, True])}
    assert repr(frozenset([True, -7])) != repr(frozenset([-7, True]))
    assert encode(first) == encode(second)


_ENCODE_SETS = (
    "import orjson; from pytest_replay.format.values import encode; "
    "words = {f'w{i}' for i in range(N)}; "
    "print(orjson.dumps(encode({'set': words, 'nested': {frozenset(words): 1}})).decode())"
)


@pytest.mark.parametrize("size", [50, 300])
def test_sets_are_written_the_same_under_any_hash_seed(size: int) -> None:
    """Whole, or cut to the cap, a set of strings comes out the same in every process."""
    outputs = set()
    for seed in ("1", "2", "3"):
        done = subprocess.run([sys.executable, "-c", _ENCODE_SETS.replace("N", str(size))],
                              capture_output=True, check=True, timeout=60,
                              env={**os.environ, "PYTHONHASHSEED": seed})
        outputs.add(done.stdout)
    assert len(outputs) == 1
    written = orjson.loads(outputs.pop())
    assert len(written["set"]["items"]) == min(size, 100)


# -- classes ------------------------------------------------------------------------------


def test_dataclass_fields() -> None:
    assert encode(Item("SKU-1", 2)) == {TAG: "dataclass", "class": class_path(Item),
                                        "fields": {"sku": "SKU-1", "qty": 2}}


def test_object_attrs_without_addresses_in_repr() -> None:
    out = encode(WithRepr())
    assert out["attrs"] == {"n": 1}
    assert out["repr"] == "<WithRepr n=1>"


def test_object_without_own_repr_has_no_repr() -> None:
    out = encode(Customer("Ada"))
    assert out[TAG] == "object" and "repr" not in out
    assert out["class"] == f"{__name__}:Customer"


def test_raising_repr_is_noted_not_raised() -> None:
    assert encode(BadRepr())["repr_error"] is True


def test_enum_member() -> None:
    assert encode(Color.RED) == {TAG: "enum", "class": class_path(Color), "name": "RED"}


def test_exception_as_a_value() -> None:
    assert encode(ZeroDivisionError("division by zero")) == {
        TAG: "exception", "class": "builtins:ZeroDivisionError", "message": "division by zero"}


@pytest.mark.parametrize(("value", "name"), [
    (class_path, "pytest_replay.format.values:class_path"),
    (Item, f"{__name__}:Item"),
    (math, "math"),
    (len, "builtins:len"),
])
def test_functions_classes_and_modules_are_references(value: Any, name: str) -> None:
    out = encode(value)
    assert out[TAG] == "ref" and out["name"] == name


def test_dict_subclass_and_namedtuple_are_subclasses() -> None:
    assert encode(Money(a=1)) == {TAG: "subclass", "class": class_path(Money), "value": {"a": 1}}
    assert encode(Point(1, 2)) == {TAG: "subclass", "class": class_path(Point),
                                   "value": {TAG: "tuple", "items": [1, 2]}}
    assert encode(collections.OrderedDict(b=1))["class"] == "collections:OrderedDict"


def test_str_subclass_is_read_through_str_not_its_override() -> None:
    assert encode(Shouting("quiet")) == {TAG: "subclass", "class": class_path(Shouting),
                                         "value": "quiet"}


def test_cycles_become_placeholders() -> None:
    items: list[Any] = [1]
    items.append(items)
    assert encode(items) == [1, {TAG: "cycle", "class": "builtins:list"}]
    node = Customer("a")
    node.name = node  # type: ignore[assignment]
    assert encode(node)["attrs"]["name"] == {TAG: "cycle", "class": class_path(Customer)}


def test_shared_but_acyclic_values_are_written_twice() -> None:
    shared = [1, 2]
    assert encode([shared, shared]) == [[1, 2], [1, 2]]


def test_value_whose_encoding_raises_is_unencodable() -> None:
    out = encode(HostileList([1, 2]))
    assert out == {TAG: "unencodable", "class": class_path(HostileList), "reason": "RuntimeError"}


# -- what encode must never do ------------------------------------------------------------


def test_properties_and_getattr_are_never_run() -> None:
    trip = Tripwire()
    out = encode(trip)
    assert out[TAG] == "object"
    assert trip.touched == []


def test_proxy_class_property_is_not_consulted() -> None:
    Proxy.asked = 0
    out = encode(Proxy())
    assert out[TAG] == "object" and out["class"] == class_path(Proxy)
    assert Proxy.asked == 0


def test_iterators_and_generators_are_not_consumed() -> None:
    numbers = iter([1, 2, 3])
    encode(numbers)
    assert list(numbers) == [1, 2, 3]
    generator = (n for n in range(3))
    assert encode(generator)[TAG] == "object"
    assert list(generator) == [0, 1, 2]


def test_output_of_odd_values_is_always_json() -> None:
    odd: list[Any] = [types.SimpleNamespace(a={1, 2}), BadRepr(), HostileList(), Proxy(),
                      object(), type, Ellipsis, NotImplemented, memoryview(b"x"),
                      {frozenset({1}): {(1, 2): [math.nan]}}, range(3), slice(1, 2)]
    orjson.dumps(encode(odd))


# -- redaction ----------------------------------------------------------------------------


def test_secret_names_are_redacted_everywhere() -> None:
    value = {"user": "ada", "password": "hunter2", "nested": {"token": "t", 1: "x"}}
    out = encode(value, is_secret_key=_secret)
    assert out["password"] == redacted()
    assert out["nested"][TAG] == "dict"
    assert ["token", {TAG: "redacted", "rule": "key"}] in out["nested"]["items"]
    assert encode(Credentials("ada", "pw"), is_secret_key=_secret)["fields"]["password"] == (
        redacted())
    assert encode(Customer("ada"), is_secret_key=_secret)["attrs"]["password"] == redacted()


def test_encode_mapping_redacts_and_cleans_names() -> None:
    out = encode_mapping({"password": "x", "amount": decimal.Decimal("1.5"), "\ud800": 1},
                         is_secret_key=_secret)
    assert out["password"] == redacted()
    assert out["amount"] == {TAG: "decimal", "value": "1.5"}
    assert "\\ud800" in out
    orjson.dumps(out)


def test_encode_mapping_keeps_going_past_a_hostile_value() -> None:
    out = encode_mapping({"bad": HostileList([1]), "good": 1})
    assert out["bad"][TAG] == "unencodable" and out["good"] == 1


def test_redacted_placeholder_text() -> None:
    assert REDACTED_TEXT == "[REDACTED]"


@pytest.mark.parametrize("field", ["max_str", "max_items", "max_depth", "max_repr", "max_nodes"])
@pytest.mark.parametrize("bad", [-1, 2.5, "10", None, True])
def test_limits_refuse_a_negative_or_non_int_cap_and_name_it(field: str, bad: object) -> None:
    with pytest.raises(ValueError, match=rf"Limits\({field}=\.\.\.\) must be an int of 0 or more"):
        Limits(**{field: bad})  # type: ignore[arg-type]
    assert getattr(Limits(**{field: 0}), field) == 0
