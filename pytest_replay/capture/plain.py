"""A quick look at a value before it is encoded: is it already JSON, and is it safe to walk?

Most captured values are scalars, or small lists and dicts of scalars (a
cart, a config, a response). For those the encoder in
:mod:`pytest_replay.format.values` returns the value unchanged after
visiting every element in Python; :func:`shape` proves the same with fewer
steps (``PLAIN``), so capture hands the value straight to ``orjson``. It
says not plain whenever the encoder would change anything (a string past
the cap or not ASCII, an int past 64 bits, nan or infinity, a secret key, a
``$type`` key, too many items, too deep, a tuple, any other type). A test
holds the two to the same output.

It also counts what the encoder would visit, within the encoder's own caps
(items per container, depth). The caps bound each container, not the
whole: a list holding the same 50-item list 50 times, six levels deep, is a
few kilobytes of memory and 15 billion paths. Past :data:`BUDGET` visits the
answer is ``HUGE`` and capture encodes with much smaller caps, so no value
can make a request wait on its own capture.
"""

from __future__ import annotations

import enum
import types
from collections.abc import Callable, Iterable
from itertools import islice
from typing import Any, Final

from pytest_replay.capture.redact import MIN_SCANNED
from pytest_replay.format.values import FUNCTION_STAND_INS, TAG

PLAIN: Final = 0
"""Encodes to itself: give it to orjson as it is."""
BOUNDED: Final = 1
"""Needs the encoder, which will finish quickly."""
HUGE: Final = 2
"""Needs the encoder with smaller caps."""

BUDGET: Final = 20_000
"""Most elements visited, in total, before a value counts as ``HUGE``."""
SET_FACTOR: Final = 10
"""The encoder sorts up to ten times ``max_items`` members of a set."""
SAFE_KEYS: Final = 8192
"""Most keys remembered as plain (names in code: more means churn)."""

_INT64: Final = 2**63
_LEAVES: Final = (types.FunctionType, types.BuiltinFunctionType, types.MethodType, type,
                  types.ModuleType, BaseException, enum.Enum, str, bytes, bytearray, int, float,
                  complex, memoryview)


def shape(value: Any, max_str: int, max_items: int, max_depth: int,
          is_secret: Callable[[str], bool], verdicts: dict[str, bool],
          safe_keys: set[str], secret_text: Callable[[str], bool] | None = None) -> int:
    """``PLAIN``, ``BOUNDED`` or ``HUGE`` for ``value`` at depth 0 (see the module doc).

    ``verdicts`` caches ``is_secret`` by key: a dict lookup costs less than the call.
    ``safe_keys`` holds keys already seen to be plain (ASCII, not secret, not
    ``$type``): a dict whose keys are all in it is cleared with one subset test.
    Only types are asked questions and attributes are read with
    ``object.__getattribute__``, as the encoder does: no property, no
    ``__getattr__`` and no iteration of anything but builtin containers.
    ``secret_text`` (when values are scanned) makes a string holding
    secret-shaped text not plain, so the encoder and the scrubber see it.
    """
    budget = BUDGET
    plain = True
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        kind = type(node)
        if kind is str:
            if len(node) > max_str or not node.isascii() or (
                    secret_text is not None and len(node) >= MIN_SCANNED
                    and secret_text(node)):
                plain = False
            continue
        if kind is int:
            if not -_INT64 <= node < _INT64:
                plain = False
            continue
        if kind is float:
            if node - node != 0.0:  # nan and the infinities get tags
                plain = False
            continue
        if kind is bool or node is None:
            continue
        if depth >= max_depth:
            plain = False
            continue
        items: Iterable[Any]
        if kind is list:
            if len(node) > max_items:
                plain = False
                items = node[:max_items]
            else:
                items = node
        elif kind is dict:
            if len(node) > max_items or TAG in node:
                plain = False
            items = islice(node.values(), max_items)
            if not node.keys() <= safe_keys:  # one C-level question for the usual case
                for key in islice(node, max_items):
                    if type(key) is not str or not key.isascii():
                        plain = False
                        stack.append((key, depth + 1))
                        continue
                    secret = verdicts.get(key)
                    if secret is None:
                        secret = is_secret(key)
                    if secret or key == TAG:
                        plain = False
                    elif len(safe_keys) < SAFE_KEYS:
                        safe_keys.add(key)
        else:
            plain = False
            items = children(node, kind, max_items)
        inner = depth + 1
        for item in items:
            budget -= 1
            # Scalars are checked inline: a stack entry per element would cost more.
            kind = type(item)
            if kind is str:
                if len(item) > max_str or not item.isascii() or (
                        secret_text is not None and len(item) >= MIN_SCANNED
                        and secret_text(item)):
                    plain = False
            elif kind is float:
                if item - item != 0.0:
                    plain = False
            elif kind is int:
                if not -_INT64 <= item < _INT64:
                    plain = False
            elif not (kind is bool or item is None):
                stack.append((item, inner))
        if budget < 0:
            return HUGE
    return PLAIN if plain else BOUNDED


def children(node: Any, kind: type, max_items: int) -> Iterable[Any]:
    """What the encoder would visit inside a value that is not a list or a dict."""
    if issubclass(kind, (tuple, list)):
        return tuple.__getitem__(node, slice(max_items)) if issubclass(kind, tuple) else (
            list.__getitem__(node, slice(max_items)))
    if issubclass(kind, (set, frozenset)):
        return islice(node, max_items * SET_FACTOR)
    if issubclass(kind, dict):
        return islice(dict.values(node), max_items)
    if issubclass(kind, _LEAVES) or kind in FUNCTION_STAND_INS:
        return ()
    try:
        attrs = object.__getattribute__(node, "__dict__")
    except Exception:  # no __dict__ (slots, C types): the encoder writes a repr at most
        return ()
    return islice(attrs.values(), max_items) if type(attrs) is dict else ()
