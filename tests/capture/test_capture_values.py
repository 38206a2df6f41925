"""Captured values stay small and exact: caps, hostile objects, and the encoder's fast path."""

from __future__ import annotations

import math
from typing import Any

import hypothesis.strategies as st
import orjson
from hypothesis import given, settings

import pytest_replay as replay
from pytest_replay.capture.plain import BUDGET, HUGE, PLAIN, shape
from pytest_replay.capture.redact import DEFAULT_REDACTION
from pytest_replay.capture.runtime import RUNTIME
from pytest_replay.capture.traced import value_json
from pytest_replay.format.values import DEFAULT_LIMITS, encode
from tests.capture.capturesupport import Captured


@replay.traced
def echo(value: Any) -> Any:
    return value


def _arg(captured: Captured) -> Any:
    return captured.events("function_entry")[-1]["args"]["value"]


def test_long_strings_are_cut_with_their_length(captured: Captured) -> None:
    echo("x" * 10_000)
    value = _arg(captured)
    assert value["$type"] == "str" and value["truncated"] is True
    assert value["len"] == 10_000
    assert len(value["head"]) == DEFAULT_LIMITS.max_str


def test_big_containers_are_cut_with_their_size(captured: Captured) -> None:
    echo(list(range(1000)))
    echo({f"k{i}": i for i in range(1000)})
    as_list, as_dict = (e["args"]["value"] for e in captured.events("function_entry"))
    assert as_list["len"] == 1000 and len(as_list["items"]) == DEFAULT_LIMITS.max_items
    assert as_dict["len"] == 1000 and as_dict["truncated"] is True


def test_deep_nesting_stops_at_the_depth_cap(captured: Captured) -> None:
    deep: list[Any] = []
    node = deep
    for _ in range(50):
        inner: list[Any] = []
        node.append(inner)
        node = inner
    echo(deep)
    text = orjson.dumps(_arg(captured)).decode()
    assert '"$type":"max_depth"' in text
    assert text.count("[") <= DEFAULT_LIMITS.max_depth + 2


def test_a_failing_repr_is_noted_not_raised(captured: Captured) -> None:
    class Hostile:
        def __init__(self) -> None:
            self.field = 1

        def __repr__(self) -> str:
            raise RuntimeError("no repr for you")

    assert isinstance(echo(Hostile()), Hostile)
    value = _arg(captured)
    assert value["attrs"] == {"field": 1}
    assert value["repr_error"] is True


def test_cycles_are_marked(captured: Captured) -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    table: dict[str, Any] = {"a": 1}
    table["self"] = table
    echo(loop)
    echo(table)
    first, second = (e["args"]["value"] for e in captured.events("function_entry"))
    assert first[0] == 1 and first[1]["$type"] == "cycle"
    assert second["a"] == 1 and second["self"]["$type"] == "cycle"


def test_special_numbers_and_big_ints_are_tagged(captured: Captured) -> None:
    for value in (math.nan, math.inf, -math.inf, 2**70, -(2**64)):
        echo(value)
    encoded = [e["args"]["value"] for e in captured.events("function_entry")]
    assert [v["$type"] for v in encoded] == ["float", "float", "float", "int", "int"]
    returned = [e["return_value"] for e in captured.events("function_exit")]
    assert returned == encoded


def test_text_orjson_refuses_is_still_captured(captured: Captured) -> None:
    lone_surrogate = "a\udc80b"
    echo(lone_surrogate)
    echo([lone_surrogate, "ok"])
    echo("héllo wörld")
    first, second, third = (e["args"]["value"] for e in captured.events("function_entry"))
    assert first == encode(lone_surrogate)
    assert second[1] == "ok"
    assert third == "héllo wörld"


def _look(value: Any) -> int:
    limits = DEFAULT_LIMITS
    return shape(value, limits.max_str, limits.max_items, limits.max_depth,
                 DEFAULT_REDACTION.is_secret_key, DEFAULT_REDACTION.verdicts,
                 DEFAULT_REDACTION.plain_keys)


def test_a_shared_structure_is_captured_with_smaller_caps(captured: Captured) -> None:
    class Holder:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

    shared: Any = list(range(50))
    for level in range(6):
        # 50**6 paths to the same leaf, a few KB of memory: without a total budget
        # the encoder would walk for hours inside the request.
        shared = [shared] * 50 if level % 2 else (Holder(shared),) * 50
    assert _look(shared) == HUGE
    echo(shared)
    value = _arg(captured)
    assert value["$type"] == "list" and len(value["items"]) == 10 and value["len"] == 50
    assert "max_depth" in orjson.dumps(value).decode()


# -- the fast path writes exactly what the encoder writes --------------------------------

SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=20)
           | st.sampled_from(["password", "$type", "ok", "token", "é", "a" * 2048, "b" * 2049]))
KEYS = st.sampled_from(["a", "b", "password", "session_id", "$type", "é", "Auth", "note"])
VALUES = st.recursive(
    SCALARS,
    lambda inner: (st.lists(inner, max_size=3) | st.lists(st.integers(), min_size=99,
                                                            max_size=101)
                   | st.dictionaries(KEYS, inner, max_size=6) | st.tuples(inner, inner)),
    max_leaves=60,
)


@settings(max_examples=200, deadline=None)
@given(VALUES)
def test_fast_path_matches_the_encoder(value: Any) -> None:
    expected = orjson.dumps(encode(value, DEFAULT_LIMITS, DEFAULT_REDACTION.is_secret_key))
    assert orjson.dumps(RUNTIME.encode(value)) == expected
    assert value_json(value) == (b"null" if value is None else expected)


def test_fast_path_budget_is_generous_for_ordinary_values() -> None:
    cart = [{"sku": f"S{i}", "qty": i, "price": 1.5 * i, "gift": None} for i in range(100)]
    assert BUDGET >= 10_000
    assert _look(cart) == PLAIN
    assert RUNTIME.encode(cart) is cart
    assert _look([{"k": [1] * 100} for _ in range(100)]) == PLAIN
