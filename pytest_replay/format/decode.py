"""Decode trace-format JSON back into Python values, only into allowed types.

The standard library's inert value types (datetime, Decimal, bytes, tuple,
set, UUID, ...) always decode. Anything that names a class (dataclasses,
objects, enums, subclasses of built-in types) decodes only when the caller's
resolver hands back a class it allowed; otherwise the value becomes an
:class:`Opaque` placeholder, so a trace can never make replay import or build
something by its own word. A value cut short at capture, or one capture could
only describe, is Opaque too: rebuilding it would replay something that was
never passed. See docs/trace-format.md for every tag.
"""

from __future__ import annotations

import base64
import binascii
import collections
import datetime as _dt
import decimal
import enum
import uuid
from collections.abc import Callable
from typing import Any, Final, cast, final

from pytest_replay.format.values import REDACTED_TEXT, TAG

ClassResolver = Callable[[str], "type | None"]
MAX_DEPTH: Final = 200
"""Deeper nesting is refused (capture writes at most ``Limits.max_depth``)."""

_MAX_INT_DIGITS: Final = 4300
_SCALARS: Final = frozenset({str, int, float, bool, type(None)})
_INERT_SUBCLASSES: Final[dict[str, type]] = {
    "collections:OrderedDict": collections.OrderedDict,
    "collections:Counter": collections.Counter,
}
"""Standard-library subclasses that rebuild without a resolver: plain data, no code."""


class DecodeError(ValueError):
    """A tagged value is malformed; ``path`` says where inside the value (``$.a[2]``)."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.message = message
        self.path = path


class _Malformed(Exception):
    """Raised deep inside; each container on the way out adds its step to the path."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.steps: list[str] = []


@final
class Opaque:
    """A recorded value that replay may not rebuild (its type is not allowed, or it is partial)."""

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
    """Return the Python value for trace-format JSON ``value``.

    Raises :class:`DecodeError` (and nothing else) when a tagged value is
    malformed. ``resolve_class`` gets a recorded ``module:qualname`` and
    returns the class to rebuild, or None to leave the value :class:`Opaque`.
    """
    try:
        return _Decoder(resolve_class).value(value, 0)
    except _Malformed as exc:
        raise DecodeError(exc.message, "$" + "".join(reversed(exc.steps))) from None
    except RecursionError:
        raise DecodeError("nested too deeply", "$") from None


def find_opaque(value: Any) -> Opaque | None:
    """The first :class:`Opaque` inside a decoded value, if any (to refuse a replay)."""
    stack = [value]
    seen: set[int] = set()
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind in _SCALARS:
            continue
        if kind is Opaque:
            return item  # type: ignore[no-any-return]
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, dict):
            stack.extend(item.values())
            stack.extend(item.keys())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
        elif not isinstance(item, type):
            stack.extend(_attributes(item))
    return None


def _attributes(item: Any) -> list[Any]:
    """Instance attributes (``__dict__`` and slots), read without running user code."""
    out: list[Any] = []
    try:
        attrs = object.__getattribute__(item, "__dict__")
    except AttributeError:
        attrs = None
    if type(attrs) is dict:
        out.extend(attrs.values())
    for klass in type(item).__mro__:
        slots = klass.__dict__.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            try:
                out.append(object.__getattribute__(item, name))
            except (AttributeError, TypeError):
                continue  # an unset slot, or __dict__/__weakref__
    return out


@final
class _Decoder:
    __slots__ = ("resolve_class",)

    def __init__(self, resolve_class: ClassResolver) -> None:
        self.resolve_class = resolve_class

    def value(self, value: Any, depth: int) -> Any:
        kind = type(value)
        if kind in _SCALARS:
            return value
        if depth > MAX_DEPTH:
            raise _Malformed(f"nested more than {MAX_DEPTH} deep")
        if kind is list:
            return self.sequence(value, depth)
        if kind is dict:
            if TAG in value:
                return self.tagged(value, depth)
            out: dict[str, Any] = {}
            for key, item in value.items():
                try:
                    out[key] = item if type(item) in _SCALARS else self.value(item, depth + 1)
                except _Malformed as exc:
                    exc.steps.append(f".{key}")
                    raise
            return out
        return value  # not JSON; handed back as it is

    def sequence(self, items: list[Any], depth: int) -> list[Any]:
        out: list[Any] = []
        for index, item in enumerate(items):
            try:
                out.append(item if type(item) in _SCALARS else self.value(item, depth + 1))
            except _Malformed as exc:
                exc.steps.append(f"[{index}]")
                raise
        return out

    def tagged(self, tagged: dict[str, Any], depth: int) -> Any:
        tag = tagged[TAG]
        if type(tag) is not str:
            raise _Malformed(f"'{TAG}' must be a string, got {type(tag).__name__}")
        if tagged.get("truncated") is True:
            return Opaque(tagged, _truncated_reason(tagged))
        simple = _SIMPLE.get(tag)
        if simple is not None:
            try:
                return simple(tagged)
            except (KeyError, TypeError, ValueError, ArithmeticError, binascii.Error) as exc:
                raise _Malformed(f"bad {tag!r} value: {_reason(exc)}") from None
        if tag == "list":
            return self.items(tagged, depth)
        if tag == "tuple":
            return tuple(self.items(tagged, depth))
        if tag in ("set", "frozenset"):
            members = self.items(tagged, depth)
            try:
                return set(members) if tag == "set" else frozenset(members)
            except TypeError as exc:
                raise _Malformed(f"unhashable member in {tag}: {exc}") from None
        if tag == "dict":
            return self.pairs(tagged, depth)
        if tag == "redacted":
            return REDACTED_TEXT
        if tag == "dataclass":
            return self.instance(tagged, "fields", depth)
        if tag == "object":
            return self.instance(tagged, "attrs", depth)
        if tag == "enum":
            return self.enum_member(tagged)
        if tag == "subclass":
            return self.subclass(tagged, depth)
        if tag in _DESCRIBED_ONLY:
            if tagged.get("budget") is True:
                return Opaque(tagged, "capture's max_nodes budget ran out before it")
            return Opaque(tagged, _DESCRIBED_ONLY[tag])
        return Opaque(tagged, f"unknown tag {tag!r} (written by a newer version?)")

    def items(self, tagged: dict[str, Any], depth: int) -> list[Any]:
        items = tagged.get("items")
        if type(items) is not list:
            raise _Malformed("'items' must be a list")
        try:
            return self.sequence(items, depth)
        except _Malformed as exc:
            exc.steps.append(".items")
            raise

    def pairs(self, tagged: dict[str, Any], depth: int) -> dict[Any, Any]:
        items = tagged.get("items")
        if type(items) is not list:
            raise _Malformed("'items' must be a list")
        out: dict[Any, Any] = {}
        for index, pair in enumerate(items):
            try:
                if type(pair) is not list or len(pair) != 2:
                    raise _Malformed("dict items must be [key, value] pairs")
                key = self.value(pair[0], depth + 1)
                item = self.value(pair[1], depth + 1)
                try:
                    out[key] = item
                except TypeError as exc:
                    raise _Malformed(f"unhashable key: {exc}") from None
            except _Malformed as exc:
                exc.steps.append(f".items[{index}]")
                raise
        return out

    def resolve(self, tagged: dict[str, Any]) -> type | None:
        name = tagged.get("class")
        if type(name) is not str:
            raise _Malformed("'class' must be a string")
        return self.resolve_class(name)

    def instance(self, tagged: dict[str, Any], key: str, depth: int) -> Any:
        raw = tagged.get(key)
        if raw is not None and type(raw) is not dict:
            raise _Malformed(f"'{key}' must be an object")
        cls = self.resolve(tagged)
        if cls is None:
            return Opaque(tagged, "its class is not allowed (replay_targets, replay_allowed_types)")
        if raw is None:  # no __dict__ at capture (__slots__, a C type): its state is unknown
            return Opaque(tagged, f"it was recorded without its {key}, so it cannot be rebuilt")
        attrs: dict[str, Any] = {}
        for name, item in raw.items():
            try:
                attrs[name] = self.value(item, depth + 1)
            except _Malformed as exc:
                exc.steps.append(f".{key}.{name}")
                raise
        try:
            obj = cast(Any, cls).__new__(cls)
            for name, item in attrs.items():
                object.__setattr__(obj, name, item)
        except Exception as exc:  # the class refuses to be built this way: say so, do not fail
            return Opaque(tagged, f"could not rebuild: {type(exc).__name__}: {exc}")
        return obj

    def enum_member(self, tagged: dict[str, Any]) -> Any:
        name = tagged.get("name")
        if type(name) is not str:
            raise _Malformed("'name' must be a string")
        cls = self.resolve(tagged)
        if cls is None:
            return Opaque(tagged, "its class is not allowed (replay_targets, replay_allowed_types)")
        if not issubclass(cls, enum.Enum):
            return Opaque(tagged, f"{tagged['class']} is not an enum today")
        member = cls.__members__.get(name)
        if member is None:
            return Opaque(tagged, f"{tagged['class']} has no member {name!r} today")
        return member

    def subclass(self, tagged: dict[str, Any], depth: int) -> Any:
        name = tagged.get("class")
        if type(name) is not str:
            raise _Malformed("'class' must be a string")
        if "value" not in tagged:
            raise _Malformed("'value' is missing")
        try:
            inner = self.value(tagged["value"], depth + 1)
        except _Malformed as exc:
            exc.steps.append(".value")
            raise
        if isinstance(inner, Opaque):
            return Opaque(tagged, f"its value cannot be rebuilt ({inner.reason})")
        inert = _INERT_SUBCLASSES.get(name)
        if inert is not None:
            try:
                return inert(inner)
            except (TypeError, ValueError) as exc:
                raise _Malformed(f"bad {name} value: {exc}") from None
        cls = self.resolve_class(name)
        if cls is None:
            return Opaque(tagged, "its class is not allowed (replay_targets, replay_allowed_types)")
        base = type(inner)
        if not issubclass(cls, base):
            return Opaque(tagged, f"{name} is not a subclass of {base.__name__} today")
        try:
            builder = cast(Any, base)
            if base in (list, dict, set):
                obj = builder.__new__(cls)
                builder.__init__(obj, inner)
                return obj
            return builder.__new__(cls, inner)
        except Exception as exc:  # the class refuses to be built this way: say so, do not fail
            return Opaque(tagged, f"could not rebuild: {type(exc).__name__}: {exc}")


_DESCRIBED_ONLY: Final[dict[str, str]] = {
    "exception": "an exception is recorded as its type and message only",
    "ref": "a function, class or module is recorded by name only",
    "cycle": "a reference back to a containing value",
    "max_depth": "it was nested deeper than capture's max_depth",
    "unencodable": "capture could not encode it",
}


def _truncated_reason(tagged: dict[str, Any]) -> str:
    total = tagged.get("len")
    return (f"it was cut short at capture ({total} items or characters in all)"
            if type(total) is int else "it was cut short at capture")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"{exc} is missing"
    return str(exc) or type(exc).__name__


def _text(tagged: dict[str, Any], key: str = "value") -> str:
    text = tagged[key]
    if type(text) is not str:
        raise TypeError(f"'{key}' must be a string")
    return text


def _whole(tagged: dict[str, Any], key: str) -> int:
    number = tagged.get(key, 0)
    if type(number) is not int:
        raise TypeError(f"'{key}' must be an integer")
    return number


def _int(tagged: dict[str, Any]) -> int:
    text = _text(tagged)
    digits = text[1:] if text.startswith("-") else text
    if not (digits.isascii() and digits.isdigit()) or len(digits) > _MAX_INT_DIGITS:
        raise ValueError(f"'value' must be a decimal string of at most {_MAX_INT_DIGITS} digits")
    return int(text)


def _float(tagged: dict[str, Any]) -> float:
    text = tagged["value"]
    if text not in ("nan", "inf", "-inf"):
        raise ValueError("'value' must be nan, inf or -inf")
    return float(text)


def _str(tagged: dict[str, Any]) -> str:
    raw = base64.b64decode(_text(tagged, "b64"), validate=True)
    return raw.decode("utf-8", "surrogatepass")


def _bytes(tagged: dict[str, Any]) -> bytes:
    return base64.b64decode(_text(tagged, "b64"), validate=True)


def _timedelta(tagged: dict[str, Any]) -> _dt.timedelta:
    return _dt.timedelta(
        days=_whole(tagged, "days"),
        seconds=_whole(tagged, "seconds"),
        microseconds=_whole(tagged, "microseconds"),
    )


def _decimal(tagged: dict[str, Any]) -> decimal.Decimal:
    return decimal.Decimal(_text(tagged))


def _component(tagged: dict[str, Any], key: str) -> float:
    part = tagged[key]
    if type(part) in (int, float):
        return float(part)
    if part in ("nan", "inf", "-inf"):
        return float(part)
    raise ValueError(f"'{key}' must be a number, nan, inf or -inf")


_SIMPLE: Final[dict[str, Callable[[dict[str, Any]], Any]]] = {
    "int": _int,
    "float": _float,
    "str": _str,
    "datetime": lambda t: _dt.datetime.fromisoformat(_text(t)),
    "date": lambda t: _dt.date.fromisoformat(_text(t)),
    "time": lambda t: _dt.time.fromisoformat(_text(t)),
    "timedelta": _timedelta,
    "decimal": _decimal,
    "uuid": lambda t: uuid.UUID(_text(t)),
    "bytes": _bytes,
    "complex": lambda t: complex(_component(t, "real"), _component(t, "imag")),
}
