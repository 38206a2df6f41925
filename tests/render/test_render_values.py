"""Short human text for encoded values: real ``encode`` output and malformed tags."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import uuid
from typing import Any

import pytest

from pytest_replay.format.values import Limits, encode
from pytest_replay.render.values import (
    class_name,
    format_args,
    is_empty_sequence,
    length,
    short,
)


@dataclasses.dataclass
class Order:
    id: int
    total: float


class Color(enum.Enum):
    RED = 1


class Plain:
    def __init__(self) -> None:
        self.name = "x"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.08, "0.08"),
        (100.0, "100.0"),
        (12345, "12345"),
        (None, "None"),
        (True, "True"),
        ("abc", "'abc'"),
        ([], "[]"),
        ([5.0, 10.0], "[5.0, 10.0]"),
        ({"a": 1}, "{'a': 1}"),
        ((1, 2), "(1, 2)"),
        ((1,), "(1,)"),
        (set(), "set()"),
        ({3}, "{3}"),
        (frozenset({1}), "frozenset({1})"),
        ({1: "a"}, "{1: 'a'}"),
        (Order(1, 9.5), "Order(id=1, total=9.5)"),
        (Plain(), "Plain(name='x')"),
        (Color.RED, "Color.RED"),
        (decimal.Decimal("1.10"), "Decimal('1.10')"),
        (uuid.UUID(int=1), "UUID('00000000-0000-0000-0000-000000000001')"),
        (dt.datetime(2025, 10, 31, 14, 23, 45), "2025-10-31T14:23:45"),
        (dt.timedelta(seconds=5), "0:00:05"),
        (b"hi", "b'hi'"),
        (2**70, str(2**70)),
        (float("nan"), "nan"),
        (1 + 2j, "(1.0+2.0j)"),
        (ValueError("bad"), "ValueError('bad')"),
        (len, "<builtin_function_or_method builtins:len>"),
    ],
)
def test_encoded_python_values(value: Any, expected: str) -> None:
    assert short(encode(value)) == expected


def test_long_list_becomes_a_count() -> None:
    assert short(encode(list(range(3))), width=8) == "[3 items]"
    assert short(encode(["a" * 30] * 3), width=20) == "[3 items]"


def test_truncated_values_say_so() -> None:
    text = short(encode("x" * 5000, Limits(max_str=100)), width=30)
    assert text.startswith("'xxxx") and "…" in text and "(5000 chars)" in text
    listed = short(encode(list(range(500)), Limits(max_items=3)), width=60)
    assert listed == "[0, 1, 2, … +497 more]"
    assert short(encode(list(range(500)), Limits(max_items=100)), width=30) == "[500 items]"
    ascii_text = short(encode("y" * 500, Limits(max_str=10)), width=20, unicode=False)
    assert "..." in ascii_text and "…" not in ascii_text


def test_redacted_cycles_and_depth() -> None:
    assert short({"$type": "redacted", "rule": "key"}) == "<redacted>"
    looped: list[Any] = []
    looped.append(looped)
    assert short(encode(looped)) == "[<cycle list>]"
    deep: Any = 1
    for _ in range(20):
        deep = [deep]
    assert "…" in short(encode(deep)) or "<list" in short(encode(deep))


def test_malformed_tags_never_raise() -> None:
    for value in [
        {"$type": "list", "items": "no"}, {"$type": "dict", "items": [[1]]},
        {"$type": "bytes", "b64": "!!!"}, {"$type": "timedelta", "days": "x"},
        {"$type": "object"}, {"$type": "dataclass", "class": 5, "fields": {"a": 1}},
        {"$type": "str"}, {"$type": "no-such-tag", "class": "m:K"}, {"$type": 7},
        {"$type": "int", "value": "9" * 10_000}, {"$type": "enum"},
    ]:
        text = short(value)
        assert isinstance(text, str) and len(text) < 200
    assert short({"$type": "no-such-tag", "class": "m:K"}) == "<no-such-tag K>"
    assert "(10000 digits)" in short({"$type": "int", "value": "9" * 10_000})


def test_foreign_objects_use_their_repr_safely() -> None:
    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert short(Hostile()) == "<Hostile: repr failed: RuntimeError>"
    assert short(object()).startswith("<object object")


def test_huge_values_stay_short() -> None:
    assert len(short("z" * 1_000_000, width=50)) < 80
    assert len(short(list(range(100_000)), width=50)) < 80
    assert len(short({str(i): i for i in range(10_000)}, width=50)) < 80


def test_format_args() -> None:
    assert format_args({"order_id": 12345, "user_id": 67890}) == "order_id=12345, user_id=67890"
    assert format_args({}) == "" and format_args(None) == ""
    assert format_args([1, 2]) == "[1, 2]"
    many = format_args({f"a{i}": "v" * 20 for i in range(20)}, width=60)
    assert "more" in many and len(many) < 120


def test_helpers() -> None:
    assert class_name("shop.models:Order") == "Order"
    assert class_name("shop.models.Order") == "Order"
    assert class_name(None) == "?"
    assert is_empty_sequence([]) and is_empty_sequence("") and is_empty_sequence({})
    assert is_empty_sequence({"$type": "tuple", "items": []})
    assert not is_empty_sequence({"$type": "list", "items": [], "len": 9, "truncated": True})
    assert not is_empty_sequence([0]) and not is_empty_sequence(0)
    assert length({"$type": "list", "items": [1], "len": 50, "truncated": True}) == 50
    assert length([1, 2]) == 2 and length(5) is None
