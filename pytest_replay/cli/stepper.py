"""``--step-mode``: walk a recorded request event by event, forwards and back.

Line-oriented on purpose: it works in any real terminal, over ssh, and when a
program answers its prompts (the tests drive it through a pipe).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

from pytest_replay.format import events as ev
from pytest_replay.format.reader import LineEvent
from pytest_replay.model import Root
from pytest_replay.render.eventtext import describe
from pytest_replay.render.style import Style
from pytest_replay.replay.describe import short_value

HELP = ("commands: [Enter]/n next, b back, e next error, l locals, d details, "
        "g N go to event N, q quit, h help")


def step_through(roots: Sequence[Root], stdin: TextIO, out: TextIO, style: Style, *,
                 verbose: bool = False) -> int:
    """Run the interactive walk over every root's events; returns the exit status 0."""
    events = [item for root in roots for item in root.events]
    paths = _paths(roots)
    out.write(f"Step mode: {len(events)} events in {len(roots)} request(s). {HELP}\n")
    position = 0
    detail = verbose
    _show(events, paths, position, out, style, detail)
    while True:
        out.write("step> ")
        out.flush()
        line = stdin.readline()
        if not line:
            out.write("\n")
            return 0
        command, _, argument = line.strip().partition(" ")
        if command in ("q", "quit", "exit"):
            return 0
        if command in ("", "n", "next"):
            if position + 1 >= len(events):
                out.write("(end of the recording)\n")
                continue
            position += 1
        elif command in ("b", "back"):
            if position == 0:
                out.write("(start of the recording)\n")
                continue
            position -= 1
        elif command in ("e", "error"):
            found = next((i for i in range(position + 1, len(events))
                          if events[i].event.get("event_type") == ev.ERROR), None)
            if found is None:
                found = next((i for i in range(len(events))
                              if events[i].event.get("event_type") == ev.ERROR), None)
            if found is None:
                out.write("(no error in this recording)\n")
                continue
            position = found
        elif command in ("l", "locals"):
            _locals(events[position].event, out)
            continue
        elif command in ("d", "details"):
            detail = not detail
        elif command in ("g", "go"):
            if not argument.isdigit() or not 1 <= int(argument) <= len(events):
                out.write(f"(go to a number between 1 and {len(events)})\n")
                continue
            position = int(argument) - 1
        elif command in ("h", "help", "?"):
            out.write(HELP + "\n")
            continue
        else:
            out.write(f"(unknown command {command!r}) {HELP}\n")
            continue
        _show(events, paths, position, out, style, detail)


def _paths(roots: Sequence[Root]) -> dict[int, str]:
    paths: dict[int, str] = {}
    for root in roots:
        for frame in root.frame.walk():
            where = " > ".join(frame.path)
            for item in (frame.entry, *frame.events, *(x for x in [frame.exit] if x)):
                paths[id(item)] = where
    return paths


def _show(events: Sequence[LineEvent], paths: dict[int, str], position: int, out: TextIO,
          style: Style, detail: bool) -> None:
    item = events[position]
    described = describe(item.event, style, verbose=detail)
    where = paths.get(id(item), "")
    out.write(f"[{position + 1}/{len(events)}] {described.text}   "
              f"({where}; trace line {item.line})\n")
    for extra in described.details:
        out.write(f"      {extra}\n")


def _locals(event: dict[str, object], out: TextIO) -> None:
    values = event.get("locals") or event.get("args")
    if not isinstance(values, dict) or not values:
        out.write("(this event recorded no locals or arguments)\n")
        return
    for name, value in values.items():
        out.write(f"  {name} = {short_value(value, 100)}\n")
