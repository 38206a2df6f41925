"""What to extract: the filters, combined with AND, each one judged per request.

Several values given to one filter (``--user-id 1 --user-id 2``) mean any
of them. A filter that matches one event of a request selects the whole
request (its complete call tree).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Status = Literal["error", "ok"]


@dataclass(frozen=True)
class Criteria:
    """The selection of one run; an empty one selects every request."""

    correlation_ids: tuple[str, ...] = ()
    trace_ids: tuple[str, ...] = ()
    pattern: re.Pattern[bytes] | None = None
    error: bool = False
    status: Status | None = None
    since_ns: int | None = None
    until_ns: int | None = None
    min_duration_ns: int | None = None
    user_ids: tuple[str, ...] = ()
    variants: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    functions: tuple[str, ...] = ()
    limit: int | None = None

    @property
    def by_id(self) -> bool:
        """Whether ids drive the selection (the fast path: scan for the ids only)."""
        return bool(self.correlation_ids or self.trace_ids)

    @property
    def only_ids(self) -> bool:
        """Whether one kind of id (and a limit) is all there is: what it finds needs no judging."""
        if self.correlation_ids and self.trace_ids:
            return False
        return self.by_id and self == Criteria(correlation_ids=self.correlation_ids,
                                               trace_ids=self.trace_ids, limit=self.limit)

    @property
    def timed(self) -> bool:
        """Whether the request's start time is filtered."""
        return self.since_ns is not None or self.until_ns is not None

    def describe(self) -> str:
        """The filters in command-line form, for messages."""
        parts: list[str] = []
        parts += [f"--correlation-id {value}" for value in self.correlation_ids]
        parts += [f"--trace-id {value}" for value in self.trace_ids]
        if self.pattern is not None:
            parts.append(f"--pattern {self.pattern.pattern.decode('utf-8', 'replace')!r}")
        if self.error:
            parts.append("--error")
        if self.status is not None:
            parts.append(f"--status {self.status}")
        if self.timed:
            parts.append("--since/--until")
        if self.min_duration_ns is not None:
            parts.append(f"--min-duration {self.min_duration_ns}ns")
        parts += [f"--user-id {value}" for value in self.user_ids]
        parts += [f"--variant {value}" for value in self.variants]
        parts += [f"--service {value}" for value in self.services]
        parts += [f"--function {value}" for value in self.functions]
        if self.limit is not None:
            parts.append(f"--limit {self.limit}")
        return " ".join(parts) or "(every request)"


def compile_pattern(text: str) -> re.Pattern[bytes]:
    """A user's regex, over raw line bytes; ``^``/``$`` anchor at line ends."""
    return re.compile(text.encode("utf-8"), re.MULTILINE)
