"""Watch locals a recording names, in code that never reported them itself.

Traces from other emitters (the seed's ``SET tax_rate = 0.08``) record
variable changes the current code does not emit. During replay, frames of the
functions those events belong to are line-traced and each watched local is
reported when its value changes, marked ``"observed": true``.
"""

from __future__ import annotations

import sys
import time
import types
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

from pytest_replay.capture.runtime import RUNTIME, current_ids
from pytest_replay.format import events as ev

_UNSET: Final = object()
TraceFunction = Any


@contextmanager
def watch_variables(watched: Mapping[str, frozenset[str]]) -> Iterator[set[tuple[str, str]]]:
    """Report changes of ``watched[function_name]`` variables while the block runs.

    Yields the ``(function, name)`` pairs that cannot be observed (neither a
    local nor a global of that function): comparison leaves those out.
    """
    unobservable: set[tuple[str, str]] = set()
    if not watched:
        yield unobservable
        return
    previous = sys.gettrace()

    def global_trace(frame: types.FrameType, event: str, _arg: Any) -> TraceFunction:
        if event != "call":
            return None
        code = frame.f_code
        names = watched.get(code.co_name)
        if not names:
            return None
        known = {*code.co_varnames, *code.co_cellvars, *code.co_freevars, *frame.f_globals}
        unobservable.update((code.co_name, n) for n in names if n not in known)
        seen: dict[str, Any] = {}

        def local_trace(frame: types.FrameType, event: str, _arg: Any) -> TraceFunction:
            if event in ("line", "return"):
                _report_changes(frame, names, seen)
            return local_trace

        return local_trace

    sys.settrace(global_trace)
    try:
        yield unobservable
    finally:
        sys.settrace(previous)


def _report_changes(frame: types.FrameType, names: frozenset[str], seen: dict[str, Any]) -> None:
    local_values = frame.f_locals
    for name in names:
        value = local_values.get(name, _UNSET)
        if value is _UNSET:
            value = frame.f_globals.get(name, _UNSET)
        if value is _UNSET:
            continue
        encoded = RUNTIME.encode_named({name: value})[name]
        if seen.get(name, _UNSET) == encoded:
            continue
        seen[name] = encoded
        cid, _trace = current_ids()
        RUNTIME.emit({
            "event_type": ev.VARIABLE_CHANGE,
            "timestamp_ns": time.time_ns(),
            "correlation_id": cid,
            "variable_name": name,
            "value": encoded,
            "observed": True,
        })
