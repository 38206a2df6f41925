"""Redaction at capture: secret-looking names and values never reach a sink."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Final, final

DEFAULT_SECRET_WORDS: Final = (
    "password", "passwd", "passphrase", "secret", "token", "apikey", "api_key", "api-key",
    "authorization", "credential", "bearer", "session", "cookie", "csrf", "private_key",
    "privatekey", "access_key", "signature", "x-api-key",
)
DEFAULT_SECRET_NAMES: Final = ("auth", "pwd", "pass", "sid", "ssn", "cvv", "cvc", "pin")


@final
class Redaction:
    """Which keys and values are secret. ``Redaction.off()`` turns it off, explicitly."""

    __slots__ = ("_is_secret", "enabled", "names", "patterns", "words")

    def __init__(
        self,
        keys: Iterable[str] = (),
        patterns: Iterable[str | re.Pattern[str]] = (),
        *,
        defaults: bool = True,
        enabled: bool = True,
    ) -> None:
        extra = tuple(key.lower() for key in keys)
        self.enabled = enabled
        self.words: tuple[str, ...] = (DEFAULT_SECRET_WORDS if defaults else ()) + extra
        self.names: frozenset[str] = frozenset(DEFAULT_SECRET_NAMES if defaults else ()) | set(
            extra
        )
        self.patterns: tuple[re.Pattern[str], ...] = tuple(
            re.compile(p) if isinstance(p, str) else p for p in patterns
        )
        self._is_secret = functools.lru_cache(maxsize=4096)(self._judge)

    @classmethod
    def off(cls) -> Redaction:
        """No redaction at all (say so explicitly; the default is on)."""
        return cls(defaults=False, enabled=False)

    def is_secret_key(self, key: str) -> bool:
        """Whether values stored under ``key`` must be redacted."""
        if not self.enabled:
            return False
        return self._is_secret(key)

    def _judge(self, key: str) -> bool:
        lowered = key.lower()
        if lowered in self.names:
            return True
        if any(word in lowered for word in self.words):
            return True
        return any(pattern.search(key) for pattern in self.patterns)


DEFAULT_REDACTION: Final = Redaction()
