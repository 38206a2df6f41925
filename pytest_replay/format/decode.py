"""Decode trace-format JSON back into Python values, only into allowed types.

The standard library's inert value types (datetime, Decimal, bytes, tuple,
set, UUID, ...) always decode. Anything that names a class (dataclasses,
objects, enums) decodes only when the caller's resolver hands back a class it
allowed; otherwise the value becomes an :class:`Opaque` placeholder, so a
trace can never make replay import or build something by its own word.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import decimal
import uuid
from collections.abc import Callable
from typing import Any, Final, final

from pytest_replay.format.values import REDACTED_TEXT, TAG

ClassResolver = Callable[[str], "type | None"]
_MAX_DEPTH: Final = 200


class DecodeError(ValueError):
    """A tagged value is malformed; ``path`` says where inside the value."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


@final
class Opaque:
    """A recorded value that replay may not rebuild (its type is not allowed)."""

    __slots__ = ("reason", "tagged")

    def __init__(self, tagged: dict[str, Any], reason: str) -> None:
        self.tagged = tagged
        self.reason = reason

    @property
    def class_name(self) -> str:
        """The recorded ``module:qualname`` (or the tag when no class was recorded)."""
        return str(self.tagged.get("class", self.tagged.get(TAG, "?")))

    def __repr__(self) -> str:
        return f"<recorded {self.class_name}: {self.reason}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Opaque) and other.tagged == self.tagged

    def __hash__(self) -> int:
        return hash(self.class_name)


def _no_classes(_name: str) -> type | None:
    return None


def decode(value: Any, resolve_class: ClassResolver = _no_classes) -> Any:
    """Return the Python value for trace-format JSON ``value``."""
    return _Decoder(resolve_class).value(value, "$", 0)


def find_opaque(value: Any) -> Opaque | None:
    """The first :class:`Opaque` inside a decoded value, if any (to refuse a replay)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Opaque):
            return item
        if isinstance(item, dict):
            stack.extend(item.values())
            stack.extend(item.keys())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
        elif hasattr(item, "__dict__") and not isinstance(item, type):
            attrs = getattr(item, "__dict__", None)
            if isinstance(attrs, dict):
                stack.extend(attrs.values())
    return None


@final
class _Decoder:
    __slots__ = ("resolve_class",)

    def __init__(self, resolve_class: ClassResolver) -> None:
        self.resolve_class = resolve_class

    def value(self, value: Any, path: str, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise DecodeError("nested too deeply", path)
        if isinstance(value, list):
            return [self.value(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
        if isinstance(value, dict):
            tag = value.get(TAG)
            if tag is None:
                return {k: self.value(v, f"{path}.{k}", depth + 1) for k, v in value.items()}
            if not isinstance(tag, str):
                raise DecodeError(f"'{TAG}' must be a string, got {type(tag).__name__}", path)
            return self.tagged(tag, value, path, depth)
        return value

    def items(self, tagged: dict[str, Any], path: str, depth: int) -> list[Any]:
        items = tagged.get("items")
        if not isinstance(items, list):
            raise DecodeError("'items' must be a list", path)
        return [self.value(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(items)]

    def tagged(self, tag: str, tagged: dict[str, Any], path: str, depth: int) -> Any:
        try:
            simple = _SIMPLE.get(tag)
            if simple is not None:
                return simple(tagged)
        except (KeyError, TypeError, ValueError, ArithmeticError, binascii.Error) as exc:
            raise DecodeError(f"bad {tag!r} value: {exc}", path) from exc
        if tag == "list":
            return self.items(tagged, path, depth)
        if tag == "tuple":
            return tuple(self.items(tagged, path, depth))
        if tag in ("set", "frozenset"):
            members = self.items(tagged, path, depth)
            try:
                return set(members) if tag == "set" else frozenset(members)
            except TypeError as exc:
                raise DecodeError(f"unhashable member in {tag}: {exc}", path) from exc
        if tag == "dict":
            return self.pairs(tagged, path, depth)
        if tag == "redacted":
            return REDACTED_TEXT
        if tag == "dataclass":
            return self.instance(tagged, "fields", path, depth)
        if tag == "object":
            return self.instance(tagged, "attrs", path, depth)
        if tag == "enum":
            return self.enum_member(tagged, path)
        return Opaque(tagged, f"tag {tag!r} cannot be rebuilt")

    def pairs(self, tagged: dict[str, Any], path: str, depth: int) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for index, pair in enumerate(self.items_raw(tagged, path)):
            if not (isinstance(pair, list) and len(pair) == 2):
                raise DecodeError("dict items must be [key, value] pairs", f"{path}[{index}]")
            key = self.value(pair[0], f"{path}[{index}].key", depth + 1)
            try:
                out[key] = self.value(pair[1], f"{path}[{index}].value", depth + 1)
            except TypeError as exc:
                raise DecodeError(f"unhashable key: {exc}", f"{path}[{index}]") from exc
        return out

    @staticmethod
    def items_raw(tagged: dict[str, Any], path: str) -> list[Any]:
        items = tagged.get("items")
        if not isinstance(items, list):
            raise DecodeError("'items' must be a list", path)
        return items

    def resolve(self, tagged: dict[str, Any], path: str) -> type | None:
        name = tagged.get("class")
        if not isinstance(name, str):
            raise DecodeError("'class' must be a string", path)
        return self.resolve_class(name)

    def instance(self, tagged: dict[str, Any], key: str, path: str, depth: int) -> Any:
        cls = self.resolve(tagged, path)
        if cls is None:
            return Opaque(tagged, "its class is not in replay_targets")
        if tagged.get("truncated"):
            return Opaque(tagged, "it was truncated at capture")
        raw = tagged.get(key, {})
        if not isinstance(raw, dict):
            raise DecodeError(f"'{key}' must be an object", path)
        attrs = {str(k): self.value(v, f"{path}.{k}", depth + 1) for k, v in raw.items()}
        try:
            obj = cls.__new__(cls)
            for name, item in attrs.items():
                object.__setattr__(obj, name, item)
        except Exception as exc:
            return Opaque(tagged, f"could not rebuild: {type(exc).__name__}: {exc}")
        return obj

    def enum_member(self, tagged: dict[str, Any], path: str) -> Any:
        cls = self.resolve(tagged, path)
        name = tagged.get("name")
        if cls is None or not isinstance(name, str):
            return Opaque(tagged, "its class is not in replay_targets")
        members = getattr(cls, "__members__", {})
        if name not in members:
            raise DecodeError(f"{name!r} is not a member of {tagged.get('class')}", path)
        return members[name]


def _int(tagged: dict[str, Any]) -> int:
    text = tagged["value"]
    if not isinstance(text, str) or len(text) > 5000:
        raise ValueError("'value' must be a decimal string of at most 5000 digits")
    return int(text)


def _float(tagged: dict[str, Any]) -> float:
    text = tagged["value"]
    if text not in ("nan", "inf", "-inf"):
        raise ValueError("'value' must be nan, inf or -inf")
    return float(text)


def _truncated_str(tagged: dict[str, Any]) -> str:
    head = tagged["head"]
    if not isinstance(head, str):
        raise TypeError("'head' must be a string")
    return head


def _bytes(tagged: dict[str, Any]) -> bytes:
    return base64.b64decode(str(tagged["b64"]), validate=True)


def _timedelta(tagged: dict[str, Any]) -> _dt.timedelta:
    return _dt.timedelta(
        days=int(tagged.get("days", 0)),
        seconds=int(tagged.get("seconds", 0)),
        microseconds=int(tagged.get("microseconds", 0)),
    )


_SIMPLE: Final[dict[str, Callable[[dict[str, Any]], Any]]] = {
    "int": _int,
    "float": _float,
    "str": _truncated_str,
    "datetime": lambda t: _dt.datetime.fromisoformat(str(t["value"])),
    "date": lambda t: _dt.date.fromisoformat(str(t["value"])),
    "time": lambda t: _dt.time.fromisoformat(str(t["value"])),
    "timedelta": _timedelta,
    "decimal": lambda t: decimal.Decimal(str(t["value"])),
    "uuid": lambda t: uuid.UUID(str(t["value"])),
    "bytes": _bytes,
    "complex": lambda t: complex(float(t["real"]), float(t["imag"])),
}
