"""Encode Python values into trace-format JSON, safely and within size caps.

Capture calls :func:`encode` on the request path, so it never raises, never
consumes iterators, never triggers properties or ``__getattr__`` on user
objects, and bounds the size of what it returns. What JSON cannot say is
written as a tagged object ``{"$type": ..., ...}`` (see docs/trace-format.md).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import decimal
import enum
import re
import types
import uuid
from collections.abc import Callable
from typing import Any, Final, final

TAG: Final = "$type"
REDACTED_TEXT: Final = "[REDACTED]"
_INT64_MAX: Final = 2**63 - 1
_INT64_MIN: Final = -(2**63)
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")

JSON = Any
KeyPredicate = Callable[[str], bool]


@final
class Limits:
    """Caps that keep one captured value small, whatever the application passes."""

    __slots__ = ("max_depth", "max_items", "max_repr", "max_str")

    def __init__(
        self,
        max_str: int = 2048,
        max_items: int = 100,
        max_depth: int = 8,
        max_repr: int = 200,
    ) -> None:
        self.max_str = max_str
        self.max_items = max_items
        self.max_depth = max_depth
        self.max_repr = max_repr


DEFAULT_LIMITS: Final = Limits()


def _never_secret(_key: str) -> bool:
    return False


def class_path(cls: type) -> str:
    """``module:qualname`` of a class: the form tagged values use to name types."""
    module = getattr(cls, "__module__", None) or "?"
    qualname = getattr(cls, "__qualname__", None) or getattr(cls, "__name__", "?")
    return f"{module}:{qualname}"


def redacted(rule: str = "key") -> dict[str, str]:
    """The placeholder written instead of a secret value."""
    return {TAG: "redacted", "rule": rule}


def encode(
    value: Any,
    limits: Limits = DEFAULT_LIMITS,
    is_secret_key: KeyPredicate = _never_secret,
) -> JSON:
    """Return a JSON-ready form of ``value``; never raises."""
    try:
        return _Encoder(limits, is_secret_key).value(value, 0)
    except Exception as exc:  # a hostile value must not break the host
        return {TAG: "unencodable", "class": _safe_class(value), "reason": type(exc).__name__}


def encode_mapping(
    mapping: dict[str, Any],
    limits: Limits = DEFAULT_LIMITS,
    is_secret_key: KeyPredicate = _never_secret,
) -> dict[str, JSON]:
    """Encode a name -> value mapping (args, locals, context), redacting secret names."""
    out: dict[str, JSON] = {}
    encoder = _Encoder(limits, is_secret_key)
    for name, item in mapping.items():
        if is_secret_key(name):
            out[name] = redacted()
            continue
        try:
            out[name] = encoder.value(item, 1)
        except Exception as exc:
            out[name] = {TAG: "unencodable", "class": _safe_class(item), "reason": type(exc).__name__}
    return out


def _safe_class(value: Any) -> str:
    try:
        return class_path(type(value))
    except Exception:
        return "?"


@final
class _Encoder:
    __slots__ = ("is_secret_key", "limits", "seen")

    def __init__(self, limits: Limits, is_secret_key: KeyPredicate) -> None:
        self.limits = limits
        self.is_secret_key = is_secret_key
        self.seen: set[int] = set()

    def value(self, value: Any, depth: int) -> JSON:
        kind = type(value)
        if kind is str:
            return self._string(value)
        if kind is bool or value is None:
            return value
        if kind is int:
            if _INT64_MIN <= value <= _INT64_MAX:
                return value
            return {TAG: "int", "value": str(value)}
        if kind is float:
            if value != value or value in (float("inf"), float("-inf")):
                return {TAG: "float", "value": repr(value)}
            return value
        if depth >= self.limits.max_depth:
            return {TAG: "max_depth", "class": class_path(kind)}
        if kind is dict or kind is list or kind is tuple or kind is set or kind is frozenset:
            return self._container(value, kind, depth)
        return self._other(value, kind, depth)

    def _string(self, value: str) -> JSON:
        if len(value) <= self.limits.max_str:
            return value
        return {
            TAG: "str",
            "head": value[: self.limits.max_str],
            "len": len(value),
            "truncated": True,
        }

    def _container(self, value: Any, kind: type, depth: int) -> JSON:
        marker = id(value)
        if marker in self.seen:
            return {TAG: "cycle", "class": class_path(kind)}
        self.seen.add(marker)
        try:
            if kind is dict:
                return self._dict(value, depth)
            return self._sequence(value, kind, depth)
        finally:
            self.seen.discard(marker)

    def _dict(self, value: dict[Any, Any], depth: int) -> JSON:
        limit = self.limits.max_items
        plain = all(type(key) is str for key in value) and TAG not in value
        total = len(value)
        if plain:
            out: dict[str, JSON] = {}
            for index, (key, item) in enumerate(value.items()):
                if index >= limit:
                    return {TAG: "dict", "items": [[k, v] for k, v in out.items()],
                            "len": total, "truncated": True}
                out[key] = redacted() if self.is_secret_key(key) else self.value(item, depth + 1)
            return out
        pairs: list[JSON] = []
        for index, (key, item) in enumerate(value.items()):
            if index >= limit:
                break
            secret = type(key) is str and self.is_secret_key(key)
            encoded_item = redacted() if secret else self.value(item, depth + 1)
            pairs.append([self.value(key, depth + 1), encoded_item])
        tagged: dict[str, JSON] = {TAG: "dict", "items": pairs}
        if total > limit:
            tagged["len"] = total
            tagged["truncated"] = True
        return tagged

    def _sequence(self, value: Any, kind: type, depth: int) -> JSON:
        limit = self.limits.max_items
        total = len(value)
        if kind is set or kind is frozenset:
            items = [self.value(item, depth + 1) for item in _first(value, limit)]
            tagged: dict[str, JSON] = {TAG: kind.__name__, "items": items}
        else:
            items = [self.value(item, depth + 1) for item in value[:limit]]
            if kind is list and total <= limit:
                return items
            tagged = {TAG: kind.__name__, "items": items}
        if total > limit:
            tagged["len"] = total
            tagged["truncated"] = True
        return tagged

    def _other(self, value: Any, kind: type, depth: int) -> JSON:
        simple = _encode_simple(value, kind)
        if simple is not None:
            return simple
        if isinstance(value, enum.Enum):
            return {TAG: "enum", "class": class_path(kind), "name": value.name}
        if isinstance(value, BaseException):
            return {
                TAG: "exception",
                "class": class_path(kind),
                "message": self._string(_safe_str(value, self.limits.max_repr)),
            }
        if isinstance(value, (dict, list, tuple, set, frozenset)):
            return self._subclass(value, kind, depth)
        if isinstance(value, (types.FunctionType, types.BuiltinFunctionType, types.MethodType,
                              type, types.ModuleType)):
            return {TAG: "ref", "class": class_path(kind), "name": _ref_name(value)}
        marker = id(value)
        if marker in self.seen:
            return {TAG: "cycle", "class": class_path(kind)}
        self.seen.add(marker)
        try:
            if dataclasses.is_dataclass(value):
                return {TAG: "dataclass", "class": class_path(kind),
                        "fields": self._fields(value, depth)}
            return self._object(value, kind, depth)
        finally:
            self.seen.discard(marker)

    def _subclass(self, value: Any, kind: type, depth: int) -> JSON:
        base = next(b for b in (dict, list, tuple, set, frozenset) if isinstance(value, b))
        inner = self._container(base(value), base, depth)
        return {TAG: "subclass", "class": class_path(kind), "value": inner}

    def _fields(self, value: Any, depth: int) -> dict[str, JSON]:
        out: dict[str, JSON] = {}
        for field in dataclasses.fields(value):
            name = field.name
            if self.is_secret_key(name):
                out[name] = redacted()
                continue
            try:
                raw = object.__getattribute__(value, name)
            except Exception:
                continue
            out[name] = self.value(raw, depth + 1)
        return out

    def _object(self, value: Any, kind: type, depth: int) -> JSON:
        tagged: dict[str, JSON] = {TAG: "object", "class": class_path(kind)}
        try:
            attrs = object.__getattribute__(value, "__dict__")
        except Exception:
            attrs = None
        if type(attrs) is dict:
            encoded: dict[str, JSON] = {}
            for index, (name, item) in enumerate(attrs.items()):
                if index >= self.limits.max_items:
                    tagged["truncated"] = True
                    break
                if type(name) is not str:
                    continue
                encoded[name] = redacted() if self.is_secret_key(name) else self.value(
                    item, depth + 1
                )
            tagged["attrs"] = encoded
        if kind.__repr__ is not object.__repr__:
            text = _safe_repr(value, self.limits.max_repr)
            if text is None:
                tagged["repr_error"] = True
            else:
                tagged["repr"] = _ADDRESS.sub("", text)
        return tagged


def _encode_simple(value: Any, kind: type) -> JSON | None:
    """Tagged forms of the standard library's value types, or None."""
    if kind is _dt.datetime:
        return {TAG: "datetime", "value": value.isoformat()}
    if kind is _dt.date:
        return {TAG: "date", "value": value.isoformat()}
    if kind is _dt.time:
        return {TAG: "time", "value": value.isoformat()}
    if kind is _dt.timedelta:
        return {TAG: "timedelta", "days": value.days, "seconds": value.seconds,
                "microseconds": value.microseconds}
    if kind is decimal.Decimal:
        return {TAG: "decimal", "value": str(value)}
    if kind is uuid.UUID:
        return {TAG: "uuid", "value": str(value)}
    if kind is bytes or kind is bytearray:
        raw = bytes(value[:4096])
        tagged: dict[str, JSON] = {TAG: "bytes", "b64": base64.b64encode(raw).decode("ascii")}
        if len(value) > 4096:
            tagged["len"] = len(value)
            tagged["truncated"] = True
        return tagged
    if kind is complex:
        return {TAG: "complex", "real": value.real, "imag": value.imag}
    return None


def _first(values: Any, limit: int) -> list[Any]:
    out = []
    for index, item in enumerate(values):
        if index >= limit:
            break
        out.append(item)
    try:
        out.sort(key=_sort_key)
    except Exception:  # unorderable members keep iteration order
        return out
    return out


def _sort_key(item: Any) -> tuple[str, str]:
    return (type(item).__name__, repr(item))


def _ref_name(value: Any) -> str:
    module = getattr(value, "__module__", None) or ""
    qualname = getattr(value, "__qualname__", None) or getattr(value, "__name__", "?")
    return f"{module}:{qualname}" if module else str(qualname)


def _safe_repr(value: Any, limit: int) -> str | None:
    try:
        text = repr(value)
    except Exception:
        return None
    if type(text) is not str:
        return None
    return text if len(text) <= limit else text[:limit] + "..."


def _safe_str(value: Any, limit: int) -> str:
    try:
        text = str(value)
    except Exception:
        return "<unprintable>"
    return text if len(text) <= limit else text[:limit] + "..."
