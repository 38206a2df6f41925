"""Which callables a trace may make replay import and call: only those inside the targets.

The decision is taken on the *resolved object* (where it was defined), never
on what the trace says about itself, so ``mymod.os.system`` or a target
module's ``from subprocess import run`` are refused like ``os.system``.
Nothing is imported unless its module name is inside ``replay_targets``.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, final

from pytest_replay.format.events import Event

_PRIVATE_PARTS: Final = frozenset({"<locals>", "<lambda>"})


class ReplayRefused(Exception):
    """A trace asked for something replay will not import or call."""


@dataclass(frozen=True)
class ResolvedCall:
    """The function to call, and the class whose method it is (to rebuild ``self``)."""

    function: Callable[..., Any]
    owner: type | None
    name: str
    class_method: bool = False
    """Whether ``function`` is a classmethod's function (its first argument is the class)."""


@final
class _Lookup:
    """How a ``module:qualname`` was found: the module, then each ``(namespace, name, value)``.

    Only lookups that found each name in the namespace's own ``__dict__`` are
    kept (the usual case: module functions, methods of the class itself), so
    that checking the same objects are still there tells the whole story.
    """

    __slots__ = ("cacheable", "found", "module_name", "module_object")

    def __init__(self) -> None:
        self.module_name = ""
        self.module_object: Any = None
        self.found: list[tuple[Any, str, Any]] = []
        self.cacheable = True

    def module(self, name: str, module: Any) -> None:
        """The module imported for the path."""
        self.module_name, self.module_object = name, module

    def step(self, namespace: Any, name: str, value: Any) -> None:
        """``name`` looked up in ``namespace`` gave ``value``."""
        own = getattr(namespace, "__dict__", None)
        if not isinstance(own, Mapping) or own.get(name, _ABSENT) is not value:
            self.cacheable = False  # inherited, or served by a descriptor: look up each time
        self.found.append((own, name, value))

    def holds(self) -> bool:
        """Whether the same module is imported and each name still holds the same object."""
        return sys.modules.get(self.module_name) is self.module_object and all(
            own.get(name, _ABSENT) is value for own, name, value in self.found)


_ABSENT: Final = object()


@final
class TargetPolicy:
    """The allow-list of packages whose code replay may import and call."""

    def __init__(self, targets: tuple[str, ...], allowed_types: tuple[str, ...] = ()) -> None:
        self.targets = targets
        self.allowed_types = frozenset(allowed_types)
        self._index: dict[str, list[ResolvedCall]] | None = None
        self._paths: dict[tuple[str, str], tuple[_Lookup, ResolvedCall]] = {}
        """``(module, qualname)`` -> how it was found, and what it resolved to."""
        self.skipped_modules: list[str] = []
        """Target modules that failed to import while looking up a bare function name."""

    # -- names ---------------------------------------------------------------------------

    def allows_module(self, module: str) -> bool:
        """Whether ``module`` is one of the targets or inside one of them."""
        return any(module == t or module.startswith(t + ".") for t in self.targets)

    def _check_module_name(self, module: str, what: str) -> None:
        parts = module.split(".")
        if not all(part.isidentifier() for part in parts):
            raise ReplayRefused(f"{what}: {module!r} is not a module name")
        if any(part.startswith("__") for part in parts):
            raise ReplayRefused(f"{what}: dunder module paths are never replayed ({module!r})")
        if not self.targets:
            raise ReplayRefused(
                f"{what}: no replay_targets configured; add the package that holds "
                f"{module!r} to replay_targets in pyproject.toml [tool.pytest.ini_options]"
            )
        if not self.allows_module(module):
            raise ReplayRefused(
                f"{what}: module {module!r} is outside replay_targets "
                f"({', '.join(self.targets)}); refusing to import it"
            )

    def _import(self, module: str, what: str) -> types.ModuleType:
        self._check_module_name(module, what)
        try:
            return importlib.import_module(module)
        except ImportError as exc:
            raise ReplayRefused(f"{what}: cannot import {module!r}: {exc}") from exc

    def _defined_inside(self, obj: Any) -> bool:
        unwrapped = inspect.unwrap(obj) if callable(obj) else obj
        module = getattr(unwrapped, "__module__", None)
        return isinstance(module, str) and self.allows_module(module)

    # -- callables -----------------------------------------------------------------------

    def resolve_call(self, entry: Event) -> ResolvedCall:
        """The callable a ``function_entry`` names, or :class:`ReplayRefused` saying why."""
        module = entry.get("module")
        qualname = entry.get("qualname")
        name = entry.get("function_name")
        if isinstance(module, str) and module:
            path = qualname if isinstance(qualname, str) and qualname else name
            if not isinstance(path, str) or not path:
                raise ReplayRefused("function_entry has a module but no qualname/function_name")
            return self._resolve_path(module, path)
        if isinstance(name, str) and name:
            return self._resolve_bare(name)
        raise ReplayRefused("function_entry names no function (function_name/qualname missing)")

    def _resolve_path(self, module: str, qualname: str) -> ResolvedCall:
        """Resolve ``module:qualname``; a path resolved before is only checked again.

        The lookup is kept while every namespace on the way holds the very
        objects it held (a rebound or deleted name, or a module imported
        again, means a new lookup); the object found is judged again on every
        call, so the policy applies to what is called now.
        """
        cached = self._paths.get((module, qualname))
        if cached is not None and cached[0].holds():
            resolved = cached[1]
            self._checked(resolved.function, resolved.owner, resolved.name)
            return resolved
        lookup = _Lookup()
        resolved = self._look_up(module, qualname, lookup)
        if lookup.cacheable:
            self._paths[(module, qualname)] = (lookup, resolved)
        return resolved

    def _look_up(self, module: str, qualname: str, lookup: _Lookup) -> ResolvedCall:
        what = f"{module}:{qualname}"
        parts = qualname.split(".")
        for part in parts:
            if part in _PRIVATE_PARTS:
                raise ReplayRefused(f"{what}: nested functions and lambdas cannot be called "
                                    "directly; replay their enclosing function instead")
            if not part.isidentifier():
                raise ReplayRefused(f"{what}: {part!r} is not an attribute name")
            if part.startswith("__") and part.endswith("__"):
                raise ReplayRefused(f"{what}: dunder attribute paths are never replayed")
        obj: Any = self._import(module, what)
        lookup.module(module, obj)
        owner: type | None = None
        class_method = False
        for index, part in enumerate(parts):
            try:
                attribute = inspect.getattr_static(obj, part)
            except AttributeError:
                raise ReplayRefused(f"{what}: {part!r} not found") from None
            lookup.step(obj, part, attribute)
            if isinstance(attribute, (staticmethod, classmethod)):
                class_method = isinstance(attribute, classmethod)
                attribute = attribute.__func__
            if isinstance(attribute, types.ModuleType):
                raise ReplayRefused(f"{what}: {part!r} is a module ({attribute.__name__}), not a "
                                    "callable defined in replay_targets")
            if index < len(parts) - 1:
                if not isinstance(attribute, type):
                    raise ReplayRefused(f"{what}: {part!r} is not a class")
                owner = attribute
            obj = attribute
        resolved = self._checked(obj, owner, what)
        return ResolvedCall(resolved.function, resolved.owner, resolved.name, class_method)

    def _checked(self, obj: Any, owner: type | None, what: str) -> ResolvedCall:
        if owner is not None and not self._defined_inside(owner):
            raise ReplayRefused(f"{what}: class {owner.__qualname__} is defined in "
                                f"{owner.__module__!r}, outside replay_targets")
        if not (inspect.isfunction(obj) or inspect.isfunction(inspect.unwrap(obj))):
            kind = type(obj).__name__
            raise ReplayRefused(f"{what}: resolves to a {kind}, not a Python function defined "
                                "in replay_targets")
        if not self._defined_inside(obj):
            origin = getattr(inspect.unwrap(obj), "__module__", "?")
            raise ReplayRefused(f"{what}: resolves to a function defined in {origin!r}, outside "
                                f"replay_targets ({', '.join(self.targets)})")
        return ResolvedCall(obj, owner, what)

    def _resolve_bare(self, name: str) -> ResolvedCall:
        if not name.isidentifier() or name.startswith("__"):
            raise ReplayRefused(f"function_name {name!r} is not a plain function name")
        index = self._function_index()
        candidates = index.get(name, [])
        if not candidates:
            raise ReplayRefused(
                f"function {name!r} is not defined in replay_targets "
                f"({', '.join(self.targets) or 'none configured'})"
            )
        if len(candidates) > 1:
            listed = ", ".join(sorted(c.name for c in candidates))
            raise ReplayRefused(f"function {name!r} is ambiguous in replay_targets: {listed}; "
                                "record module and qualname to choose")
        return candidates[0]

    def _function_index(self) -> dict[str, list[ResolvedCall]]:
        if self._index is not None:
            return self._index
        index: dict[str, list[ResolvedCall]] = {}
        for module in self._target_modules():
            for attr, value in vars(module).items():
                self._index_value(index, module.__name__, attr, value, None)
                if isinstance(value, type) and getattr(value, "__module__", "") == module.__name__:
                    for member, raw in vars(value).items():
                        self._index_value(index, module.__name__, f"{attr}.{member}", raw, value)
        self._index = index
        return index

    def _index_value(self, index: dict[str, list[ResolvedCall]], module: str, path: str,
                     value: Any, owner: type | None) -> None:
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if not callable(value) or not inspect.isfunction(inspect.unwrap(value)):
            return
        if getattr(inspect.unwrap(value), "__module__", None) != module:
            return
        short = path.rsplit(".", 1)[-1]
        if short.startswith("__"):
            return
        index.setdefault(short, []).append(ResolvedCall(value, owner, f"{module}:{path}"))

    def _target_modules(self) -> list[types.ModuleType]:
        modules: list[types.ModuleType] = []
        for target in self.targets:
            root = self._import(target, f"replay_targets entry {target!r}")
            modules.append(root)
            search = getattr(root, "__path__", None)
            if search is None:
                continue
            for info in pkgutil.walk_packages(search, prefix=f"{target}.",
                                              onerror=self._skip_package):
                if any(part.startswith("_") for part in info.name.split(".")[1:]):
                    continue
                try:
                    modules.append(importlib.import_module(info.name))
                except Exception as exc:  # an unimportable sibling must not block the others
                    self.skipped_modules.append(f"{info.name}: {type(exc).__name__}: {exc}")
        return modules

    def _skip_package(self, name: str) -> None:
        """``walk_packages`` could not import ``name``: note it, keep looking elsewhere."""
        error = sys.exc_info()[1]
        self.skipped_modules.append(f"{name}: {type(error).__name__}: {error}")

    # -- classes for decoding ------------------------------------------------------------

    def resolve_class(self, name: str) -> type | None:
        """The class a tagged value names (``module:Qual``), if allowed; else None."""
        module, _, qualname = name.partition(":")
        if not module or not qualname:
            return None
        if not (self.allows_module(module) or name in self.allowed_types):
            return None
        if any(not p.isidentifier() or p.startswith("__") for p in (*module.split("."),
                                                                    *qualname.split("."))):
            return None
        loaded = sys.modules.get(module)
        if loaded is None:
            try:
                loaded = importlib.import_module(module)
            except ImportError:
                return None
        obj: Any = loaded
        for part in qualname.split("."):
            try:
                obj = inspect.getattr_static(obj, part)
            except AttributeError:
                return None
        if not isinstance(obj, type):
            return None
        if name not in self.allowed_types and not self._defined_inside(obj):
            return None
        return obj
