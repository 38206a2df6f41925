"""Recognising tokens, and matching a recorded value that holds some against a live one.

A redacted recording says ``GET /users?email=<email:3f2a9c1b>``; at replay
the code may send the token (when the e-mail came from the redacted
arguments) or the real value (when it came from configuration or a
constant). :func:`matches` accepts both: each token stands for "some value",
and the same token twice for the same value twice. Percent-encoded tokens
(``%3Cemail%3A3f2a9c1b%3E``, as a token looks inside a query string) count too.
"""

from __future__ import annotations

import functools
import re
from typing import Final

TOKEN_TEXT: Final = r"<[a-z0-9_]+:[0-9a-f]{8}>"  # noqa: S105 - a pattern, not a secret
TOKEN: Final = re.compile(rf"^{TOKEN_TEXT}$")
"""A whole string that is one token."""
_ANY_TOKEN: Final = re.compile(rf"{TOKEN_TEXT}|%3[Cc][a-z0-9_]+%3[Aa][0-9a-f]{{8}}%3[Ee]")


def has_tokens(text: str) -> bool:
    """Whether ``text`` holds a token (raw or percent-encoded)."""
    return _ANY_TOKEN.search(text) is not None


@functools.lru_cache(maxsize=1024)
def as_pattern(recorded: str) -> re.Pattern[str]:
    """A regular expression matching what ``recorded`` may have been before redaction."""
    parts: list[str] = []
    names: dict[str, str] = {}
    last = 0
    for match in _ANY_TOKEN.finditer(recorded):
        parts.append(re.escape(recorded[last : match.start()]))
        token = _decoded(match.group(0))
        name = names.get(token)
        if name is None:
            name = names[token] = f"t{len(names)}"
            parts.append(f"(?P<{name}>.+?)")
        else:
            parts.append(f"(?P={name})")
        last = match.end()
    parts.append(re.escape(recorded[last:]))
    return re.compile("".join(parts), re.DOTALL)


def matches(recorded: str, live: str) -> bool:
    """Whether ``live`` agrees with ``recorded``, each token of which stands for a value."""
    if recorded == live:
        return True
    if not has_tokens(recorded):
        return False
    return as_pattern(recorded).fullmatch(live) is not None


def _decoded(token: str) -> str:
    if token.startswith("<"):
        return token
    return "<" + token[3:].replace("%3A", ":").replace("%3a", ":")[:-3] + ">"
