"""``--debugger``: replay and stop in pdb where the recorded error recurs.

The debugger runs inside the replay's sandbox, so the frame it stops in holds
the replayed locals, with time frozen and outside calls served. If the error
no longer recurs, it says so and stops at the root function's return.
``PYTHONBREAKPOINT`` chooses another pdb-compatible debugger module (its
``post_mortem`` and ``Pdb``); ``PYTHONBREAKPOINT=0`` turns stopping off.
"""

from __future__ import annotations

import importlib
import inspect
import os
import types
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from pytest_replay.model import Root
from pytest_replay.replay.engine import NotReplayable, ReplayEngine, recorded_events


def debugger_module() -> Any | None:
    """The module whose ``post_mortem``/``Pdb`` to use (None when disabled)."""
    setting = os.environ.get("PYTHONBREAKPOINT", "")
    if setting == "0":
        return None
    name = setting.rsplit(".", 1)[0] if setting else "pdb"
    try:
        module = importlib.import_module(name)
    except ImportError:
        module = importlib.import_module("pdb")
    if not hasattr(module, "post_mortem"):
        module = importlib.import_module("pdb")
    return module


def debug_roots(engine: ReplayEngine, roots: Sequence[Root], out: TextIO) -> int:
    """Replay each root under the debugger; exit status 1 if any error recurred.

    A first, silent replay tells whether the recorded error recurs; the second
    runs under the debugger, stopping where it is raised or at the root's return.
    """
    recurred = False
    module = debugger_module()
    for root in roots:
        try:
            resolved, _args, _kwargs = engine.prepare(root)
        except NotReplayable as exc:
            out.write(f"{root.name}: not replayable: {exc}\n")
            recurred = True
            continue
        trial = engine.run(root)
        raises = trial.error is not None
        verdict = engine.judge(root, recorded_events(root), trial)
        out.write(f"Replaying {root.name} under the debugger (time frozen, calls served)\n")
        if root.is_incident and not raises:
            out.write(f"The recorded error no longer recurs ({verdict.message})\n")
        out.flush()
        code = inspect.unwrap(resolved.function).__code__
        if module is None:
            out.write("PYTHONBREAKPOINT=0: replaying without stopping\n")
            outcome = engine.run(root)
        elif raises:
            outcome = engine.run(root, call=_post_mortem_on_error(module, engine, out))
        else:
            outcome = engine.run(root, call=_stop_at_return(module, code, out))
        recurred = recurred or outcome.error is not None
    return 1 if recurred else 0


def _post_mortem_on_error(module: Any, engine: ReplayEngine, out: TextIO
                          ) -> Callable[[Callable[[], Any]], Any]:
    def call(invoke: Callable[[], Any]) -> Any:
        try:
            return invoke()
        except Exception as exc:
            _post_mortem(module, exc, engine, out)
            raise

    return call


def _post_mortem(module: Any, exc: BaseException, engine: ReplayEngine, out: TextIO) -> None:
    tb = exc.__traceback__
    chosen = None
    while tb is not None:
        name = tb.tb_frame.f_globals.get("__name__", "")
        if isinstance(name, str) and engine.policy.allows_module(name):
            chosen = tb
        tb = tb.tb_next
    out.write(f"The recorded error recurs: {type(exc).__name__}: {exc}\n")
    if chosen is None:
        out.write("(it is raised outside replay_targets; stopping at the innermost frame)\n")
        chosen = exc.__traceback__
    else:
        chosen.tb_next = None  # stop in the target's frame, not inside a library
        out.write(f"Stopping in {chosen.tb_frame.f_code.co_name} at line {chosen.tb_lineno}: "
                  "inspect the replayed locals (p name), q to quit\n")
    out.flush()
    module.post_mortem(chosen)


def _stop_at_return(module: Any, code: types.CodeType, out: TextIO
                    ) -> Callable[[Callable[[], Any]], Any]:
    def call(invoke: Callable[[], Any]) -> Any:
        out.write(f"Stopping at the return of {code.co_name}: inspect the replayed locals "
                  "(p name), c to continue\n")
        out.flush()
        debugger_class = getattr(module, "Pdb", None)
        if debugger_class is None:
            return invoke()
        debugger = debugger_class()
        # Run to the first line of the root function, then to its return.
        debugger.rcLines.extend([f"break {code.co_filename}:{_first_body_line(code)}",
                                 "continue", "return"])
        return debugger.runcall(invoke)

    return call


def _first_body_line(code: types.CodeType) -> int:
    lines = [line for _start, _end, line in code.co_lines() if line is not None]
    body = [line for line in lines if line > code.co_firstlineno]
    return min(body) if body else code.co_firstlineno
