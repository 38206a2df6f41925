"""The C value walker (``_textscan.c``) gives exactly what its Python definitions give.

``plain.shape``, ``Redaction.holds_secret_text`` and ``Redaction.scrub_encoded``
stay the definition of the behaviour; the C module only has to be faster. These
tests feed both the same values (hand-picked odd ones and thousands of generated
ones) and compare the answers, the caches the walk fills, the objects handed
back and the exceptions raised. Callbacks that mutate what is being walked run
in a child process with Python's debug allocator, so a use after free shows up
as a failed test instead of taking the whole run down.
"""

from __future__ import annotations

import ast
import copy
import enum
import gc
import math
import os
import re
import subprocess
import sys
import textwrap
import weakref
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

from pytest_replay.capture import plain, textscan
from pytest_replay.capture.plain import BOUNDED, BUDGET, HUGE, PLAIN
from pytest_replay.capture.redact import MIN_SCANNED, STRUCTURAL_FIELDS, Redaction
from pytest_replay.capture.runtime import _text_scanner
from pytest_replay.native_switch import PURE_PYTHON_ENV, pure_python_requested

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")
"""Generated values can be large: a failure must show its assertion, not a repr warning."""
NATIVE = textscan.NATIVE
needs_c = pytest.mark.skipif(
    NATIVE is None, reason=f"the C value walker is not in use: {textscan.WHY_PYTHON}")
CHILDREN: Callable[[Any, type, int], Iterable[Any]] = plain.children
"""What ``plain.shape`` walks inside other objects (the C walker is handed the same)."""
GATE_FOR = textscan.gate_for
SMALL = (20, 5, 3)
DEFAULT = (2048, 100, 8)
PROPERTY = settings(max_examples=300, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])
QUICK = settings(PROPERTY, max_examples=150)


def _c() -> Any:
    """The C module (tests that call it are skipped without it)."""
    assert NATIVE is not None
    return NATIVE


def build_gate(redaction: Redaction, fallback: Callable[[str], bool] | None) -> Any:
    """The gate capture builds for ``redaction`` (``textscan.gate_for``)."""
    return GATE_FOR(redaction, fallback)


def c_shape(value: Any, limits: tuple[int, int, int], is_secret: Callable[[str], bool],
            verdicts: dict[str, bool], safe_keys: set[str],
            secret_text: Callable[[str], bool] | None,
            children: Callable[[Any, type, int], Iterable[Any]] = CHILDREN) -> Any:
    """``_textscan.shape`` as the runtime calls it (``min_scanned`` last)."""
    max_str, max_items, max_depth = limits
    return _c().shape(value, max_str, max_items, max_depth, is_secret, verdicts, safe_keys,
                      secret_text, children, MIN_SCANNED)


def py_shape(value: Any, limits: tuple[int, int, int], is_secret: Callable[[str], bool],
             verdicts: dict[str, bool], safe_keys: set[str],
             secret_text: Callable[[str], bool] | None) -> int:
    max_str, max_items, max_depth = limits
    return plain.shape(value, max_str, max_items, max_depth, is_secret, verdicts, safe_keys,
                       secret_text)


def python_scrub(value: object) -> object:
    """``Redaction.scrub_encoded`` in Python alone, on a fresh redaction with no C gate."""
    redaction = Redaction()
    redaction.text_gate = None
    reference: Callable[[object], object] = (
        getattr(redaction, "scrub_encoded_python", None)
        or getattr(redaction, "_scrub_encoded_python", None) or redaction.scrub_encoded)
    return reference(value)


# -- values ------------------------------------------------------------------------------

class StrSub(str):
    """A str subclass: never the fast path, in Python or C."""


class IntSub(int):
    pass


class FloatSub(float):
    pass


class DictSub(dict[Any, Any]):
    """Walked through ``dict.values``: its own methods must not be called."""

    def values(self) -> Any:
        raise AssertionError("DictSub.values called")

    def __iter__(self) -> Iterator[Any]:
        raise AssertionError("DictSub.__iter__ called")


class ListSub(list[Any]):
    def __getitem__(self, index: Any) -> Any:
        raise AssertionError("ListSub.__getitem__ called")

    def __iter__(self) -> Iterator[Any]:
        raise AssertionError("ListSub.__iter__ called")


class PlainListSub(list[Any]):
    """A list subclass that copies like a list (encoded values never hold one)."""


class TupleSub(tuple[Any, ...]):
    def __getitem__(self, index: Any) -> Any:
        raise AssertionError("TupleSub.__getitem__ called")


class SetSub(set[Any]):
    pass


class Obj:
    """An object whose attributes are walked."""

    def __init__(self, attrs: dict[str, Any]) -> None:
        self.__dict__.update(attrs)


class Slotted:
    __slots__ = ("a", "b")

    def __init__(self, a: Any, b: Any) -> None:
        self.a = a
        self.b = b


class PropDict:
    """``__dict__`` is a property: ``object.__getattribute__`` calls it."""

    __slots__ = ("_attrs",)

    def __init__(self, attrs: dict[str, Any]) -> None:
        self._attrs = attrs

    @property
    def __dict__(self) -> dict[str, Any]:  # type: ignore[override]
        return self._attrs


class Color(enum.Enum):
    RED = "é"
    BLUE = 2**70


class Level(enum.IntEnum):
    HIGH = 2**70
    LOW = 1


class Named(str, enum.Enum):
    TOKEN = "Bearer abcdefghijkl"


def with_attrs() -> None:
    """A function carrying attributes (functions are leaves)."""


with_attrs.secret = "Bearer abcdefghijkl"  # type: ignore[attr-defined]
LEAVES: tuple[Any, ...] = (Color.RED, Color.BLUE, Level.HIGH, Level.LOW, Named.TOKEN,
                           b"Bearer abcdefgh", bytearray(b"x"), 1 + 2j, len, math,
                           ValueError("é"), int, Obj, with_attrs, memoryview(b"ab"))
EDGE_INTS = (2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, -(2**64), 10**30, 0, -1)
FRAGMENTS = ("Bearer ", "bEaReR", "sk_live_", "ghp_", "AKIA", "xoxb-", "eyJ", "://u:p@",
             "token=", "api_key=", "pwd=", "?key=", "gh", "asic", "OKEN")
SECRETS = ("Bearer abcdef123456", "basic QWxhZGRpbjpvcGVu", "TOKEN abcdefgh",
           "sk_live_abcdef1234", "pk_test_ZZZZZZ", "ghp_0123456789abcdefghij",
           "gho_ABCDEFGHIJKLMNOPQRSTUV", "AKIAIOSFODNN7EXAMPLE", "xoxb-1234567890-abc",
           "eyJhbGciOiJI.eyJzdWIiOiIx.sig", "https://user:hunter2@db.example.com",
           "token=abc123", "api_key=XYZ", "?key=value", "a=1&sig=abc", "PWD=hunter2",
           "Secret=s3", "Bearer abcdefgh", "token=[REDACTED]")
NON_ASCII = ("é", "\u017f", "\u212a", "ß", "İ", "\u00a0", "\ud800", "日本", "\U0001f600")
FILLER = ("abcdefghijklmnop", "0123456789", "ABCDEFGHIJKLMNOPQRST", " ", "&", ";", ".", "-",
          "_", "=", "/", "@", ":", "\x00", "\n", "\t")
KEY_NAMES = ("a", "id", "name", "author", "password", "api_key", "auth_header", "authHeader",
             "SHOP_DB_PASS", "sid", "token", "$type", "class", "event_type", "clé", "\u212aey",
             "x" * 30, "")
ASCII = st.characters(max_codepoint=127)


def _texts() -> st.SearchStrategy[str]:
    """Strings made of rule anchors, whole secrets, non-ASCII letters and filler."""
    piece = st.one_of(st.sampled_from(FRAGMENTS), st.sampled_from(SECRETS),
                      st.sampled_from(NON_ASCII), st.sampled_from(FILLER),
                      st.text(ASCII, max_size=10), st.text(max_size=3))
    return st.lists(piece, max_size=6).map("".join)


TEXTS = _texts()
GATE_TEXTS: st.SearchStrategy[str] = st.one_of(TEXTS, TEXTS.map(StrSub), st.just(""),
                                               st.text(max_size=20))


def _repeat(item: Any, count: int) -> list[Any]:
    return [item] * count


def _wide(item: Any, count: int) -> dict[str, Any]:
    return {f"k{i}": item for i in range(count)}


def _nest(item: Any, levels: int, as_dict: bool) -> Any:
    for _ in range(levels):
        item = {"n": item} if as_dict else [item]
    return item


def _shared(leaf: Any, width: int, levels: int, as_dict: bool) -> Any:
    """The same container many times over: small in memory, vast to walk."""
    node = leaf
    for _ in range(levels):
        node = {f"s{i}": node for i in range(width)} if as_dict else [node] * width
    return node


def _long(text: str, size: int) -> str:
    return (text * (size // len(text) + 1))[:size]


HASHABLES: st.SearchStrategy[Any] = st.one_of(
    st.none(), st.booleans(), st.integers(), st.sampled_from(EDGE_INTS), st.floats(), TEXTS,
    TEXTS.map(StrSub), st.tuples(TEXTS, st.integers()))
KEYS: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(KEY_NAMES), st.text(ASCII, max_size=6), st.text(max_size=3),
    st.integers(-2, 2), st.none(), st.tuples(st.integers(0, 2), st.sampled_from(["é", "x"])),
    st.sampled_from(KEY_NAMES).map(StrSub), st.frozensets(st.integers(0, 3), max_size=2),
    st.builds(Obj, st.fixed_dictionaries(  # hashable by identity; its attributes are walked
        {"inner": st.dictionaries(st.sampled_from(KEY_NAMES), st.integers(), max_size=3)})))
SCALARS: st.SearchStrategy[Any] = st.one_of(
    st.none(), st.booleans(), st.integers(), st.sampled_from(EDGE_INTS), st.floats(),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0]), st.text(max_size=25), TEXTS,
    st.builds(_long, st.sampled_from(["x", "é", "Bearer abcdefgh "]), st.integers(2040, 2060)),
    st.builds(StrSub, TEXTS), st.builds(IntSub, st.integers()),
    st.builds(FloatSub, st.floats()), st.sampled_from(LEAVES))


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    attrs = st.dictionaries(st.sampled_from(["a", "b", "password", "$type", "é"]), children,
                            max_size=5)
    return st.one_of(
        st.lists(children, max_size=7),
        st.dictionaries(KEYS, children, max_size=7),
        st.lists(children, max_size=6).map(tuple),
        st.sets(HASHABLES, max_size=6), st.frozensets(HASHABLES, max_size=6),
        st.builds(Obj, attrs), st.builds(Slotted, children, children), st.builds(PropDict, attrs),
        st.builds(DictSub, st.dictionaries(KEYS, children, max_size=5)),
        st.builds(ListSub, st.lists(children, max_size=5)),
        st.builds(TupleSub, st.lists(children, max_size=5)),
        st.builds(SetSub, st.sets(HASHABLES, max_size=5)),
        st.builds(_repeat, children, st.integers(95, 130)),
        st.builds(_wide, children, st.integers(95, 130)),
        st.builds(_nest, children, st.integers(1, 12), st.booleans()),
        st.builds(_shared, children, st.integers(2, 120), st.integers(1, 4), st.booleans()),
    )


VALUES: st.SearchStrategy[Any] = st.recursive(SCALARS, _containers, max_leaves=25)
JSON_SCALARS: st.SearchStrategy[Any] = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
    TEXTS, st.text(max_size=8), st.sampled_from(SECRETS), st.sampled_from(SECRETS).map(StrSub))
JSON_KEYS: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from([*sorted(STRUCTURAL_FIELDS), "args", "value", "headers", "password", "é"]),
    st.text(max_size=6), st.sampled_from(sorted(STRUCTURAL_FIELDS)).map(StrSub),
    st.integers(0, 3))


def _json_containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=6), st.dictionaries(JSON_KEYS, children, max_size=6),
        st.lists(children, max_size=3).map(tuple),
        st.builds(_repeat, children, st.integers(2, 3)),  # one object twice: scrubbed twice
    )


ENCODED: st.SearchStrategy[Any] = st.recursive(JSON_SCALARS, _json_containers, max_leaves=30)


class Side:
    """One walker's callbacks and caches, as the runtime wires them, with a log of calls."""

    def __init__(self, seeded: bool, scanner: str) -> None:
        self.redaction = Redaction()
        self.calls: list[tuple[str, str]] = []
        if seeded:  # caches that disagree with the rules: the walk must trust them
            self.redaction.verdicts.update({"name": True, "password": False, "sid": False})
            self.redaction.plain_keys.update({"author", "password", "id", "$type"})
        self.scanner = scanner

    def is_secret(self, key: str) -> bool:
        self.calls.append(("key", key))
        return self.redaction.is_secret_key(key)

    def holds(self, text: str) -> bool:
        self.calls.append(("text", text))
        return self.redaction.holds_secret_text(text)

    def secret_text(self, native: bool) -> Callable[[str], bool] | None:
        """None, the logged Python scan, or (for C) what the runtime builds: its gate."""
        if self.scanner == "none":
            return None
        if self.scanner == "runtime" and native:
            return _text_scanner(self.redaction)
        return self.holds

    def shape(self, value: Any, limits: tuple[int, int, int], native: bool) -> Any:
        walk = c_shape if native else py_shape
        return walk(value, limits, self.is_secret, self.redaction.verdicts,
                    self.redaction.plain_keys, self.secret_text(native))


def both_shapes(value: Any, limits: tuple[int, int, int], seeded: bool, scanner: str
                ) -> tuple[Side, Side, int, Any]:
    python, native = Side(seeded, scanner), Side(seeded, scanner)
    expected = python.shape(value, limits, native=False)
    got = native.shape(value, limits, native=True)
    return python, native, expected, got


def first_difference(native: list[tuple[str, str]], python: list[tuple[str, str]]) -> str:
    """Where two call logs part, shortly (the logs can hold 2 kB strings)."""
    at = next((i for i, (a, b) in enumerate(zip(native, python, strict=False))
                   if a != b),
              min(len(native), len(python)))

    def short(calls: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return [(kind, text[:20]) for kind, text in calls[at:at + 4]]

    return (f"calls part at {at} of {len(native)} (C) / {len(python)} (Python): "
            f"C {short(native)} Python {short(python)}")


def exact(left: Any, right: Any) -> bool:
    """Equal with the same types all the way down (``1`` is not ``True``, order counts)."""
    if type(left) is not type(right):
        return False
    if type(left) is dict:
        return len(left) == len(right) and all(
            exact(a, b) and exact(x, y)
            for (a, x), (b, y) in zip(left.items(), right.items(), strict=True))
    if type(left) in (list, tuple):
        return len(left) == len(right) and all(
            exact(a, b) for a, b in zip(left, right, strict=True))
    if type(left) is float and math.isnan(left):
        return math.isnan(right)
    return bool(left == right)


def same_objects(given_: Any, python: Any, native: Any, path: str = "$") -> None:
    """Where Python hands back the input's own object, C does too, and nowhere else."""
    assert (native is given_) == (python is given_), f"identity differs at {path}"
    if type(given_) is dict and type(python) is dict and type(native) is dict:
        for key in given_:
            if key in python and key in native:
                same_objects(given_[key], python[key], native[key], f"{path}[{key!r}]")
    elif type(given_) is list and type(python) is list and type(native) is list:
        for index, item in enumerate(given_):
            if index < len(python) and index < len(native):
                same_objects(item, python[index], native[index], f"{path}[{index}]")


def aliasing(value: Any) -> list[int]:
    """Which containers of a result are the same object, as first-seen positions."""
    seen: dict[int, int] = {}
    out: list[int] = []

    def walk(node: Any) -> None:
        if type(node) in (dict, list):
            out.append(seen.setdefault(id(node), len(seen)))
            for item in (node.values() if type(node) is dict else node):
                walk(item)

    walk(value)
    return out


# -- 1. AnchorGate -------------------------------------------------------------------------

REDACTIONS = {
    "default": Redaction,
    "extra keys": lambda: Redaction(keys=["custom_secret", "clé"]),
    "everywhere": lambda: Redaction(everywhere=True),
}


@needs_c
@pytest.mark.parametrize("make", REDACTIONS.values(), ids=REDACTIONS.keys())
@PROPERTY
@given(text=GATE_TEXTS)
def test_gate_answers_as_the_python_scan_does(make: Callable[[], Redaction], text: str) -> None:
    redaction = make()
    gate = build_gate(redaction, redaction.holds_secret_text)
    assert gate is not None
    holds = redaction.holds_secret_text(text)
    assert gate(text) is holds
    assert gate.may_hold(text) or not holds


@needs_c
@pytest.mark.parametrize("make", REDACTIONS.values(), ids=REDACTIONS.keys())
def test_gate_finds_anchors_at_every_offset_of_long_texts(make: Callable[[], Redaction]) -> None:
    """An anchor at the very start or end of a 100k string, or across any block boundary."""
    redaction = make()
    holds = redaction.holds_secret_text
    gate = build_gate(redaction, holds)
    bare = build_gate(redaction, None)
    filler = "x" * 100_000
    for secret in ("Bearer abcdefghij", "bEaReR abcdefghij", "AKIAIOSFODNN7EXAMPLE",
                   "ghp_0123456789abcdefghij", "xoxb-1234567890", "eyJabcdefghij.abcdefghij.x",
                   " api_key=v", "?key=v", "sk_live_abcdef1234", "://u:p@h", " PWD=x"):
        for text in (filler + secret, secret + filler, filler + secret + filler,
                     filler + secret.upper(), filler + secret.lower()):
            assert gate(text) is holds(text), (secret, len(text))
            assert bare.may_hold(text) or not holds(text), (secret, len(text))
    assert gate(filler) is False and bare.may_hold(filler) is False
    for offset in [*range(130), *range(250, 262), *range(1018, 1030), *range(4090, 4100),
                   *range(8186, 8200), *range(65530, 65540)]:
        for secret in ("bEaReR abcdefghij", "AKIAIOSFODNN7EXAMPLE", "x token=v"):
            text = "y" * offset + secret + "y" * (offset % 7)
            assert gate(text) is holds(text), (secret, offset)
            assert bare.may_hold(text) is True, (secret, offset)


@needs_c
def test_gate_hands_unsure_texts_to_the_fallback_as_they_are() -> None:
    """str subclasses and texts with an anchor reach the fallback unchanged; anything else
    is answered in C, non-ASCII text too (its folded anchors looked for in its casefold)."""
    asked: list[str] = []

    def fallback(text: str) -> bool:
        asked.append(text)
        return len(text) % 2 == 0

    gate = _c().AnchorGate(("AB",), ("cd",), fallback)
    subclassed = StrSub("plain words")
    for text, may in (("xxABxx", True), ("xxabxx", False), ("xxCDxx", True), ("xxcDxx", True),
                      ("é plain", False), ("é xxABxx", True), ("é xxCDxx", True),
                      ("é xxAé", False), ("ÀB", False), (subclassed, True), ("", False),
                      ("A", False), ("\x00AB", True), ("\x00cd", True), ("😀cd", True)):
        asked.clear()
        assert gate.may_hold(text) is may, text
        assert gate(text) is (may and len(text) % 2 == 0), text
        assert asked == ([text] if may else []), text
        if asked:
            assert asked[0] is text
    without = _c().AnchorGate(("AB",), ("cd",))
    assert without("xxABxx") is True and without("nothing") is False
    empty = _c().AnchorGate((), (), fallback)
    assert empty("Bearer abcdefghij") is False and empty.may_hold("é") is False
    # case folding can make an anchor where the text has none: ß folds to ss, K (the
    # Kelvin sign) to k; a case anchor is looked for in the text as it is
    folding = _c().AnchorGate(("SS",), ("ss", "kb"), None)
    assert folding.may_hold("straße") is True and folding.may_hold("stra\u00dfé") is True
    assert folding.may_hold("\u212ab é") is True and folding.may_hold("kélvin") is False
    assert folding.may_hold("SSé") is True and folding.may_hold("s é s") is False
    # an anchor C cannot hold (not ASCII) sends every text that is not ASCII to Python
    wide = _c().AnchorGate(("AB", "éé"), (), None)
    assert wide.may_hold("x éé x") is True and wide.may_hold("plain é") is True
    assert wide.may_hold("plain") is False


@needs_c
def test_gate_for_declines_where_c_cannot_stand_in() -> None:
    """No gate when nothing is scanned or a rule has no anchor (a pattern of the user's own)."""
    for redaction in (Redaction(values=False), Redaction.off(), Redaction(patterns=["foo"]),
                      Redaction(defaults=False), Redaction(keys=["k"], patterns=[re.compile("x")]),
                      Redaction(values=False, patterns=["foo"])):
        assert GATE_FOR(redaction, redaction.holds_secret_text) is None
        assert GATE_FOR(redaction) is None
    for redaction in (Redaction(), Redaction(keys=["custom"]), Redaction(everywhere=True)):
        gate = GATE_FOR(redaction, redaction.holds_secret_text)
        assert type(gate) is _c().AnchorGate
        assert gate("Bearer abcdefghij") is True and gate("plain words here") is False


@needs_c
def test_a_gate_in_a_cycle_is_collected() -> None:
    """The redaction keeps its gate and the gate its redaction's bound method: gc frees both."""

    class Holder:
        def holds(self, text: str) -> bool:
            return bool(text)

    holder = Holder()
    holder.gate = _c().AnchorGate(("a",), (), holder.holds)  # type: ignore[attr-defined]
    alive = weakref.ref(holder)
    del holder
    gc.collect()
    assert alive() is None


# -- 2. shape ------------------------------------------------------------------------------

@needs_c
@pytest.mark.parametrize("limits", [SMALL, DEFAULT], ids=["small", "default"])
@PROPERTY
@given(value=VALUES, seeded=st.booleans(), scanner=st.sampled_from(["none", "python", "runtime"]))
def test_shape_matches_python(limits: tuple[int, int, int], value: Any, seeded: bool,
                              scanner: str) -> None:
    python, native, expected, got = both_shapes(value, limits, seeded, scanner)
    assert type(got) is int and got == expected
    assert native.redaction.verdicts == python.redaction.verdicts
    assert native.redaction.plain_keys == python.redaction.plain_keys


@needs_c
@pytest.mark.parametrize("limits", [SMALL, DEFAULT], ids=["small", "default"])
@QUICK
@given(value=VALUES, seeded=st.booleans())
def test_shape_asks_the_same_questions_in_the_same_order(limits: tuple[int, int, int],
                                                         value: Any, seeded: bool) -> None:
    """Callbacks have effects (caches), so C asks what Python asks, when Python asks it."""
    python, native, expected, got = both_shapes(value, limits, seeded, "python")
    assert got == expected
    assert native.calls == python.calls, first_difference(native.calls, python.calls)
    assert list(native.redaction.verdicts.items()) == list(python.redaction.verdicts.items())


def _hand_picked() -> list[Any]:
    exact_budget = [[0] * 199 for _ in range(100)]  # 100 + 100 * 199 = BUDGET visits
    over_budget = [*exact_budget, 0]
    hostile_tag = {StrSub("$type"): 1}
    return [
        0, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, True, None, math.nan, -math.inf, "",
        "x" * 20, "x" * 21, "é", "Bearer abcdefgh", StrSub("x"), Level.HIGH, Named.TOKEN,
        [], {}, (), set(), [[]], [[[[]]]], {"$type": 1}, {"a": {"$type": "x"}}, hostile_tag,
        {"password": 1}, {"name": 1}, {"author": "Bearer abcdefghijk"}, {1: 2}, {"é": 1},
        {"\u212aey": "v"}, {"": ""}, {(1, "é"): 1}, {frozenset({"Bearer abcdefgh"}): 1},
        list(range(5)), list(range(6)), {f"k{i}": i for i in range(6)},
        exact_budget, over_budget, [exact_budget, exact_budget],
        _shared(1, 100, 3, as_dict=False), _shared("x", 30, 4, as_dict=True),
        Obj({"a": [1, {"password": "x"}]}), Slotted("é", 1), PropDict({"a": "é"}),
        DictSub({"a": 1}), ListSub([1, "é"]), TupleSub([2**64]), SetSub({"é"}),
        {"a": [1.5, -0.0, "ok"], "b": {"c": None}},
        # A key walked (its attributes hold a dict) next to a value that makes the whole HUGE:
        # Python walks the value first and stops, so the key's dict is never cached.
        {Obj({"a": {"keyname": 1}}): 1, "v": _shared(1, 100, 3, as_dict=False)},
    ]


HAND_LIMITS = [SMALL, DEFAULT, (6, 1, 1), (0, 0, 0), (10**6, 30_000, 50)]
HAND_IDS = ["small", "default", "tiny", "zero", "wide"]


@needs_c
@pytest.mark.parametrize("limits", HAND_LIMITS, ids=HAND_IDS)
@pytest.mark.parametrize("scanner", ["none", "python", "runtime"])
def test_shape_matches_python_on_hand_picked_values(limits: tuple[int, int, int],
                                                    scanner: str) -> None:
    for seeded in (False, True):
        for value in _hand_picked():
            python, native, expected, got = both_shapes(value, limits, seeded, scanner)
            assert got == expected, (value, limits)
            assert native.redaction.verdicts == python.redaction.verdicts, value
            assert native.redaction.plain_keys == python.redaction.plain_keys, value


@needs_c
@pytest.mark.parametrize("limits", HAND_LIMITS, ids=HAND_IDS)
def test_shape_asks_in_python_order_on_hand_picked_values(limits: tuple[int, int, int]) -> None:
    parted = []
    for seeded in (False, True):
        for value in _hand_picked():
            python, native, _expected, _got = both_shapes(value, limits, seeded, "python")
            if native.calls != python.calls:
                parted.append(f"{str(value)[:60]}: {first_difference(native.calls, python.calls)}")
    assert not parted, "\n".join(parted)


@needs_c
def test_shape_raises_the_error_python_raises_first() -> None:
    """Keys are judged before values are scanned: when both callbacks fail, the key's error
    is the one that surfaces (and a value scan that would fail is never reached)."""

    def bad_key(key: str) -> bool:
        raise KeyError(key)

    def bad_text(text: str) -> bool:
        raise ValueError(text)

    value = {"a": "Bearer abcdefgh"}
    with pytest.raises(KeyError):
        py_shape(value, SMALL, bad_key, {}, set(), bad_text)
    with pytest.raises(KeyError):
        c_shape(value, SMALL, bad_key, {}, set(), bad_text)


@needs_c
def test_shape_budget_boundary_and_safe_key_cap() -> None:
    """HUGE past exactly BUDGET visits; SAFE_KEYS caps the same keys, in the same order."""
    wide = (20, 200, 8)
    exact_budget = [[0] * 199 for _ in range(100)]  # 100 + 100 * 199 = BUDGET visits
    for value, verdict in ((exact_budget, PLAIN), ([*exact_budget, 0], HUGE),
                           ([*exact_budget, "é"], HUGE), ([*exact_budget[1:], "é"], BOUNDED)):
        assert c_shape(value, wide, bool, {}, set(), None) == verdict
        assert py_shape(value, wide, bool, {}, set(), None) == verdict
    flat = list(range(BUDGET + 1))
    flat_limits = (10, BUDGET + 1, 3)
    assert c_shape(flat, flat_limits, bool, {}, set(), None) == HUGE
    assert c_shape(flat[:-1], flat_limits, bool, {}, set(), None) == PLAIN
    many = {f"key{i}": i for i in range(9000)}
    limits = (20, 10_000, 3)
    keys_py: set[str] = set()
    keys_c: set[str] = set()
    assert py_shape(many, limits, lambda k: False, {}, keys_py, None) == c_shape(
        many, limits, lambda k: False, {}, keys_c, None)
    assert keys_c == keys_py and len(keys_py) == plain.SAFE_KEYS


@needs_c
def test_shape_reads_caches_and_truthiness_as_python_does() -> None:
    """Verdicts are read (not re-asked), answers count by truthiness, ``None`` means unknown."""
    value = {"a": 1, "b": 2, "c": 3, "d": 4}
    answers: dict[str, Any] = {"a": 0, "b": "yes", "c": [], "d": None}
    cached: tuple[dict[str, Any], ...] = ({}, {"a": True, "b": None}, {"c": 1, "d": ""})
    for verdicts in cached:
        outcome = []
        for walk in (py_shape, c_shape):
            asked: list[str] = []

            def is_secret(key: str, asked: list[str] = asked) -> Any:
                asked.append(key)
                return answers[key]

            safe: set[str] = set()
            outcome.append((walk(value, SMALL, is_secret, dict(verdicts), safe, None),
                            asked, safe))
        assert outcome[0] == outcome[1], verdicts


@needs_c
def test_shape_walks_a_set_subclass_through_its_own_iterator() -> None:
    """``plain.children`` iterates sets with ``islice(node)``: an overridden ``__iter__`` counts."""

    class Yielding(set[Any]):
        def __iter__(self) -> Iterator[Any]:
            yield "é"
            yield _shared(1, 100, 3, as_dict=False)

    value = Yielding({1})
    assert c_shape(value, DEFAULT, bool, {}, set(), None) == py_shape(
        value, DEFAULT, bool, {}, set(), None) == HUGE


@needs_c
def test_shape_is_reentrant() -> None:
    """A callback that runs another walk (C inside C) leaves the outer walk's state alone."""
    inner_value = {"inner": ["é", "Bearer abcdefghijkl"], "more": [1, 2, 3]}
    outcome = []
    for walk in (py_shape, c_shape):
        inner_results: list[int] = []

        def is_secret(key: str, walk: Any = walk, inner_results: list[int] = inner_results
                      ) -> bool:
            inner_results.append(walk(inner_value, SMALL, lambda k: False, {}, set(),
                                      Redaction().holds_secret_text))
            return key == "password"

        safe: set[str] = set()
        value = {"a": [1, {"b": 2, "password": 3}], "c": "x"}
        outcome.append((walk(value, SMALL, is_secret, {}, safe, None), inner_results, safe))
    assert outcome[0] == outcome[1]


# -- 3. scrub_encoded ----------------------------------------------------------------------

@needs_c
@pytest.mark.parametrize("with_fallback", [True, False], ids=["fallback", "no-fallback"])
@PROPERTY
@given(value=ENCODED)
def test_scrub_encoded_matches_python(with_fallback: bool, value: Any) -> None:
    before = copy.deepcopy(value)
    expected = python_scrub(value)
    assert exact(value, before)
    redaction = Redaction()
    gate = build_gate(redaction, redaction.holds_secret_text if with_fallback else None)
    got = _c().scrub_encoded(value, STRUCTURAL_FIELDS, gate, MIN_SCANNED, redaction.scrub)
    assert exact(got, expected)
    assert exact(value, before), "the input was changed"
    same_objects(value, expected, got)
    assert aliasing(got) == aliasing(expected)
    public = Redaction().scrub_encoded(value)  # what capture calls: C where a gate is set
    assert exact(public, expected)
    same_objects(value, expected, public)


@needs_c
def test_scrub_encoded_on_hand_picked_values() -> None:
    secret = "Bearer abcdefghijkl"
    inner = {"token": secret}
    untouched = {"ok": [1, 2.5, None, "plain words"]}
    values: list[Any] = [
        secret, "short", "", StrSub(secret), 12, None, (secret,), [secret], [1, secret, 2],
        {"event_type": secret, "value": secret}, {StrSub("event_type"): secret},
        {1: secret, None: [secret]}, [inner, inner], {"a": untouched, "b": inner}, untouched,
        {"$type": "str", "head": secret, "class": secret}, [[["x" * 100_000 + secret]]],
        ["é " + secret, "\u017f token abcdefghi", "\u212a" + secret, "\ud800" + secret],
        "token=[REDACTED]", {"x": "a=1&sig=abc&token=[REDACTED]"}, DictSub({"a": secret}),
        [PlainListSub([secret])], [(secret,)], {"a": [[], {}, [{}]]},
    ]
    redaction = Redaction()
    gate = build_gate(redaction, redaction.holds_secret_text)
    for value in values:
        before = copy.deepcopy(value)
        expected = python_scrub(value)
        got = _c().scrub_encoded(value, STRUCTURAL_FIELDS, gate, MIN_SCANNED, redaction.scrub)
        assert exact(got, expected), value
        assert exact(value, before), value
        same_objects(value, expected, got)
        assert aliasing(got) == aliasing(expected), value


@needs_c
def test_scrub_encoded_keeps_what_scrub_returns_whatever_it_is() -> None:
    """Whatever ``scrub`` answers (even not a str) lands in the copy, as ``new is not item``
    does in Python; texts without an anchor never reach it."""
    secret = "Bearer abcdefghij"
    value = {"a": secret, "b": [secret, "plain words"], "c": 1}
    gate = build_gate(Redaction(), None)
    for answer in (None, 7, object(), "", secret + " "):
        asked: list[str] = []

        def scrub(text: str, answer: Any = answer, asked: list[str] = asked) -> Any:
            asked.append(text)
            return answer

        got = _c().scrub_encoded(value, STRUCTURAL_FIELDS, gate, MIN_SCANNED, scrub)
        assert exact(got, {"a": answer, "b": [answer, "plain words"], "c": 1})
        assert got["a"] is answer and got["b"][0] is answer and asked == [secret, secret]
    same = _c().scrub_encoded(value, STRUCTURAL_FIELDS, gate, MIN_SCANNED, lambda text: text)
    assert same is value


# -- 4. errors -----------------------------------------------------------------------------

@needs_c
def test_callback_exceptions_propagate_unchanged() -> None:
    boom = LookupError("boom")

    def raises(*_args: Any) -> Any:
        raise boom

    for walk in (py_shape, c_shape):
        with pytest.raises(LookupError) as caught:
            walk({"k": 1}, SMALL, raises, {}, set(), None)
        assert caught.value is boom
        with pytest.raises(LookupError) as caught:
            walk(["Bearer abcdefgh"], SMALL, bool, {}, set(), raises)
        assert caught.value is boom
        with pytest.raises(LookupError) as caught:
            walk("Bearer abcdefgh", SMALL, bool, {}, set(), raises)
        assert caught.value is boom
    gate = _c().AnchorGate(("Bearer",), (), raises)
    calls: tuple[Callable[[], Any], ...] = (
                 lambda: gate("Bearer abcdefgh"),
                 lambda: c_shape(["Bearer abcdefgh"], SMALL, bool, {}, set(), gate),
                 lambda: c_shape(Obj({"a": 1}), SMALL, bool, {}, set(), None, raises))
    for call in calls:
        with pytest.raises(LookupError) as caught:
            call()
        assert caught.value is boom

    def not_iterable(*_args: Any) -> Any:
        return 5

    with pytest.raises(TypeError):
        c_shape(Obj({"a": 1}), SMALL, bool, {}, set(), None, not_iterable)
    bare = build_gate(Redaction(), None)
    for value in ("Bearer abcdefghij", {"a": "Bearer abcdefghij"}, ["Bearer abcdefghij"],
                  [{"a": [1, "Bearer abcdefghij"]}]):
        with pytest.raises(LookupError) as caught:
            _c().scrub_encoded(value, STRUCTURAL_FIELDS, bare, MIN_SCANNED, raises)
        assert caught.value is boom


@needs_c
def test_a_falsy_answer_that_cannot_say_so_raises() -> None:
    """A verdict whose truth cannot be told is an error in both, not a guess."""

    class Undecided:
        def __bool__(self) -> bool:
            raise ArithmeticError("undecided")

    for walk in (py_shape, c_shape):
        with pytest.raises(ArithmeticError):
            walk({"k": 1}, SMALL, lambda k: Undecided(), {}, set(), None)  # type: ignore
        with pytest.raises(ArithmeticError):
            walk(["Bearer abcdefgh"], SMALL, bool, {}, set(),
                 lambda t: Undecided())  # type: ignore[arg-type,return-value]



def _refuses(function: Callable[..., Any], good: list[Any],
             wrongs: tuple[tuple[int, Any], ...], counts: tuple[int, ...]) -> None:
    """``function`` raises TypeError for each wrong argument in place, and each wrong count."""
    for index, wrong in wrongs:
        args = list(good)
        args[index] = wrong
        with pytest.raises(TypeError):
            function(*args)
    for count in counts:
        with pytest.raises(TypeError):
            function(*(good * 2)[:count])

@needs_c
def test_wrong_argument_types_raise_type_error() -> None:
    value = {"password": "Bearer abcdefghijkl", "x": Obj({"a": 1}), "y": [1]}
    good: list[Any] = [value, 20, 5, 3, bool, {}, set(), Redaction().holds_secret_text, CHILDREN,
                       MIN_SCANNED]
    shape_wrong: tuple[tuple[int, Any], ...] = (
        (1, "20"), (2, None), (3, 1.5), (4, None), (4, 5), (5, None), (5, []), (6, None),
        (6, {}), (6, []), (7, 5), (8, None), (9, "6"))
    _refuses(_c().shape, good, shape_wrong, (0, 3, 11))
    redaction = Redaction()
    gate = build_gate(redaction, None)
    scrub_args: list[Any] = [value, STRUCTURAL_FIELDS, gate, MIN_SCANNED, redaction.scrub]
    scrub_wrong: tuple[tuple[int, Any], ...] = (
        (1, None), (1, ["event_type"]), (2, None), (2, redaction.scrub), (3, "6"), (3, None),
        (4, None), (4, 5))
    _refuses(_c().scrub_encoded, scrub_args, scrub_wrong, (0, 4, 6))
    anchor_gate = _c().AnchorGate
    for gate_args in ((None, ()), (("a",), None), (["a"], ()), (("a",), (1,)), ((b"a",), ()),
                      (("a",), (), 5), ()):
        with pytest.raises(TypeError):
            anchor_gate(*gate_args)
    with pytest.raises(TypeError):
        anchor_gate(("a",), (), fallback=None)
    made = anchor_gate(("a",), ())
    with pytest.raises(TypeError):
        made()
    with pytest.raises(TypeError):
        made("a", "b")
    with pytest.raises(TypeError):
        made.may_hold()
    checked = build_gate(redaction, redaction.holds_secret_text)
    with pytest.raises(TypeError):
        redaction.holds_secret_text(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        checked(5)
    assert made.may_hold(5) is True  # not a str: only the fallback can tell


@needs_c
def test_stub_matches_the_module() -> None:
    """``_textscan.pyi`` is what mypy checks callers against: its arity must be the module's."""
    tree = ast.parse((ROOT / "pytest_replay/capture/_textscan.pyi").read_text())
    arity = {node.name: len(node.args.posonlyargs) + len(node.args.args)
             for node in tree.body if isinstance(node, ast.FunctionDef)}
    walked = {"k": [1, "Bearer abcdefgh", Obj({})]}
    shape_args: list[Any] = [walked, 20, 5, 3, bool, {}, set(), None, CHILDREN, MIN_SCANNED]
    redaction = Redaction()
    scrub_args: list[Any] = [walked, STRUCTURAL_FIELDS, build_gate(redaction, None), MIN_SCANNED,
                             redaction.scrub]
    _c().shape(*shape_args[:arity["shape"]])
    _c().scrub_encoded(*scrub_args[:arity["scrub_encoded"]])
    assert textscan.INTERFACE == _c().INTERFACE


@needs_c
def test_limits_past_64_bits_answer_as_python_does() -> None:
    """``Limits`` takes any int; the walk must not turn a big cap into an OverflowError.

    Python's own walk raises for ``max_items`` past ``sys.maxsize`` (``islice``), which
    the runtime takes as HUGE; C answers as for no cap at all, which is what it means.
    """
    value = {"a": [1, 2, "x"]}
    for limits in ((2**64, 5, 3), (20, 5, 2**64)):
        assert c_shape(value, limits, bool, {}, set(), None) == py_shape(
            value, limits, bool, {}, set(), None)
    assert c_shape(value, (20, 2**64, 3), bool, {}, set(), None) == py_shape(
        value, (20, sys.maxsize, 3), bool, {}, set(), None)


@needs_c
def test_no_references_leak() -> None:
    """Thousands of walks (answers and errors) leave every object's count as it was."""
    text = "Bearer abcdefghijkl" + "x"  # not interned
    key = "some_key" + "x"
    inner = [1, text, {"k": 2**70}]
    value = {key: inner, "o": Obj({"a": text})}
    redaction = Redaction()
    gate = build_gate(redaction, redaction.holds_secret_text)
    scrub = redaction.scrub
    untouched = {"a": ["plain words", 1]}

    def raises(*_args: Any) -> Any:
        raise LookupError("boom")  # a fresh one each time: a kept traceback would hold refs

    tracked = (text, key, inner, value, untouched, gate, scrub)
    counts = [sys.getrefcount(item) for item in tracked]
    for _ in range(500):
        c_shape(value, SMALL, lambda k: False, {}, set(), gate)
        with pytest.raises(LookupError):
            c_shape(value, SMALL, raises, {}, set(), None)
        with pytest.raises(LookupError):
            c_shape(value, SMALL, bool, {}, set(), raises)
        _c().scrub_encoded(value, STRUCTURAL_FIELDS, gate, MIN_SCANNED, scrub)
        _c().scrub_encoded(untouched, STRUCTURAL_FIELDS, gate, MIN_SCANNED, scrub)
        with pytest.raises(LookupError):
            _c().scrub_encoded(value, STRUCTURAL_FIELDS, gate, MIN_SCANNED, raises)
    gc.collect()
    assert [sys.getrefcount(item) for item in tracked] == counts
    fresh = _c().scrub_encoded({"a": [text]}, STRUCTURAL_FIELDS, gate, MIN_SCANNED, scrub)
    reference = python_scrub({"a": [text]})
    assert isinstance(fresh, dict) and isinstance(reference, dict)
    assert sys.getrefcount(fresh) == sys.getrefcount(reference)
    assert sys.getrefcount(fresh["a"]) == sys.getrefcount(reference["a"])


# -- callbacks that change what is being walked (in a child process) ---------------------

HOSTILE = r"""
import sys
from pytest_replay.capture import plain
from pytest_replay.capture.redact import MIN_SCANNED, STRUCTURAL_FIELDS, Redaction
from pytest_replay.capture.textscan import NATIVE, gate_for

children = plain.children
redaction = Redaction()
gate = gate_for(redaction, None)
SECRET = "Bearer abcdefghijkl"
SCENARIOS = []
PLANTED = []


def scenario(function):
    SCENARIOS.append(function)
    return function


def shape(value, is_secret=bool, secret_text=None, limits=(20, 5, 3), verdicts=None, safe=None):
    return NATIVE.shape(value, *limits, is_secret, {} if verdicts is None else verdicts,
                        set() if safe is None else safe, secret_text, children, MIN_SCANNED)


def scrub(value, callback):
    return NATIVE.scrub_encoded(value, STRUCTURAL_FIELDS, gate, MIN_SCANNED, callback)


@scenario
def clearing_dict_keys():
    node = {f"k{i}": [i] for i in range(5)}
    return shape({"n": node}, is_secret=lambda k: node.clear() or False)


@scenario
def growing_dict_keys():
    node = {f"k{i}": [i] for i in range(5)}
    def is_secret(key):
        for j in range(50):
            node[f"new{key}{j}"] = [j]
        return False
    return shape({"n": node}, is_secret=is_secret, limits=(20, 100, 3))


@scenario
def clearing_list_short():
    node = [SECRET, [1], [2], SECRET]
    return shape({"n": node}, secret_text=lambda t: node.clear() or True)


@scenario
def clearing_list_long():
    node = [SECRET, [1], [2], SECRET, [3], [4], [5]]
    return shape([node], secret_text=lambda t: node.clear() or True)


@scenario
def growing_list():
    node = [SECRET]
    def scan(text):
        node.extend([[1]] * 1000)
        return False
    return shape([node], secret_text=scan, limits=(20, 5000, 3))


@scenario
def clearing_dict_values():
    node = {"a": SECRET, "b": [1], "c": SECRET, "d": [2]}
    return shape([node], secret_text=lambda t: node.clear() or True)


@scenario
def replacing_dict_values():
    node = {"a": SECRET, "b": [object()], "c": SECRET, "d": [object()]}
    def scan(text):
        for key in list(node):
            node[key] = "other text " + str(len(text))
        return False
    return shape([node], secret_text=scan)


@scenario
def dropping_stacked_nodes():
    holder = [[[1, [2, [object()]]], {"a": [object()]}, SECRET]]
    def scan(text):
        holder[0].clear()  # the nested lists are left only on the walk's stack
        return True
    return shape(holder, secret_text=scan)


@scenario
def clearing_caches():
    verdicts, safe = {}, set()
    def is_secret(key):
        verdicts.clear()
        safe.clear()
        for j in range(100):
            safe.add(f"s{j}{key}")
        return False
    value = [{f"k{i}": i for i in range(5)} for _ in range(4)]
    return shape(value, is_secret=is_secret, verdicts=verdicts, safe=safe)


class Collides:
    # Hashes as ``target``; comparing empties the dict it is a key of, and reuses the memory.
    def __init__(self, target, node):
        self.target, self.node = target, node

    def __hash__(self):
        return hash(self.target)

    def __eq__(self, other):
        self.node.clear()
        PLANTED.append(["Bearer planted0123456789"])
        return False


@scenario
def colliding_tag_key():
    node = {}
    node[Collides("$type", node)] = [object()]
    node["a"] = [object()]
    return shape([node])


@scenario
def colliding_safe_key():
    node = {}
    node[Collides("name", node)] = [object()]
    asked = []
    result = shape([node], safe={"name"}, limits=(100, 50, 3),
                   secret_text=lambda text: asked.append(text) or False)
    assert "Bearer planted0123456789" not in asked, f"walked freed memory: {asked}"
    return result


@scenario
def colliding_structural_key_in_scrub():
    node = {}
    node[Collides("event_type", node)] = [SECRET + "xyz"]
    node["value"] = SECRET
    asked = []
    def callback(text):
        asked.append(text)
        return redaction.scrub(text)
    result = scrub([node], callback)
    assert "Bearer planted0123456789" not in asked, f"scrubbed freed memory: {asked}"
    return result


@scenario
def scrub_clearing_dict():
    node = {"a": SECRET, "b": [SECRET], "c": SECRET}
    return scrub([node], lambda t: node.clear() or "[gone]")


@scenario
def scrub_clearing_list():
    node = [SECRET, [SECRET], SECRET, {"a": SECRET}]
    return scrub({"n": node}, lambda t: node.clear() or "[gone]")


@scenario
def scrub_shrinking_list_after_copy():
    node = ["Bearer abcdefghijkl", "plain", "Bearer mnopqrstuvwx", "Bearer zzzzzzzzzzzz"]
    calls = []
    def callback(text):
        calls.append(text)
        if len(calls) == 2:
            del node[1:]
        return "[x]"
    return scrub([node], callback)


@scenario
def gate_fallback_dropping_texts():
    holder = ["Bearer " + "abcdefghijkl" * 3]
    g = gate_for(redaction, lambda t: holder.clear() or True)
    return shape([holder], secret_text=g)


@scenario
def deep_shape():
    deep = []
    node = deep
    for _ in range(200_000):
        inner = []
        node.append(inner)
        node = inner
    got = shape(deep, limits=(20, 5, 10**6))
    assert got == plain.shape(deep, 20, 5, 10**6, bool, {}, set(), None), got
    return got


@scenario
def deep_scrub():
    deep = [SECRET]
    for _ in range(200_000):
        deep = [deep]
    try:
        got = scrub(deep, redaction.scrub)
    except RecursionError:
        return "RecursionError"
    node = got
    while len(node) == 1 and type(node[0]) is list:
        node = node[0]
    assert node == ["Bearer [REDACTED]"], node
    return got


for function in SCENARIOS:
    name = function.__name__
    if name in sys.argv[1:]:  # crashed in an earlier run: the rest still get their turn
        continue
    print("start", name, flush=True)
    try:
        result = function()
    except AssertionError as exc:
        print("wrong", name, exc, flush=True)
    except Exception as exc:
        print("ok", name, "raised", type(exc).__name__, flush=True)
    else:
        print("ok", name, "returned", type(result).__name__, flush=True)
print("all", len(SCENARIOS), flush=True)
"""


@needs_c
def test_callbacks_that_change_the_walked_value_never_crash() -> None:
    """Results may be anything, or an exception; the interpreter must survive, memory intact."""
    env = {**os.environ, "PYTHONMALLOC": "debug", PURE_PYTHON_ENV: "0"}
    crashed: dict[str, str] = {}
    wrong: dict[str, None] = {}
    for _attempt in range(30):
        done = subprocess.run([sys.executable, "-X", "faulthandler", "-c", HOSTILE, *crashed],
                              capture_output=True, text=True, env=env, timeout=120, cwd=ROOT,
                              check=False)
        lines = done.stdout.splitlines()
        wrong.update(dict.fromkeys(line for line in lines if line.startswith("wrong ")))
        started = [line.split()[1] for line in lines if line.startswith("start ")]
        finished = {line.split()[1] for line in lines if line.startswith(("ok ", "wrong "))}
        unfinished = [name for name in started if name not in finished]
        if not unfinished:
            assert done.returncode == 0, done.stderr
            assert lines[-1].startswith("all "), done.stdout
            break
        crashed[unfinished[0]] = f"exit {done.returncode}: {done.stderr.strip()[-600:]}"
    problems = [f"crashed in {name} ({why})" for name, why in crashed.items()] + list(wrong)
    assert not problems, "\n".join(problems)


# -- 5. the switch -------------------------------------------------------------------------

def test_pure_python_switch_leaves_the_c_walker_out() -> None:
    script = textwrap.dedent("""
        from pytest_replay.capture import textscan
        from pytest_replay.capture.redact import Redaction
        print(textscan.NATIVE is None)
        print(getattr(Redaction(), "text_gate", None) is None)
        print(Redaction().scrub_encoded({"a": "Bearer abcdefghijkl"}))
        print(textscan.WHY_PYTHON)
    """)
    outputs = {}
    for setting in ("1", "0"):
        env = {**os.environ, PURE_PYTHON_ENV: setting}
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              env=env, timeout=60, cwd=ROOT, check=True)
        outputs[setting] = done.stdout.splitlines()
    absent, no_gate, scrubbed, why = outputs["1"]
    assert (absent, no_gate) == ("True", "True")
    assert PURE_PYTHON_ENV in why
    assert scrubbed == "{'a': 'Bearer [REDACTED]'}"
    if not pure_python_requested():  # else this process has no C to compare the child with
        assert outputs["0"][0] == str(NATIVE is None)
    assert outputs["0"][2] == scrubbed
