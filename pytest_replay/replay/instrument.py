"""Observe every call inside the targets during a replay, decorated or not.

Undecorated functions of the target modules (and their classes' methods) are
wrapped with the very same ``@traced`` wrapper capture uses, for the length
of one replay, then restored. The names of the functions so observed are
handed to comparison, which tells their calls from calls production recorded
itself.
"""

from __future__ import annotations

import inspect
import sys
import types
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

from pytest_replay.capture.traced import TRACED_ATTRIBUTE, traced
from pytest_replay.replay.targets import TargetPolicy

Patch = tuple[Any, str, Any, Any]
"""(owner, attribute name, original value, wrapped value)."""

_CACHE_ATTRIBUTE: Final = "_replay_patches"
_WRAPPERS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
"""One observing wrapper per function, reused by every replay."""


def _patch_list(policy: TargetPolicy) -> list[Patch]:
    # Walking sys.modules on every replay costs more than the replay itself; the
    # list only changes when a module is imported, which changes its length.
    size = len(sys.modules)
    cached: tuple[int, list[Patch]] | None = getattr(policy, _CACHE_ATTRIBUTE, None)
    if cached is not None and cached[0] == size:
        return cached[1]
    modules = [m for name, m in list(sys.modules.items())
               if m is not None and policy.allows_module(name)]
    patches: list[Patch] = []
    seen: set[int] = set()
    for module in modules:
        for attr, value in list(vars(module).items()):
            _consider(policy, module, attr, value, patches, seen)
            if isinstance(value, type) and policy.allows_module(getattr(value, "__module__", "")):
                for member, raw in list(vars(value).items()):
                    _consider(policy, value, member, raw, patches, seen, in_class=True)
    setattr(policy, _CACHE_ATTRIBUTE, (size, patches))
    return patches


def _consider(policy: TargetPolicy, owner: Any, attr: str, value: Any, patches: list[Patch],
              seen: set[int], in_class: bool = False) -> None:
    if attr.startswith("__"):
        return
    function = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
    if not inspect.isfunction(function) or getattr(function, TRACED_ATTRIBUTE, False):
        return
    if not policy.allows_module(getattr(function, "__module__", "") or ""):
        return
    code = function.__code__
    if code.co_flags & (inspect.CO_GENERATOR | inspect.CO_ASYNC_GENERATOR):
        return  # a wrapper would change nothing visible and generators are never consumed
    wrapped = _WRAPPERS.get(function)
    if wrapped is None:
        wrapped = traced(function)
        _WRAPPERS[function] = wrapped
    seen.add(id(function))
    replacement: Any = wrapped
    if in_class and isinstance(value, staticmethod):
        replacement = staticmethod(wrapped)
    elif in_class and isinstance(value, classmethod):
        replacement = classmethod(wrapped)
    patches.append((owner, attr, value, replacement))


@contextmanager
def observe_targets(policy: TargetPolicy) -> Iterator[set[str]]:
    """Swap in observing wrappers for one replay; yields the observed ``module:qualname``s."""
    patches = _patch_list(policy)
    applied: list[Patch] = []
    try:
        for owner, attr, original, replacement in patches:
            if _current(owner, attr) is not original:
                continue  # changed since we looked (monkeypatched by a test): leave it
            setattr(owner, attr, replacement)
            applied.append((owner, attr, original, replacement))
        yield {f"{o.__module__}:{o.__qualname__}" for o in
               (_function_of(original) for _owner, _attr, original, _r in applied)}
    finally:
        for owner, attr, original, _replacement in reversed(applied):
            setattr(owner, attr, original)


def _current(owner: Any, attr: str) -> Any:
    if isinstance(owner, (type, types.ModuleType)):
        return vars(owner).get(attr)
    return getattr(owner, attr, None)


def _function_of(value: Any) -> Any:
    return value.__func__ if isinstance(value, (staticmethod, classmethod)) else value


def wrapper_for(function: Any) -> Any:
    """The observing wrapper of ``function`` (itself if it is already ``@traced``)."""
    if getattr(function, TRACED_ATTRIBUTE, False):
        return function
    wrapped = _WRAPPERS.get(function)
    if wrapped is None:
        wrapped = traced(function)
        _WRAPPERS[function] = wrapped
    return wrapped
