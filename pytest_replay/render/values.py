"""Short human text for encoded trace values: ``0.08``, ``'abc'``, ``Order(id=1)``.

Works on the encoded JSON form (``$type`` tags, see format/values.py), never
decodes into live objects, and never raises: a value the reader accepted may
still be malformed, huge or deeply nested, and it must still print.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
from collections.abc import Mapping
from typing import Any, Final

from pytest_replay.format.values import TAG

_MAX_DEPTH: Final = 4
_MAX_DIGITS: Final = 40


def short(value: Any, width: int = 60, *, unicode: bool = True) -> str:
    """At most about ``width`` characters that say what ``value`` was."""
    ellipsis = "…" if unicode else "..."
    text = _Short(max(width, 8), ellipsis).render(value, 0, max(width, 8))
    if len(text) > max(width, 8) + 12:
        return text[: max(width, 8)] + ellipsis
    return text


def format_args(args: Any, width: int = 80, *, unicode: bool = True) -> str:
    """``order_id=12345, user_id=67890``: call arguments, shortened to about ``width``."""
    ellipsis = "…" if unicode else "..."
    if args is None:
        return ""
    if not isinstance(args, Mapping):
        return short(args, width, unicode=unicode)
    if not args:
        return ""
    each = max(12, width // max(1, len(args)))
    parts: list[str] = []
    used = 0
    for index, (name, value) in enumerate(args.items()):
        part = f"{name}={short(value, each, unicode=unicode)}"
        if parts and used + len(part) > width:
            parts.append(f"{ellipsis} +{len(args) - index} more")
            break
        parts.append(part)
        used += len(part) + 2
    return ", ".join(parts)


def class_name(path: Any) -> str:
    """``Order`` for ``shop.models:Order`` (or ``shop.models.Order``)."""
    if not isinstance(path, str) or not path:
        return "?"
    tail = path.rsplit(":", 1)[-1]
    return tail.rsplit(".", 1)[-1] or tail


def is_empty_sequence(value: Any) -> bool:
    """Whether an encoded value is a recorded empty list, tuple, set, dict or string."""
    if isinstance(value, dict) and TAG in value:
        if value.get(TAG) not in ("list", "tuple", "set", "frozenset", "dict"):
            return False
        items = value.get("items")
        return isinstance(items, list) and not items and not value.get("truncated")
    if isinstance(value, (list, dict, str)):
        return len(value) == 0
    return False


def length(value: Any) -> int | None:
    """The recorded length of an encoded sequence or mapping (the full one if truncated)."""
    if isinstance(value, dict) and TAG in value:
        if value.get(TAG) not in ("list", "tuple", "set", "frozenset", "dict", "str"):
            return None
        total = value.get("len")
        if isinstance(total, int) and not isinstance(total, bool):
            return total
        items = value.get("items", value.get("head"))
        return len(items) if isinstance(items, (list, str)) else None
    if isinstance(value, (list, dict, str)):
        return len(value)
    return None


class _Short:
    __slots__ = ("ellipsis", "width")

    def __init__(self, width: int, ellipsis: str) -> None:
        self.width = width
        self.ellipsis = ellipsis

    def render(self, value: Any, depth: int, budget: int) -> str:
        if value is None or isinstance(value, bool):
            return repr(value)
        if isinstance(value, int):
            return self.digits(str(value))
        if isinstance(value, float):
            return repr(value)
        if isinstance(value, str):
            return self.string(value, None, budget)
        if depth >= _MAX_DEPTH:
            return self.ellipsis
        if isinstance(value, list):
            return self.sequence(value, "[", "]", depth, budget, None)
        if isinstance(value, dict):
            tag = value.get(TAG)
            if tag is None:
                return self.mapping(list(value.items()), depth, budget, None)
            return self.tagged(str(tag), value, depth, budget)
        if isinstance(value, tuple):
            return self.sequence(list(value), "(", ")", depth, budget, None)
        if isinstance(value, (set, frozenset)):
            return self.sequence(list(value), "{", "}", depth, budget, None)
        return self.foreign(value, budget)

    def digits(self, text: str) -> str:
        if len(text) <= _MAX_DIGITS:
            return text
        return f"{text[:20]}{self.ellipsis}({len(text)} digits)"

    def string(self, text: str, total: int | None, budget: int) -> str:
        full = total if total is not None else len(text)
        if len(text) <= max(4, budget - 2) and total is None:
            return repr(text)
        suffix = f"{self.ellipsis} ({full} chars)"
        room = max(4, budget - 2 - len(suffix))
        return f"{text[:room]!r}{suffix}"

    def foreign(self, value: Any, budget: int) -> str:
        # decoded objects handed in by callers (Opaque, dataclasses): their own repr
        try:
            text = repr(value)
        except Exception as exc:  # a hostile __repr__ must not stop a report
            return f"<{type(value).__name__}: repr failed: {type(exc).__name__}>"
        if not isinstance(text, str):
            return f"<{type(value).__name__}>"
        return text if len(text) <= budget else text[:budget] + self.ellipsis

    def sequence(
        self, items: list[Any], opening: str, closing: str, depth: int, budget: int,
        total: int | None,
    ) -> str:
        count = total if total is not None else len(items)
        if not items and total is None:
            return opening + closing
        parts: list[str] = []
        used = len(opening) + len(closing)
        each = max(6, budget // max(1, min(len(items), 4)))
        for item in items:
            part = self.render(item, depth + 1, each)
            used += len(part) + 2
            if used > budget:
                return self.count(count, opening, closing)
            parts.append(part)
        if total is not None and total > len(items):
            parts.append(f"{self.ellipsis} +{total - len(items)} more")
        if opening == "(" and len(parts) == 1 and total is None:
            return f"({parts[0]},)"
        return opening + ", ".join(parts) + closing

    def count(self, count: int, opening: str, closing: str) -> str:
        noun = "item" if count == 1 else "items"
        return f"{opening}{count} {noun}{closing}"

    def mapping(
        self, pairs: list[tuple[Any, Any]], depth: int, budget: int, total: int | None
    ) -> str:
        count = total if total is not None else len(pairs)
        if not pairs and total is None:
            return "{}"
        parts: list[str] = []
        used = 2
        each = max(6, budget // max(1, min(len(pairs), 4)))
        for key, item in pairs:
            key_text = self.render(key, depth + 1, each)
            part = f"{key_text}: {self.render(item, depth + 1, each)}"
            used += len(part) + 2
            if used > budget:
                noun = "key" if count == 1 else "keys"
                return f"{{{count} {noun}}}"
            parts.append(part)
        if total is not None and total > len(pairs):
            parts.append(f"{self.ellipsis} +{total - len(pairs)} more")
        return "{" + ", ".join(parts) + "}"

    def tagged(self, tag: str, value: dict[str, Any], depth: int, budget: int) -> str:
        total = value.get("len") if isinstance(value.get("len"), int) else None
        if tag in ("list", "tuple", "set", "frozenset"):
            items = value.get("items")
            items = items if isinstance(items, list) else []
            shapes = {"list": ("[", "]"), "tuple": ("(", ")"), "set": ("{", "}"),
                      "frozenset": ("frozenset({", "})")}
            opening, closing = shapes[tag]
            if tag == "set" and not items and total is None:
                return "set()"
            return self.sequence(items, opening, closing, depth, budget, total)
        if tag == "dict":
            raw = value.get("items")
            pairs = [(pair[0], pair[1]) for pair in raw if isinstance(pair, list)
                     and len(pair) == 2] if isinstance(raw, list) else []
            return self.mapping(pairs, depth, budget, total)
        if tag == "redacted":
            return "<redacted>"
        if tag == "str":
            head = value.get("head")
            return self.string(head if isinstance(head, str) else "", total or 0, budget)
        if tag in ("dataclass", "object"):
            return self.instance(value, depth, budget)
        return self.scalar(tag, value, depth, budget)

    def scalar(self, tag: str, value: dict[str, Any], depth: int, budget: int) -> str:
        raw = value.get("value")
        name = class_name(value.get("class"))
        if tag == "int":
            return self.digits(str(raw))
        if tag in ("float", "datetime", "date", "time"):
            return str(raw)
        if tag == "decimal":
            return f"Decimal('{raw}')"
        if tag == "uuid":
            return f"UUID('{raw}')"
        if tag == "timedelta":
            return self.timedelta(value)
        if tag == "bytes":
            return self.bytes_(value, budget)
        if tag == "complex":
            return f"({value.get('real')}+{value.get('imag')}j)"
        if tag == "enum":
            return f"{name}.{value.get('name')}"
        if tag == "exception":
            message = value.get("message")
            text = self.render(message, depth + 1, budget - len(name) - 2)
            return f"{name}({text})"
        if tag == "ref":
            kind = name.lower() if name != "?" else "ref"
            return f"<{kind} {value.get('name', '?')}>"
        if tag == "cycle":
            return f"<cycle {name}>"
        if tag == "max_depth":
            return f"<{name} {self.ellipsis}>"
        if tag == "unencodable":
            return f"<unencodable {name}: {value.get('reason', '?')}>"
        if tag == "subclass":
            return f"{name}({self.render(value.get('value'), depth + 1, budget - len(name))})"
        return f"<{tag}>" if name == "?" else f"<{tag} {name}>"

    def instance(self, value: dict[str, Any], depth: int, budget: int) -> str:
        name = class_name(value.get("class"))
        fields = value.get("fields", value.get("attrs"))
        if isinstance(fields, dict) and fields:
            room = max(8, budget - len(name) - 2)
            each = max(6, room // max(1, min(len(fields), 4)))
            parts: list[str] = []
            used = len(name) + 2
            for key, item in fields.items():
                part = f"{key}={self.render(item, depth + 1, each)}"
                used += len(part) + 2
                if used > budget:
                    parts.append(self.ellipsis)
                    break
                parts.append(part)
            if value.get("truncated") and parts[-1] != self.ellipsis:
                parts.append(self.ellipsis)
            return f"{name}({', '.join(parts)})"
        text = value.get("repr")
        if isinstance(text, str) and text:
            return text if len(text) <= budget else text[:budget] + self.ellipsis
        return f"{name}()" if isinstance(fields, dict) else f"<{name}>"

    def timedelta(self, value: dict[str, Any]) -> str:
        try:
            delta = _dt.timedelta(days=int(value.get("days", 0)),
                                  seconds=int(value.get("seconds", 0)),
                                  microseconds=int(value.get("microseconds", 0)))
        except (TypeError, ValueError, OverflowError):
            return "<timedelta>"
        return str(delta)

    def bytes_(self, value: dict[str, Any], budget: int) -> str:
        encoded = value.get("b64")
        total = value.get("len")
        try:
            raw = base64.b64decode(str(encoded)[: 4 * budget], validate=False)
        except (binascii.Error, ValueError):
            return "<bytes>"
        text = str(encoded)
        size = total if isinstance(total, int) else (len(text) * 3) // 4 - text[-2:].count("=")
        shown = repr(raw[: max(4, budget - 12)])
        if len(shown) <= budget and size == len(raw):
            return shown
        return f"{shown}{self.ellipsis} ({size} bytes)"
