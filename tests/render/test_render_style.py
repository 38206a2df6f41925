"""Choosing colour and Unicode: on a real terminal (a pty), a pipe, NO_COLOR, --no-color."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator

import pytest

from pytest_replay.render.style import Style, can_encode, choose_style


@pytest.fixture
def tty() -> Iterator[io.TextIOWrapper]:
    """A real pseudo-terminal, wrapped as a UTF-8 text stream."""
    leader, follower = os.openpty()
    stream = io.TextIOWrapper(io.FileIO(follower, "w"), encoding="utf-8")
    try:
        yield stream
    finally:
        stream.close()
        os.close(leader)


@pytest.fixture
def pipe() -> Iterator[io.TextIOWrapper]:
    """The write end of a real pipe, as a UTF-8 text stream."""
    reader, writer = os.pipe()
    stream = io.TextIOWrapper(io.FileIO(writer, "w"), encoding="utf-8")
    try:
        yield stream
    finally:
        stream.close()
        os.close(reader)


def test_terminal_gets_colour_and_unicode(tty: io.TextIOWrapper) -> None:
    assert choose_style(tty, environ={}) == Style(unicode=True, color=True)


def test_pipe_gets_plain_ascii(pipe: io.TextIOWrapper) -> None:
    assert choose_style(pipe, environ={}) == Style.plain()


def test_no_color_env_gives_plain_even_on_a_terminal(tty: io.TextIOWrapper) -> None:
    assert choose_style(tty, environ={"NO_COLOR": "1"}) == Style.plain()
    # no-color.org: an empty value does not count as set
    assert choose_style(tty, environ={"NO_COLOR": ""}).color


def test_no_color_option_and_dumb_terminal(tty: io.TextIOWrapper) -> None:
    assert choose_style(tty, no_color=True, environ={}) == Style.plain()
    assert choose_style(tty, environ={"TERM": "dumb"}) == Style.plain()


def test_terminal_that_cannot_print_glyphs_keeps_colour_but_not_unicode() -> None:
    leader, follower = os.openpty()
    stream = io.TextIOWrapper(io.FileIO(follower, "w"), encoding="ascii")
    try:
        assert choose_style(stream, environ={}) == Style(unicode=False, color=True)
    finally:
        stream.close()
        os.close(leader)


def test_closed_or_odd_streams_are_not_terminals(tty: io.TextIOWrapper) -> None:
    assert choose_style(io.StringIO(), environ={}) == Style.plain()

    class NoIsatty:
        encoding = "utf-8"

    assert choose_style(NoIsatty(), environ={}) == Style.plain()  # type: ignore[arg-type]


def test_can_encode() -> None:
    assert can_encode("utf-8")
    assert not can_encode("ascii")
    assert not can_encode("no-such-codec")
    assert not can_encode(None)


def test_glyphs_icons_marks_and_paint() -> None:
    fancy, plain = Style.fancy(), Style.plain()
    assert fancy.glyph("branch") == "├─ " and plain.glyph("branch") == "|- "
    assert fancy.glyph("last") == "└─ " and plain.glyph("last") == "`- "
    assert fancy.icon("function_entry") == "📥 " and plain.icon("function_entry") == ""
    assert fancy.icon("no such type") == fancy.icon("unknown")
    assert fancy.icon(None) == fancy.icon("unknown")
    assert plain.mark("diverged") == "[DIFF] " and plain.mark("") == ""
    assert plain.mark("weird") == "[weird] "
    assert fancy.paint("x", "error") == "\x1b[1;31mx\x1b[0m"
    assert plain.paint("x", "error") == "x"
    assert fancy.paint("x", "no-such-role") == "x"
    assert fancy.glyph("nope") == ""


def test_unicode_without_emoji_keeps_lines_but_uses_words() -> None:
    style = Style(unicode=True, color=False, emoji=False)
    assert style.glyph("branch") == "├─ "
    assert style.icon("function_entry") == ""
    assert not style.icons
