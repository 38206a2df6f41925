"""How output looks on this stream: colour and Unicode glyphs, or plain ASCII.

A terminal that asked for nothing gets the seed's look (tree lines, emoji,
colour). A pipe, a file, ``NO_COLOR`` or an encoding that cannot print the
glyphs gets plain ASCII, so logs, CI output and ``grep`` stay readable.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, TextIO

# name -> (unicode, ascii)
_GLYPHS: Final[dict[str, tuple[str, str]]] = {
    "branch": ("├─ ", "|- "),
    "last": ("└─ ", "`- "),
    "pipe": ("│  ", "|  "),
    "space": ("   ", "   "),
    "arrow": ("→", "->"),
    "ellipsis": ("…", "..."),
    "elided": ("⋯", "..."),
    "path": (" > ", " > "),
    # icons: the unicode form carries its own trailing space; ascii has none
    "function_entry": ("📥 ", ""),
    "function_exit": ("📤 ", ""),
    "variable_change": ("📝 ", ""),
    "loop_iteration": ("🔁 ", ""),
    "error": ("❌ ", ""),
    "context": ("🧭 ", ""),
    "http_call": ("🌐 ", ""),
    "db_call": ("🗄️ ", ""),
    "nondeterminism": ("🎲 ", ""),
    "unknown": ("❔ ", ""),
    "movie": ("🎬 ", ""),
    "clipboard": ("📋 ", ""),
    "search": ("🔍 ", ""),
    "bug": ("🐛 ", ""),
    "wrench": ("🔧 ", ""),
    "warning": ("⚠️ ", "!! "),
    "fire": ("🔥 ", ""),
    "bulb": ("💡 ", ""),
    "stopwatch": ("⏱️ ", ""),
    "ok": ("✅ ", "[ok] "),
    "fail": ("❌ ", "[FAIL] "),
    "service": ("🛰️ ", ""),
    "link": ("↪ ", ""),
}

_LINES: Final = frozenset({"branch", "last", "pipe", "space", "arrow", "ellipsis", "elided",
                           "path"})

# verdict marks a replay may put in front of a timeline line
MARKS: Final[dict[str, tuple[str, str]]] = {
    "ok": ("✅ ", "[ok] "),
    "diverged": ("≠ ", "[DIFF] "),
    "missing": ("🚫 ", "[MISSING] "),
    "extra": ("🆕 ", "[NEW] "),
    "not_compared": ("· ", "[--] "),
}

_ANSI: Final[dict[str, str]] = {
    "error": "\x1b[1;31m",
    "ok": "\x1b[32m",
    "warn": "\x1b[33m",
    "time": "\x1b[2m",
    "dim": "\x1b[2m",
    "name": "\x1b[1m",
    "value": "\x1b[36m",
    "header": "\x1b[1m",
    "service": "\x1b[1;35m",
}
_RESET: Final = "\x1b[0m"

_PROBE: Final = "├─│└→…⋯📥📤📝🔁❌🧭🌐🗄️🎬📋🔍🐛🔧⚠️✅"


@dataclass(frozen=True)
class Style:
    """Whether to use Unicode glyphs and ANSI colour; everything else is the same."""

    unicode: bool = False
    color: bool = False
    emoji: bool = True
    """With ``unicode``: emoji icons (off: tree lines and arrows, but words for icons)."""

    @property
    def icons(self) -> bool:
        """Whether events get emoji icons (else the ASCII words: ``HTTP``, ``LOOP``, ...)."""
        return self.unicode and self.emoji

    @classmethod
    def plain(cls) -> Style:
        """ASCII, no colour: pipes, files, CI logs, failure reports."""
        return cls(unicode=False, color=False)

    @classmethod
    def fancy(cls) -> Style:
        """The seed's look: tree lines, emoji and colour."""
        return cls(unicode=True, color=True)

    def glyph(self, name: str) -> str:
        """The glyph ``name`` in this style (unknown names give an empty string)."""
        pair = _GLYPHS.get(name)
        if pair is None:
            return ""
        fancy = self.icons if name not in _LINES else self.unicode
        return pair[0] if fancy else pair[1]

    def icon(self, event_type: object) -> str:
        """The icon of an event type (the unknown-event icon for anything else)."""
        name = event_type if isinstance(event_type, str) and event_type in _GLYPHS else "unknown"
        return self.glyph(name)

    def mark(self, verdict: str) -> str:
        """The prefix for a replay verdict (``ok``, ``diverged``, ...); empty if unknown."""
        pair = MARKS.get(verdict)
        if pair is None:
            return f"[{verdict}] " if verdict else ""
        return pair[0] if self.icons else pair[1]

    def paint(self, text: str, role: str) -> str:
        """``text`` in the colour of ``role`` when colour is on."""
        if not self.color or not text:
            return text
        code = _ANSI.get(role)
        return f"{code}{text}{_RESET}" if code else text


def can_encode(encoding: str | None, sample: str = _PROBE) -> bool:
    """Whether ``encoding`` can print every glyph this package uses."""
    if not encoding:
        return False
    try:
        sample.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def choose_style(
    stream: TextIO | None = None,
    *,
    no_color: bool = False,
    environ: Mapping[str, str] | None = None,
) -> Style:
    """Pick the style for ``stream`` (default: stdout).

    Colour and Unicode only on a TTY with ``NO_COLOR`` unset (see
    no-color.org: set and non-empty means off) and ``TERM`` not ``dumb``;
    Unicode only when the stream's encoding can print the glyphs. ``no_color``
    (the ``--no-color`` option) always gives plain ASCII.
    """
    env = os.environ if environ is None else environ
    target = sys.stdout if stream is None else stream
    if no_color or env.get("NO_COLOR", "") != "" or env.get("TERM") == "dumb":
        return Style.plain()
    if not _isatty(target):
        return Style.plain()
    return Style(unicode=can_encode(getattr(target, "encoding", None)), color=True)


def _isatty(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    if not callable(isatty):
        return False
    try:
        return bool(isatty())
    except (OSError, ValueError):  # closed or detached streams are not terminals
        return False
