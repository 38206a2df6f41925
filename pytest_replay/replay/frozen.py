"""Freeze the wall clock for one replay with freezegun, at a fraction of freezegun's own cost.

freezegun finds every alias of a clock function (``from time import time``)
by listing every loaded module on each start (a ``dir()`` per module), and at
stop lists every module imported meanwhile. Replay freezes time once per
item, so this module shows freezegun only what matters: at start the modules
that hold a wall-clock function (monotonic clocks stay real during a replay,
and so does capture's own clock, whose timestamps replay never compares),
found from an index that looks again only at new or grown modules; at stop
the modules imported while frozen, found by identity. freezegun still does
every patch and every undo itself.
"""

from __future__ import annotations

import datetime as _dt
import sys
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final, final


@contextmanager
def frozen_time(moment: _dt.datetime | None) -> Iterator[None]:
    """Freeze the wall clock at ``moment`` (freezegun); monotonic clocks keep running.

    ``time.time()``/``datetime.now()`` return the recorded instant on every
    call, so replays are deterministic; ``time.monotonic()``/``perf_counter()``
    stay real, so timeouts, retry loops and ``asyncio.sleep`` still work.
    """
    if moment is None:
        yield
        return
    from freezegun import api as freezegun_api
    from freezegun import freeze_time

    # No real_asyncio: it makes and closes an event loop on every start to learn the
    # loop's class, and the loop's clock is time.monotonic, which stays real here anyway.
    freezer = freeze_time(moment, tick=False)
    scan = _Scan.of(freezegun_api)
    with _cheaper_module_scan(freezegun_api), _showing(
            freezegun_api, scan.clocks if scan is not None else None):
        freezer.start()
    if scan is None:  # another freezegun: it undoes, at stop, the modules imported meanwhile
        freezer.modules_at_start = set(sys.modules)
    try:
        _unfreeze_monotonic(freezer, freezegun_api)
        yield
    finally:
        if scan is None:
            freezer.stop()
        else:
            # freezegun puts the real functions back into the modules imported while
            # frozen, by name against modules_at_start: it is shown exactly those.
            freezer.modules_at_start = set()
            with _showing(freezegun_api, scan.imported_since()):
                freezer.stop()


# -- what freezegun's start and stop get to see --------------------------------------------


class _ModulesView:
    """freezegun's ``sys`` while it starts or stops: ``modules`` holds only what it should
    visit, so its loops see a few dozen modules, not a thousand."""

    def __init__(self, modules: dict[str, Any]) -> None:
        self.modules = modules

    def __getattr__(self, name: str) -> Any:
        return getattr(sys, name)


@final
class _Scan:
    """One freeze's view of ``sys.modules``: the modules at start and the clock holders."""

    __slots__ = ("clocks", "loaded")

    def __init__(self, loaded: list[Any], clocks: dict[str, Any]) -> None:
        self.loaded = loaded
        """Every module at start (held strongly while frozen: identities stay unique)."""
        self.clocks = clocks
        """The loaded modules holding a real wall-clock function, by name."""

    @classmethod
    def of(cls, api: Any) -> _Scan | None:
        """The scan for freezegun ``api``, or None for a freezegun this does not know."""
        wall_ids = _wall_clock_ids(api)
        if wall_ids is None or getattr(api, "sys", None) is not sys:
            return None
        loaded = list(sys.modules.values())
        return cls(loaded, _clock_modules(loaded, wall_ids))

    def imported_since(self) -> dict[str, Any]:
        """Modules in ``sys.modules`` now that were not there (as these objects) at start."""
        if list(sys.modules.values()) == self.loaded:
            return {}
        before = set(map(id, self.loaded))
        return {name: module for name, module in list(sys.modules.items())
                if id(module) not in before}


@contextmanager
def _showing(api: Any, modules: dict[str, Any] | None) -> Iterator[None]:
    """freezegun sees ``modules`` as ``sys.modules`` for the block (None: the real ones)."""
    if modules is None:
        yield
        return
    api.sys = _ModulesView(modules)
    try:
        yield
    finally:
        api.sys = sys


# -- the index of clock holders ----------------------------------------------------------


def _wall_clock_ids(api: Any) -> frozenset[int] | None:
    """Identities of the real wall-clock functions freezegun replaces (None: unknown freezegun).

    Monotonic clocks are left out: replay keeps them real (see :func:`_unfreeze_monotonic`),
    so a module holding only those need not be patched and put back on every freeze.
    """
    found = _WALL_CLOCKS.get(api)
    if found is None:
        real_ids = getattr(api, "_real_time_object_ids", None)
        if real_ids is None:
            return None
        monotonic = {id(real) for real in _monotonic_clocks(api).values()}
        found = _WALL_CLOCKS[api] = frozenset(set(real_ids) - monotonic)
    return found


_WALL_CLOCKS: dict[Any, frozenset[int]] = {}
"""Per freezegun module: the identities of its real wall clocks (they never change)."""


_CLOCK_INDEX: dict[str, tuple[weakref.ref[Any], int, bool]] = {}
"""Per module name: the module (weakly), its attribute count, whether it holds a wall clock."""


@final
class _LastScan:
    """``sys.modules`` as the last full scan saw it: modules, namespaces and their sizes.

    When no module came or went and no namespace changed its size, no module
    can hold a clock function under a new name, so the last answer stands;
    checking that is two passes in C over lists. A module's namespace is
    fixed for its life, so the sizes are read from the namespaces kept here.
    """

    __slots__ = ("found", "modules", "namespaces", "sizes")

    def __init__(self) -> None:
        self.modules: list[Any] = []
        self.namespaces: list[Any] = []
        self.sizes: list[int] = []
        self.found: dict[str, Any] = {}


_LAST_SCAN: Final = _LastScan()


def _clock_modules(loaded: list[Any], real_ids: Any) -> dict[str, Any]:
    """Loaded modules holding a real clock (``real_ids``); only new or grown ones are looked at."""
    last = _LAST_SCAN
    if loaded == last.modules and list(map(len, last.namespaces)) == last.sizes:
        return dict(last.found)
    found = _scan_modules(real_ids)
    namespaces = _namespaces(loaded)
    if namespaces is None:  # something without a namespace in sys.modules: scan each time
        last.modules, last.namespaces, last.sizes = [], [], []
    else:
        last.modules, last.namespaces = loaded, namespaces
        last.sizes = list(map(len, namespaces))
    last.found = found
    return dict(found)


def _namespaces(modules: list[Any]) -> list[Any] | None:
    """Each module's namespace (``()`` for a ``None`` entry, which blocks an import)."""
    try:
        return [() if module is None else vars(module) for module in modules]
    except TypeError:
        return None


_CAPTURE: Final = "pytest_replay.capture"
"""Capture's modules keep the real clock (see :mod:`pytest_replay.capture.clock`)."""


def _scan_modules(real_ids: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, module in list(sys.modules.items()):
        if module is None or (name.startswith(_CAPTURE)
                              and name[len(_CAPTURE):len(_CAPTURE) + 1] in ("", ".")):
            continue
        try:
            namespace = vars(module)
        except TypeError:
            continue
        entry = _CLOCK_INDEX.get(name)
        if entry is None or entry[0]() is not module or entry[1] != len(namespace):
            holds = any(id(value) in real_ids for value in list(namespace.values()))
            try:
                entry = (weakref.ref(module), len(namespace), holds)
            except TypeError:  # a module object that refuses weak references
                found[name] = module
                continue
            _CLOCK_INDEX[name] = entry
        if entry[2]:
            found[name] = module
    return found


# -- freezegun's own per-module cache, checked cheaply -------------------------------------


@contextmanager
def _cheaper_module_scan(api: Any) -> Iterator[None]:
    """Let freezegun's start() recognise unchanged modules without listing them again.

    freezegun caches, per module, which attributes are clock functions, but
    checks the cache with a hash of ``dir(module)``. While *our* freeze
    starts, the check is the module's identity and attribute count instead,
    so only new or grown modules are listed. The price: an attribute rebound
    to a clock function without adding an attribute is not seen (it was not,
    either, between two scans of the same module). freezegun is restored at
    once, so the project's own ``freeze_time`` calls are untouched.
    """
    original = getattr(api, "_get_module_attributes_hash", None)
    if original is None:  # another freezegun: keep its own behaviour
        yield
        return
    api._get_module_attributes_hash = _identity_and_size
    try:
        yield
    finally:
        api._get_module_attributes_hash = original


def _identity_and_size(module: Any) -> tuple[int, int]:
    return id(module), len(vars(module))


def _monotonic_clocks(api: Any) -> dict[str, Any]:
    """freezegun's real monotonic clocks by name."""
    reals = _MONOTONIC.get(api)
    if reals is None:
        reals = _MONOTONIC[api] = {
            name: getattr(api, f"real_{name}")
            for name in ("monotonic", "perf_counter", "monotonic_ns", "perf_counter_ns")
            if hasattr(api, f"real_{name}")
        }
    return reals


def _unfreeze_monotonic(freezer: Any, api: Any) -> None:
    reals = _monotonic_clocks(api)
    for name, real in reals.items():
        setattr(time, name, real)
    real_ids = {id(real) for real in reals.values()}
    for module, attribute, original in getattr(freezer, "undo_changes", []):
        if id(original) in real_ids:
            setattr(module, attribute, original)


_MONOTONIC: dict[Any, dict[str, Any]] = {}
"""Per freezegun module: its real monotonic clocks by name (they never change)."""
