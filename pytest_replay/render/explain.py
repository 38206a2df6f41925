"""Find the failing expression on a recorded line, and the recorded values that broke it.

The analyses walk the line's syntax tree (``ast``) and look values up in the
error's recorded locals, in their encoded form. Nothing is evaluated: a
:class:`Resolver` understands names, constants, attribute and subscript
access on recorded objects, and ``len()``; anything else is "not recorded".
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from pytest_replay.format.values import TAG
from pytest_replay.render.source import text_of, walk_in_order
from pytest_replay.render.values import length

MISSING: Final[Any] = object()
"""What :meth:`Resolver.value` answers for an expression the trace cannot value."""

_DIVISIONS: Final = (ast.Div, ast.FloorDiv, ast.Mod)
_COUNT_WORDS: Final = ("count", "len", "size", "num", "total", "n_", "number", "length")


@dataclass
class Finding:
    """What one analysis found on the line."""

    category: str
    expression: str | None = None
    culprits: list[tuple[str, Any]] = field(default_factory=list)
    """``(expression text, recorded value)`` pairs that made the line fail."""
    facts: list[str] = field(default_factory=list)
    summary: str | None = None
    suggestion: str | None = None
    determined: bool = False
    reason: str | None = None
    related: list[str] = field(default_factory=list)
    """Names of sequences whose emptiness explains a culprit (``discounts`` for a 0 count)."""


class Resolver:
    """Values of simple expressions from the recorded locals (no evaluation)."""

    def __init__(self, local_values: Mapping[str, Any]) -> None:
        self.locals = local_values

    def value(self, node: ast.AST) -> Any:
        """The recorded (encoded) value of ``node``, or :data:`MISSING`."""
        if isinstance(node, ast.Name):
            return self.locals.get(node.id, MISSING)
        if isinstance(node, ast.Constant):
            return node.value if isinstance(node.value, (int, float, str, bool, type(None))) \
                else MISSING
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            inner = self.value(node.operand)
            if isinstance(inner, (int, float)) and not isinstance(inner, bool):
                return -inner
            return MISSING
        if isinstance(node, ast.Attribute):
            return _attribute(self.value(node.value), node.attr)
        if isinstance(node, ast.Subscript):
            return _item(self.value(node.value), self.value(node.slice))
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == "len" and len(node.args) == 1 and not node.keywords):
            size = length(self.value(node.args[0]))
            return size if size is not None else MISSING
        return MISSING


def _attribute(base: Any, name: str) -> Any:
    if isinstance(base, dict) and base.get(TAG) in ("object", "dataclass"):
        fields = base.get("fields", base.get("attrs"))
        if isinstance(fields, dict) and name in fields:
            return fields[name]
    return MISSING


def _item(base: Any, key: Any) -> Any:
    if base is MISSING or key is MISSING:
        return MISSING
    items: Any = base
    if isinstance(base, dict) and base.get(TAG) in ("list", "tuple"):
        items = base.get("items")
        if base.get("truncated"):
            return MISSING
    if isinstance(items, list) and isinstance(key, int) and not isinstance(key, bool):
        return items[key] if -len(items) <= key < len(items) else MISSING
    if isinstance(base, dict) and TAG not in base and isinstance(key, str):
        return base.get(key, MISSING)
    return MISSING


def is_zero(value: Any) -> bool:
    """Whether an encoded value is a recorded zero (``0``, ``0.0``, ``False``, ``Decimal('0')``)."""
    if isinstance(value, (int, float)):
        return value == 0
    if isinstance(value, dict) and value.get(TAG) == "decimal":
        text = value.get("value")
        return isinstance(text, str) and re.fullmatch(r"[+-]?0*\.?0*(E[+-]?\d+)?", text,
                                                      re.IGNORECASE) is not None and (
            any(ch == "0" for ch in text))
    return False


def looks_like_count(text: str) -> bool:
    """Whether an expression names a count (``len(x)``, ``item_count``): ``> 0`` reads right."""
    lowered = text.lower()
    return any(word in lowered for word in _COUNT_WORDS)


def literal(text: object) -> Any:
    """A KeyError message (``repr`` of the key) as a value, by parsing, never evaluating."""
    if not isinstance(text, str):
        return MISSING
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return text
    node = tree.body
    negative = isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub)
    if negative and isinstance(node, ast.UnaryOp):
        node = node.operand
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool)):
        value = node.value
        if negative and isinstance(value, (int, float)) and not isinstance(value, bool):
            return -value
        return value
    return text


# -- the analyses -------------------------------------------------------------------


def zero_division(tree: ast.AST, resolver: Resolver, message: str) -> Finding:
    """Which divisor on the line was recorded as zero."""
    divisions: list[tuple[ast.AST, ast.AST, str]] = []  # (whole, divisor, word)
    for node in walk_in_order(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, _DIVISIONS):
            divisions.append((node, node.right, _division_word(node.op)))
        elif isinstance(node, ast.AugAssign) and isinstance(node.op, _DIVISIONS):
            divisions.append((node, node.value, _division_word(node.op)))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id == "divmod" and len(node.args) == 2):
            divisions.append((node, node.args[1], "divmod()"))
    finding = Finding("zero_division")
    if not divisions:
        finding.reason = "the recorded line holds no division (the error came from a call?)"
        return finding
    zeros = [(whole, divisor, word) for whole, divisor, word in divisions
             if is_zero(resolver.value(divisor))]
    if len(zeros) >= 1:
        whole, divisor, word = zeros[0]
        name = text_of(divisor)
        value = resolver.value(divisor)
        finding.expression = text_of(whole)
        finding.culprits.append((name, value))
        finding.determined = True
        subject = f"Variable '{name}'" if isinstance(divisor, ast.Name) else f"'{name}'"
        finding.summary = f"{subject} was {_plain(value)}, causing {message or 'division by zero'}"
        check = f"{name} > 0" if looks_like_count(name) else f"{name} != 0"
        finding.suggestion = f"Add a check for {check} before the {word}"
        finding.facts.append(f"{name} = {_plain(value)} (recorded at the error)")
        finding.related.extend(_emptied_sources(divisor, resolver))
        return finding
    if len(divisions) == 1:
        whole, divisor, _word = divisions[0]
        name = text_of(divisor)
        finding.expression = text_of(whole)
        recorded = resolver.value(divisor)
        if recorded is not MISSING:
            finding.reason = (f"the recorded divisor {name} = {_plain(recorded)} is not 0 "
                              "(the error came from elsewhere, perhaps a call on the line)")
            return finding
        finding.determined = True
        finding.summary = (f"'{name}' must have been 0 (the line's only division), causing "
                           f"{message or 'division by zero'}; its value was not recorded")
        return finding
    listed = ", ".join(text_of(divisor) for _whole, divisor, _word in divisions)
    finding.reason = (f"the line divides by {listed} and the trace does not record which "
                      "one was 0")
    return finding


def _division_word(op: ast.operator) -> str:
    return "modulo" if isinstance(op, ast.Mod) else "division"


def _emptied_sources(divisor: ast.AST, resolver: Resolver) -> list[str]:
    """``discounts`` when the zero divisor is ``len(discounts)``."""
    if (isinstance(divisor, ast.Call) and isinstance(divisor.func, ast.Name)
            and divisor.func.id == "len" and divisor.args
            and isinstance(divisor.args[0], ast.Name)):
        return [divisor.args[0].id]
    return []


_NONE_ATTRIBUTE: Final = re.compile(r"'NoneType' object has no attribute '([^']+)'")
_NONE_OPERAND: Final = re.compile(r"for [^:]+: '(\w+)' and '(\w+)'")


def none_value(tree: ast.AST, resolver: Resolver, message: str) -> Finding:
    """Which expression on the line was None where a value was needed."""
    finding = Finding("none_value")
    nodes = walk_in_order(tree)
    candidates: list[tuple[ast.AST, ast.AST]] = []  # (failing expression, the None part)
    attribute = _NONE_ATTRIBUTE.search(message)
    if attribute is not None:
        candidates = [(n, n.value) for n in nodes
                      if isinstance(n, ast.Attribute) and n.attr == attribute.group(1)]
    elif "subscriptable" in message:
        candidates = [(n, n.value) for n in nodes if isinstance(n, ast.Subscript)]
    elif "not callable" in message:
        candidates = [(n, n.func) for n in nodes if isinstance(n, ast.Call)]
    elif "has no len()" in message:
        candidates = [(n, n.args[0]) for n in nodes if isinstance(n, ast.Call)
                      and isinstance(n.func, ast.Name) and n.func.id == "len" and n.args]
    elif (operands := _NONE_OPERAND.search(message)) is not None:
        left_none, right_none = operands.group(1) == "NoneType", operands.group(2) == "NoneType"
        for n in nodes:
            if isinstance(n, ast.BinOp):
                if left_none:
                    candidates.append((n, n.left))
                if right_none:
                    candidates.append((n, n.right))
            elif isinstance(n, ast.AugAssign):
                candidates.append((n, n.target if left_none else n.value))
    nones: list[tuple[ast.AST, ast.AST]] = [
        (whole, part) for whole, part in candidates if _is_none(resolver.value(part))]
    if not nones:
        # any name on the line recorded as None, when there is exactly one
        named = [n for n in nodes if isinstance(n, ast.Name) and _is_none(resolver.value(n))]
        unique = {n.id: n for n in named}
        if len(unique) == 1:
            only = next(iter(unique.values()))
            nones = [(only, only)]
    if not nones:
        if len(candidates) == 1:
            whole, part = candidates[0]
            finding.expression = text_of(whole)
            finding.culprits.append((text_of(part), MISSING))
            finding.reason = (f"'{text_of(part)}' must have been None, but its value was "
                              "not recorded")
        else:
            finding.reason = "no expression on the line was recorded as None"
        return finding
    whole, part = nones[0]
    name = text_of(part)
    finding.expression = text_of(whole)
    finding.culprits.append((name, None))
    finding.determined = True
    subject = f"Variable '{name}'" if isinstance(part, ast.Name) else f"'{name}'"
    use = text_of(whole)
    finding.summary = f"{subject} was None, so {use} failed ({message})"
    finding.suggestion = f"Check that {name} is not None before {use}"
    finding.facts.append(f"{name} = None (recorded at the error)")
    return finding


def _is_none(value: Any) -> bool:
    return value is None


def missing_key(tree: ast.AST, resolver: Resolver, message: str) -> Finding:
    """Which mapping lacked which key."""
    finding = Finding("missing_key")
    key = literal(message)
    lookups: list[tuple[ast.AST, ast.AST, ast.AST]] = []  # (whole, mapping, key expression)
    for node in walk_in_order(tree):
        if isinstance(node, ast.Subscript):
            lookups.append((node, node.value, node.slice))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "pop" and node.args):
            lookups.append((node, node.func.value, node.args[0]))
    matching = [(whole, mapping, k) for whole, mapping, k in lookups
                if key is not MISSING and _same_key(resolver.value(k), key)]
    if not matching:
        if len(lookups) == 1 and key is not MISSING:
            whole, mapping, k = lookups[0]
            finding.expression = text_of(whole)
            finding.reason = (f"the line's only lookup is {text_of(whole)}, but the recorded "
                              f"value of {text_of(k)} is not {key!r}")
        else:
            finding.reason = f"no lookup on the line uses the key {message}"
        return finding
    whole, mapping, k = matching[0]
    mapping_name = text_of(mapping)
    key_text = text_of(k)
    finding.expression = text_of(whole)
    finding.determined = True
    finding.culprits.append((key_text, key))
    if not isinstance(k, ast.Constant):
        finding.facts.append(f"{key_text} = {key!r} (recorded at the error)")
    recorded = resolver.value(mapping)
    keys = _keys(recorded)
    if keys is not None:
        shown = ", ".join(repr(item) for item in keys[:5])
        more = f" and {len(keys) - 5} more" if len(keys) > 5 else ""
        finding.facts.append(f"{mapping_name} had {len(keys)} key(s): {shown}{more}"
                             if keys else f"{mapping_name} was empty")
    finding.summary = f"Key {key!r} was missing from {mapping_name}"
    finding.suggestion = (f"Check `{key_text} in {mapping_name}` (or use "
                          f"{mapping_name}.get({key_text})) before the lookup")
    return finding


def _same_key(recorded: Any, key: Any) -> bool:
    if recorded is MISSING:
        return False
    return type(recorded) is type(key) and bool(recorded == key)


def _keys(value: Any) -> list[Any] | None:
    if isinstance(value, dict) and TAG not in value:
        return list(value)
    if isinstance(value, dict) and value.get(TAG) == "dict" and isinstance(value.get("items"),
                                                                             list):
        return [pair[0] for pair in value["items"] if isinstance(pair, list) and pair]
    return None


_EMPTY_MINMAX: Final = re.compile(r"\b(max|min)\(\) (arg is an empty sequence|iterable "
                                  r"argument is empty)")


def empty_sequence(tree: ast.AST, resolver: Resolver, message: str, error_type: str) -> Finding:
    """An empty sequence handed to max()/min(), indexed, or popped; or an index past the end."""
    finding = Finding("empty_sequence")
    nodes = walk_in_order(tree)
    minmax = _EMPTY_MINMAX.search(message)
    if minmax is not None:
        return _empty_minmax(finding, nodes, resolver, minmax.group(1))
    if error_type == "IndexError" and "pop from empty" in message:
        for node in nodes:
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "pop"):
                seq = node.func.value
                if length(resolver.value(seq)) == 0:
                    return _empty(finding, node, seq, "pop()")
        finding.reason = "no .pop() on the line was recorded on an empty sequence"
        return finding
    if error_type == "IndexError":
        return _index(finding, nodes, resolver)
    finding.reason = "the line holds no call the message names"
    return finding


def _empty_minmax(finding: Finding, nodes: list[ast.AST], resolver: Resolver,
                  function: str) -> Finding:
    calls = [n for n in nodes if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
             and n.func.id == function and len(n.args) == 1]
    for call in calls:
        argument = call.args[0]
        if isinstance(argument, (ast.GeneratorExp, ast.ListComp, ast.SetComp)):
            argument = argument.generators[0].iter
        if length(resolver.value(argument)) == 0:
            found = _empty(finding, call, argument, f"{function}()")
            found.suggestion = (f"Handle an empty {text_of(argument)} before calling "
                                f"{function}() (or pass {function}(..., default=...))")
            return found
    finding.reason = (f"no argument of {function}() on the line was recorded as empty"
                      if calls else f"the line holds no {function}() call")
    return finding


def _empty(finding: Finding, whole: ast.AST, seq: ast.AST, operation: str) -> Finding:
    name = text_of(seq)
    finding.expression = text_of(whole)
    finding.culprits.append((name, []))
    finding.determined = True
    subject = f"Variable '{name}'" if isinstance(seq, ast.Name) else f"'{name}'"
    finding.summary = f"{subject} was empty, so {text_of(whole)} failed"
    finding.suggestion = f"Check that {name} is not empty before {operation}"
    finding.facts.append(f"{name} was empty (recorded at the error)")
    return finding


def _index(finding: Finding, nodes: list[ast.AST], resolver: Resolver) -> Finding:
    for node in nodes:
        if not isinstance(node, ast.Subscript) or isinstance(node.slice, ast.Slice):
            continue
        size = length(resolver.value(node.value))
        index = resolver.value(node.slice)
        if size is None or not isinstance(index, int) or isinstance(index, bool):
            continue
        if size == 0:
            return _empty(finding, node, node.value, f"{text_of(node)}")
        if index >= size or index < -size:
            name = text_of(node.value)
            finding.category = "index_out_of_range"
            finding.expression = text_of(node)
            finding.culprits.append((text_of(node.slice), index))
            finding.determined = True
            finding.summary = (f"Index {index} is out of range for {name}, which had "
                               f"{size} item{'s' if size != 1 else ''}")
            finding.suggestion = f"Check {text_of(node.slice)} against len({name}) before " \
                                 f"{text_of(node)}"
            finding.facts.append(f"len({name}) = {size}, index = {index} (recorded)")
            return finding
    finding.reason = "no subscript on the line was recorded with an index past its end"
    return finding


def _plain(value: Any) -> str:
    if isinstance(value, dict) and value.get(TAG) == "decimal":
        return f"Decimal('{value.get('value')}')"
    return repr(value)
