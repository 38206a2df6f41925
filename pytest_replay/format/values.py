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
import itertools
import math
import re
import types
import uuid
from collections.abc import Callable
from typing import Any, Final, final

import orjson

TAG: Final = "$type"
REDACTED_TEXT: Final = "[REDACTED]"
_INT64_MAX: Final = 2**63 - 1
_INT64_MIN: Final = -(2**63)
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")

JSON = Any
KeyPredicate = Callable[[str], bool]
TextScrubber = Callable[[str], str]


@final
class Limits:
    """Caps that keep one captured value small, whatever the application passes.

    ``max_items`` and ``max_depth`` bound each container; ``max_nodes`` bounds
    the whole value, so a structure that shares itself (the same 100-item
    list 100 times, eight levels deep) cannot make the encoder walk 100**8
    paths.
    """

    __slots__ = ("max_depth", "max_items", "max_nodes", "max_repr", "max_str")

    def __init__(
        self,
        max_str: int = 2048,
        max_items: int = 100,
        max_depth: int = 8,
        max_repr: int = 200,
        max_nodes: int = 100_000,
    ) -> None:
        for name, cap in (("max_str", max_str), ("max_items", max_items),
                          ("max_depth", max_depth), ("max_repr", max_repr),
                          ("max_nodes", max_nodes)):
            if type(cap) is not int or cap < 0:  # a negative cap has no meaning to any walker
                raise ValueError(f"Limits({name}=...) must be an int of 0 or more, got {cap!r}")
        self.max_str = max_str
        self.max_items = max_items
        self.max_depth = max_depth
        self.max_repr = max_repr
        self.max_nodes = max_nodes


DEFAULT_LIMITS: Final = Limits()


def _never_secret(_key: str) -> bool:
    return False


def class_path(cls: type) -> str:
    """``module:qualname`` of a class: the form tagged values use to name types."""
    module = getattr(cls, "__module__", None) or "?"
    qualname = getattr(cls, "__qualname__", None) or getattr(cls, "__name__", "?")
    return clean_text(f"{module}:{qualname}")


def clean_text(text: str) -> str:
    """``text`` with lone surrogates written as ``\\udxxx`` (JSON cannot carry them)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def redacted(rule: str = "key") -> dict[str, str]:
    """The placeholder written instead of a secret value."""
    return {TAG: "redacted", "rule": rule}


def encode(
    value: Any,
    limits: Limits = DEFAULT_LIMITS,
    is_secret_key: KeyPredicate = _never_secret,
    scrub_text: TextScrubber | None = None,
) -> JSON:
    """Return a JSON-ready form of ``value``; never raises.

    ``scrub_text`` (capture's value scan) is applied to bytes, read as Latin-1
    text: the encoded form is base64, which no later scan of strings can see into.
    """
    try:
        return _Encoder(limits, is_secret_key, scrub_text).value(value, 0)
    except Exception as exc:  # a hostile value must not break the host
        return {TAG: "unencodable", "class": _safe_class(value), "reason": type(exc).__name__}


def encode_mapping(
    mapping: dict[str, Any],
    limits: Limits = DEFAULT_LIMITS,
    is_secret_key: KeyPredicate = _never_secret,
    scrub_text: TextScrubber | None = None,
) -> dict[str, JSON]:
    """Encode a name -> value mapping (args, locals, context), redacting secret names."""
    out: dict[str, JSON] = {}
    encoder = _Encoder(limits, is_secret_key, scrub_text)
    for name, item in mapping.items():
        key = clean_text(name if type(name) is str else _safe_str(name, 200))
        if is_secret_key(key):
            out[key] = redacted()
            continue
        try:
            out[key] = encoder.value(item, 0)
        except Exception as exc:
            out[key] = {TAG: "unencodable", "class": _safe_class(item),
                        "reason": type(exc).__name__}
    return out


def _safe_class(value: Any) -> str:
    try:
        return class_path(type(value))
    except Exception:
        return "?"


@final
class _Encoder:
    __slots__ = ("is_secret_key", "left", "limits", "scrub_text", "seen")

    def __init__(self, limits: Limits, is_secret_key: KeyPredicate,
                 scrub_text: TextScrubber | None = None) -> None:
        self.limits = limits
        self.is_secret_key = is_secret_key
        self.scrub_text = scrub_text
        self.seen: set[int] = set()
        self.left = limits.max_nodes

    def value(self, value: Any, depth: int) -> JSON:
        self.left -= 1
        kind = type(value)
        if kind is str:
            return self._string(value)
        if kind is bool or value is None:
            return value
        if kind is int:
            if _INT64_MIN <= value <= _INT64_MAX:
                return value
            return _big_int(value)
        if kind is float:
            return value if _finite(value) else {TAG: "float", "value": repr(value)}
        if depth >= self.limits.max_depth:
            return {TAG: "max_depth", "class": class_path(kind)}
        if self.left < 0:  # scalars above are always written; nothing else past the budget
            return {TAG: "max_depth", "class": class_path(kind), "budget": True}
        if kind is dict or kind is list or kind is tuple or kind is set or kind is frozenset:
            return self._container(value, kind, depth)
        return self._other(value, kind, depth)

    def _string(self, value: str) -> JSON:
        limit = self.limits.max_str
        if len(value) > limit:
            return {TAG: "str", "head": clean_text(value[:limit]), "len": len(value),
                    "truncated": True}
        if value.isascii():
            return value
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: exact, but not as a JSON string
            raw = value.encode("utf-8", "surrogatepass")
            return {TAG: "str", "b64": base64.b64encode(raw).decode("ascii")}
        return value

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
        total = len(value)
        # only the keys that will be written are looked at: a 2 M-key dict costs its first 100
        if TAG not in value and all(type(key) is str and _plain_key(key)
                                    for key in itertools.islice(value, limit)):
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
            name = _key_name(key)
            secret = name is not None and self.is_secret_key(name)
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
            items = self._members(value, limit, depth)
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

    def _members(self, values: set[Any] | frozenset[Any], limit: int, depth: int) -> list[JSON]:
        """Up to ``limit`` encoded members in a stable order (sets iterate in hash order).

        Members are ordered by their encoded JSON, which is canonical all the
        way down (a set inside a set is sorted too), so the same set is
        written the same way in every process. A set of up to ten times the
        cap keeps the same members every time; a bigger one keeps its first
        ``limit`` in iteration order.
        """
        if len(values) <= limit * _SORT_ALL_FACTOR:
            chosen: Any = values
        else:
            chosen = [item for _, item in zip(range(limit), values)]  # noqa: B905
        items = [self.value(item, depth + 1) for item in chosen]
        items.sort(key=_canonical)
        return items[:limit]

    def _other(self, value: Any, kind: type, depth: int) -> JSON:
        # Only the type is asked questions: ``isinstance(value, ...)`` would read
        # ``value.__class__``, which a proxy object may compute.
        if (kind is bytes or kind is bytearray) and self.scrub_text is not None:
            return _bytes_tag(value, self.scrub_text)
        simple = _encode_simple(value, kind)
        if simple is not None:
            return simple
        if issubclass(kind, enum.Enum):
            return {TAG: "enum", "class": class_path(kind), "name": clean_text(_enum_name(value))}
        if issubclass(kind, BaseException):
            return {
                TAG: "exception",
                "class": class_path(kind),
                "message": self._string(_safe_str(value, self.limits.max_repr)),
            }
        if issubclass(kind, _SUBCLASSABLE):
            return self._subclass(value, kind, depth)
        if issubclass(kind, _REFERENCES):
            return {TAG: "ref", "class": class_path(kind), "name": _ref_name(value)}
        if kind in FUNCTION_STAND_INS:
            return {TAG: "ref", "class": "builtins:function", "name": _ref_name(value)}
        marker = id(value)
        if marker in self.seen:
            return {TAG: "cycle", "class": class_path(kind)}
        self.seen.add(marker)
        try:
            if dataclasses.is_dataclass(kind):
                return {TAG: "dataclass", "class": class_path(kind),
                        "fields": self._fields(value, kind, depth)}
            return self._object(value, kind, depth)
        finally:
            self.seen.discard(marker)

    def _subclass(self, value: Any, kind: type, depth: int) -> JSON:
        base = next(b for b in _SUBCLASSABLE if issubclass(kind, b))
        inner: JSON
        scalar = _SCALAR_VALUE.get(base)
        if scalar is not None:  # the base's own slot: an overridden __str__ is not asked
            inner = self.value(scalar(value), depth)
        else:
            inner = self._container(base(value), base, depth)
            if base is tuple:
                self._hide_named_fields(kind, inner)
        return {TAG: "subclass", "class": class_path(kind), "value": inner}

    def _hide_named_fields(self, kind: type, inner: JSON) -> None:
        """A named tuple's items under secret field names (``Login.password``) redacted."""
        names = getattr(kind, "_fields", None)  # the class's, never the instance's
        if type(names) is not tuple or type(inner) is not dict:
            return
        items = inner.get("items")
        if type(items) is not list:
            return
        for index, name in enumerate(names[: len(items)]):
            if type(name) is str and self.is_secret_key(name):
                items[index] = redacted()

    def _fields(self, value: Any, kind: type, depth: int) -> dict[str, JSON]:
        out: dict[str, JSON] = {}
        for field in dataclasses.fields(kind):
            name = clean_text(field.name)
            if self.is_secret_key(name):
                out[name] = redacted()
                continue
            raw = _field_value(value, kind, field.name)
            if raw is _UNSET:  # never set, or not loaded (an ORM's lazy attribute)
                out[name] = {TAG: "unencodable", "class": "?", "reason": "unset"}
                continue
            out[name] = self.value(raw, depth + 1)
        return out

    def _object(self, value: Any, kind: type, depth: int) -> JSON:
        tagged: dict[str, JSON] = {TAG: "object", "class": class_path(kind)}
        attrs = instance_dict(value, kind)  # None without one (slots): the repr says more
        if attrs is not None:
            encoded: dict[str, JSON] = {}
            hidden = False
            for index, (name, item) in enumerate(attrs.items()):
                if index >= self.limits.max_items:
                    tagged["truncated"] = True
                    break
                if type(name) is not str:
                    continue
                key = clean_text(name)
                if self.is_secret_key(key):
                    encoded[key] = redacted()
                    hidden = True
                else:
                    encoded[key] = self.value(item, depth + 1)
            tagged["attrs"] = encoded
            if hidden:
                return tagged  # a repr of its own would show what was just hidden
        if kind.__repr__ is not _OBJECT_REPR:
            text = _safe_repr(value, self.limits.max_repr)
            if text is None:
                tagged["repr_error"] = True
            else:
                tagged["repr"] = clean_text(_ADDRESS.sub("", text))
        return tagged


_SUBCLASSABLE: Final = (dict, list, tuple, set, frozenset, str, int, float)
_REFERENCES: Final = (types.FunctionType, types.BuiltinFunctionType, types.MethodType, type,
                      types.ModuleType)
FUNCTION_STAND_INS: set[type] = set()
"""Types recorded as the function they wrap (``@traced``'s C wrapper): ``builtins:function``."""
_SCALAR_VALUE: Final[dict[type, Callable[[Any], Any]]] = {
    str: str.__str__, int: int.__int__, float: float.__float__,
}
_OBJECT_REPR: Final[Any] = object.__repr__
_MAX_BYTES: Final = 4096
_MAX_INT_BITS: Final = 14_300  # about 4,300 decimal digits, CPython's default cap
_SORT_ALL_FACTOR: Final = 10


def _finite(value: float) -> bool:
    return not (math.isnan(value) or math.isinf(value))


def _big_int(value: int) -> JSON:
    if value.bit_length() <= _MAX_INT_BITS:  # str() of a huge int is quadratic: not on a request
        try:
            return {TAG: "int", "value": str(value)}
        except ValueError:  # more digits than int->str conversion allows
            pass
    return {TAG: "int", "digits": int(value.bit_length() * 0.30103) + 1, "truncated": True}


_UNSET: Final[Any] = object()
_MEMBER: Final = types.MemberDescriptorType  # C types' __dict__ (SimpleNamespace) and slots


def instance_dict(value: Any, kind: type) -> dict[str, Any] | None:
    """The instance dict, through the C getter Python made for it: a ``__dict__``
    property of the application's (a lazy proxy's) is not run. None when there is none."""
    for klass in kind.__mro__:
        getter = klass.__dict__.get("__dict__")
        if type(getter) is types.GetSetDescriptorType or type(getter) is _MEMBER:
            try:
                stored = getter.__get__(value, kind)
            except Exception:
                return None
            return stored if type(stored) is dict else None
    return None


def _enum_name(member: Any) -> str:
    """An enum member's name as stored (``_name_``); a ``name`` property is not asked."""
    stored = instance_dict(member, type(member))
    name = stored.get("_name_") if stored is not None else None
    return name if type(name) is str else "?"


def _field_value(value: Any, kind: type, name: str) -> Any:
    """A dataclass field as stored, read without running the application's code.

    ``getattr`` would run a class descriptor: SQLAlchemy's mapped attributes
    autoflush the session and lazy-load relationships (SQL on the application's
    connection). The instance dict holds what was set; a slot is read through
    its member descriptor, which is C and runs nothing; anything else is unset.
    """
    stored = instance_dict(value, kind)
    if type(stored) is dict and name in stored:
        return stored[name]
    for klass in kind.__mro__:
        attribute = klass.__dict__.get(name, _UNSET)
        if attribute is not _UNSET:
            if type(attribute) is _MEMBER:  # a slot (slots=True)
                try:
                    return attribute.__get__(value, kind)
                except AttributeError:
                    return _UNSET
            break
    return _UNSET


def _key_name(key: Any) -> str | None:
    """The name a dict key is judged by: str subclasses (a ``StrEnum``) and bytes too."""
    kind = type(key)
    if kind is str:
        return key  # type: ignore[no-any-return]
    if issubclass(kind, str):
        return str.__str__(key)
    if kind is bytes:
        return key.decode("latin-1")  # type: ignore[no-any-return]
    return None


def _bytes_tag(value: bytes | bytearray, scrub_text: TextScrubber | None = None) -> JSON:
    """Bytes as ``$type: bytes``; with ``scrub_text``, secret-shaped text in them (a form
    body, a token) scrubbed first."""
    raw = bytes(value[:_MAX_BYTES])
    if scrub_text is not None:
        text = raw.decode("latin-1")
        scrubbed = scrub_text(text)
        if scrubbed is not text and scrubbed != text:
            raw = scrubbed.encode("latin-1", "replace")
    tagged: dict[str, JSON] = {TAG: "bytes", "b64": base64.b64encode(raw).decode("ascii")}
    if len(value) > _MAX_BYTES:
        tagged["len"] = len(value)
        tagged["truncated"] = True
    return tagged


def _plain_key(key: str) -> bool:
    return key.isascii() or clean_text(key) is key


def _component(part: float) -> JSON:
    """A part of a complex number: a number, or ``"nan"``/``"inf"``/``"-inf"``."""
    return part if _finite(part) else repr(part)


def _encode_simple(value: Any, kind: type) -> JSON | None:
    """Tagged forms of the standard library's value types, or None.

    Subclasses count as their base (freezegun's ``FakeDatetime`` is a datetime).
    """
    if issubclass(kind, _dt.date):
        if issubclass(kind, _dt.datetime):
            return {TAG: "datetime", "value": _dt.datetime.isoformat(value)}
        return {TAG: "date", "value": _dt.date.isoformat(value)}
    if issubclass(kind, _dt.time):
        return {TAG: "time", "value": _dt.time.isoformat(value)}
    if issubclass(kind, _dt.timedelta):
        return {TAG: "timedelta", "days": value.days, "seconds": value.seconds,
                "microseconds": value.microseconds}
    if issubclass(kind, decimal.Decimal):
        return {TAG: "decimal", "value": decimal.Decimal.__str__(value)}
    if issubclass(kind, uuid.UUID):
        return {TAG: "uuid", "value": uuid.UUID.__str__(value)}
    if kind is bytes or kind is bytearray:
        return _bytes_tag(value)
    if kind is complex:
        return {TAG: "complex", "real": _component(value.real), "imag": _component(value.imag)}
    return None


def _canonical(encoded: JSON) -> bytes:
    """A total, process-independent order for encoded set members."""
    return orjson.dumps(encoded, option=orjson.OPT_SORT_KEYS)


def _ref_name(value: Any) -> str:
    module = getattr(value, "__module__", None) or ""
    qualname = getattr(value, "__qualname__", None) or getattr(value, "__name__", "?")
    return clean_text(f"{module}:{qualname}" if module else str(qualname))


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
