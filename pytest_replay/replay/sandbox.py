"""The sealed room one replay runs in: frozen time plus whatever serves outside calls.

Each part is a context manager; :func:`sandbox` enters them in a fixed order
and an :class:`~contextlib.ExitStack` restores everything, even when the
replayed code raises.
"""

from __future__ import annotations

import datetime as _dt
import sys
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import Any

from pytest_replay.replay.external import ServedCalls

Server = Callable[[], AbstractContextManager[ServedCalls]]


def recorded_moment(timestamp_ns: int | None) -> _dt.datetime | None:
    """The instant to freeze time at: when the recorded request started (UTC)."""
    if timestamp_ns is None:
        return None
    seconds, nanos = divmod(timestamp_ns, 1_000_000_000)
    return _dt.datetime.fromtimestamp(seconds, tz=_dt.timezone.utc) + _dt.timedelta(
        microseconds=nanos // 1000
    )


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

    freezer = freeze_time(moment, tick=False, real_asyncio=True)
    with _cheaper_module_scan(freezegun_api), _only_clock_modules(freezegun_api):
        freezer.start()
    # freezegun undoes, at stop, the modules imported while frozen: compare with all.
    freezer.modules_at_start = set(sys.modules)
    try:
        _unfreeze_monotonic(freezer, freezegun_api)
        yield
    finally:
        freezer.stop()


@contextmanager
def _cheaper_module_scan(api: Any) -> Iterator[None]:
    """Let freezegun's start() recognise unchanged modules without listing them again.

    freezegun caches, per module, which attributes are clock functions, but
    checks the cache with a hash of ``dir(module)``, so every start lists every
    loaded module: half the cost of a replay. While *our* freeze starts, the
    check is the module's identity and attribute count instead, so only new or
    grown modules are listed. The price: an attribute rebound to a clock
    function without adding an attribute is not seen (it was not, either,
    between two scans of the same module). freezegun is restored at once, so
    the project's own ``freeze_time`` calls are untouched.
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


def _identity_and_size(module: Any) -> str:
    return f"{id(module)}-{len(vars(module))}"


class _ModulesView:
    """freezegun's ``sys`` while our freeze starts: ``modules`` lists only the modules
    that hold a clock function, so its scan visits a dozen modules, not a thousand."""

    def __init__(self, modules: dict[str, Any]) -> None:
        self.modules = modules

    def __getattr__(self, name: str) -> Any:
        return getattr(sys, name)


_CLOCK_INDEX: dict[str, tuple[weakref.ref[Any], int, bool]] = {}
"""Per module name: the module (weakly), its attribute count, whether it holds a clock."""


def _clock_modules(real_ids: Any) -> dict[str, Any]:
    """Loaded modules holding a real clock function; only new or grown modules are looked at."""
    found: dict[str, Any] = {}
    for name, module in list(sys.modules.items()):
        if module is None:
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


@contextmanager
def _only_clock_modules(api: Any) -> Iterator[None]:
    """Show freezegun's start() only the modules it would patch (see :class:`_ModulesView`).

    freezegun finds aliases of the clock functions by their identity, as this
    index does; a module whose attributes change count is looked at again. Any
    other freezegun (no module-level ``sys``, no ``_real_time_object_ids``)
    keeps its own scan.
    """
    real_ids = getattr(api, "_real_time_object_ids", None)
    if real_ids is None or getattr(api, "sys", None) is not sys:
        yield
        return
    api.sys = _ModulesView(_clock_modules(real_ids))
    try:
        yield
    finally:
        api.sys = sys


def _unfreeze_monotonic(freezer: Any, api: Any) -> None:
    reals = {
        name: getattr(api, f"real_{name}")
        for name in ("monotonic", "perf_counter", "monotonic_ns", "perf_counter_ns")
        if hasattr(api, f"real_{name}")
    }
    for name, real in reals.items():
        setattr(time, name, real)
    real_ids = {id(real) for real in reals.values()}
    for module, attribute, original in getattr(freezer, "undo_changes", []):
        if id(original) in real_ids:
            setattr(module, attribute, original)


@contextmanager
def sandbox(moment: _dt.datetime | None, servers: Sequence[Server]) -> Iterator[list[ServedCalls]]:
    """Enter frozen time and every server; yield what each server reports."""
    with ExitStack() as stack:
        reports = [stack.enter_context(server()) for server in servers]
        stack.enter_context(frozen_time(moment))
        yield reports
