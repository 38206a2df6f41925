"""Which keys hold secrets, and the user's own patterns.

A key is secret when its lower-cased name *is* one of :data:`SECRET_NAMES`
or *contains* one of :data:`SECRET_WORDS` (so ``X-Api-Key``, ``db_password``
and ``session_id`` are all secret). ``replay_redact_keys`` adds words;
``replay_redact_patterns`` adds regular expressions whose every match in any
value is tokenized.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Final, final

from pytest_replay.capture.redact import DEFAULT_SECRET_NAMES, DEFAULT_SECRET_WORDS

SECRET_WORDS: Final = DEFAULT_SECRET_WORDS
SECRET_NAMES: Final = DEFAULT_SECRET_NAMES


class RuleError(ValueError):
    """A custom pattern that does not compile; names the pattern."""


@final
class Rules:
    """Secret key names plus custom patterns, fixed for one run."""

    __slots__ = ("_is_secret", "names", "patterns", "words")

    def __init__(self, extra_keys: Iterable[str] = (), patterns: Iterable[str] = ()) -> None:
        extra = tuple(key.strip().lower() for key in extra_keys if key.strip())
        self.words: tuple[str, ...] = SECRET_WORDS + extra
        self.names: frozenset[str] = frozenset(SECRET_NAMES) | frozenset(extra)
        compiled: list[re.Pattern[str]] = []
        for text in patterns:
            try:
                compiled.append(re.compile(text))
            except re.error as exc:
                raise RuleError(f"replay_redact_patterns: {text!r} is not a valid regular "
                                f"expression: {exc}") from None
        self.patterns: tuple[re.Pattern[str], ...] = tuple(compiled)
        self._is_secret = functools.lru_cache(maxsize=8192)(self._judge)

    def is_secret_key(self, key: str) -> bool:
        """Whether values stored under ``key`` are secrets, whatever they look like."""
        return self._is_secret(key)

    def _judge(self, key: str) -> bool:
        lowered = key.lower()
        if lowered in self.names:
            return True
        return any(word in lowered for word in self.words)
