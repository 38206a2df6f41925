"""Read a recorded source line with ``ast``: which names it uses, what it computes.

An error event carries one line of source, often a fragment of a compound
statement (``if total / count > 3:``) or of a longer expression. This module
turns it into a syntax tree when it can, never evaluates it, and answers
``None`` when it cannot.
"""

from __future__ import annotations

import ast
import io
import tokenize
from typing import Final

_MAX_SOURCE: Final = 2_000
_HEADERS: Final = ("if ", "elif ", "while ", "for ", "with ", "async for ", "async with ",
                   "except ", "else", "try", "finally", "def ", "async def ", "class ")


def strip_comment(line: str) -> str:
    """The line without its trailing ``# comment`` (a ``#`` inside a string stays)."""
    text = line.strip()
    if "#" not in text:
        return text
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return text
    for token in tokens:
        if token.type == tokenize.COMMENT:
            return text[: token.start[1]].rstrip()
    return text


def parse_line(line: object) -> ast.AST | None:
    """A syntax tree for one recorded source line, or None if it is not Python on its own."""
    if not isinstance(line, str) or not line.strip() or len(line) > _MAX_SOURCE:
        return None
    text = strip_comment(line)
    for candidate in _candidates(text):
        try:
            return ast.parse(candidate)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
    return None


def _candidates(text: str) -> list[str]:
    out = [text, "async def _():\n    " + text]
    if text.endswith(":"):
        head = text[:-1]
        if head.startswith("elif "):
            head = head[2:]
        out.append("async def _():\n    " + head + ":\n        pass")
        for keyword in ("if ", "while ", "with ", "except "):
            if head.startswith(keyword):
                out.append(head[len(keyword):])
    # a line cut from a longer expression: close what it opened
    opened = sum(text.count(c) for c in "([{") - sum(text.count(c) for c in ")]}")
    if 0 < opened <= 10:
        out.append(text.rstrip(",") + ")" * opened)
    return out


def names_in(line: object) -> list[str]:
    """Variable names the line reads or writes, in order of first appearance."""
    tree = parse_line(line)
    if tree is None:
        return []
    seen: dict[str, None] = {}
    for node in walk_in_order(tree):
        if isinstance(node, ast.Name) and node.id != "_":
            seen.setdefault(node.id, None)
    return list(seen)


def walk_in_order(tree: ast.AST) -> list[ast.AST]:
    """Every node, depth first in source order (``ast.walk`` is breadth first)."""
    out: list[ast.AST] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        out.append(node)
        stack.extend(reversed(list(ast.iter_child_nodes(node))))
    return out


def text_of(node: ast.AST) -> str:
    """The source text of ``node`` as ``ast.unparse`` writes it."""
    try:
        return ast.unparse(node)
    except (ValueError, TypeError, AttributeError, RecursionError):
        return "?"


def statement_text(line: object) -> str:
    """The line as shown after ``at func:12 ->``: stripped, without its comment."""
    if not isinstance(line, str):
        return ""
    return strip_comment(line)
