"""vcrpy's patches, built once per process and applied for each serve.

The stubs ask one process-wide dispatcher (:mod:`pytest_replay.replay.http_serve`)
for answers, so the patch table does not change from one replay to the next.
"""

from __future__ import annotations

import contextlib
import operator
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, final

from pytest_replay.capture.http import (
    ServedError,
    wrap_http_client_class,
)
from pytest_replay.replay.external import UnrecordedCall
from pytest_replay.replay.http_match import asked_as

if TYPE_CHECKING:
    from pytest_replay.replay.http_serve import Answers

_MISSING: Final = object()


@final
class Dispatcher:
    """What vcrpy's stubs take for their cassette: hands each request to the serve in progress.

    One for the process, so the stub classes and patches made for it serve
    every replay (see :func:`patch_table`).
    """

    _path = "<telemetry-replay http>"  # vcrpy's patch builder names stub classes after it
    custom_patches: tuple[Any, ...] = ()
    skip_patchers: tuple[str, ...] = ()
    write_protected = True

    def __init__(self) -> None:
        self.answers: Answers | None = None

    def can_play_response_for(self, request: Any) -> bool:
        """Always: every request is answered or refused here, never sent."""
        return True

    def play_response(self, request: Any) -> dict[str, Any]:
        """The answer of the serve in progress (a connection kept past its replay is refused)."""
        answers = self.answers
        if answers is None:
            raise ServedError(UnrecordedCall("http", asked_as(request),
                                             "no replay is serving HTTP now"))
        return answers.play(request)

    def find_requests_with_most_matches(
            self, request: Any) -> list[tuple[Any, list[str], list[tuple[str, str]]]]:
        """The recorded requests most like ``request`` (aiohttp's stub follows redirects so)."""
        return [] if self.answers is None else self.answers.most_alike(request)

    def filter_request(self, request: Any) -> Any:
        """vcrpy's hook before recording: nothing to filter, nothing is recorded."""
        return request

    def append(self, request: Any, response: Any) -> None:
        """Never called while every request is played; a call would mean something recorded."""
        raise RuntimeError("a replay never records an HTTP call")


DISPATCHER: Final = Dispatcher()


# -- patching, once per process ----------------------------------------------------------
#
# Building a vcrpy cassette and its patchers for each replay cost more than the replay:
# the builder retries the import of every client library vcrpy knows, installed or not,
# and makes new stub classes; and each connection a stub opens undoes and redoes every
# patch (retrying those imports again). Here the patch table is built once for the
# dispatcher, and built again only when what it was built from changed; a serve sets
# the table's attributes and restores them.


@final
@dataclass(frozen=True)
class _Patch:
    """Set ``owner.name`` to ``replacement`` while serving (``seen``: the value at build)."""

    owner: Any
    name: str
    seen: Any
    replacement: Any


@final
@dataclass(frozen=True)
class _Table:
    """Every patch vcrpy's builder makes, and the pool cleaners for urllib3's stubs.

    One patch per attribute (vcrpy lists urllib3's twice, once for requests):
    the last replacement is the one that stayed in place, and the value before
    is the same for both.
    """

    path: tuple[str, ...]
    """``sys.path`` when built: a library may have become importable since."""
    targets: tuple[tuple[Any, str], ...]
    """``(owner, name)`` of each patched attribute."""
    seen: tuple[Any, ...]
    """What each target held when the table was built (raw, or ``_MISSING``)."""
    replacements: tuple[Any, ...]
    classes: tuple[bool, ...]
    """Whether each replacement puts a class (or a table of classes) in place."""
    cleaners: tuple[Any, ...]

    def holding(self) -> list[Any] | None:
        """What each target holds now, or None when the table no longer fits.

        It fits while the import path is the same and every target holds
        what it held at build (a monkeypatched target means a new build).
        """
        if tuple(sys.path) != self.path:
            return None
        now = [vars(owner).get(name, _MISSING) for owner, name in self.targets]
        return now if all(map(operator.is_, now, self.seen)) else None


@final
class _Serving:
    """The table in use and, while serving, what each patched attribute held before."""

    __slots__ = ("applied", "classes", "table")

    def __init__(self) -> None:
        self.table: _Table | None = None
        self.applied: list[tuple[Any, str, Any]] = []
        """``(owner, name, raw value before or _MISSING)`` in the order they were set."""
        self.classes: list[tuple[Any, str, Any]] = []
        """The entries of ``applied`` that put a class (or a table of classes) in place."""


_STATE: Final = _Serving()


def patch_table() -> tuple[_Table, list[Any]]:
    """The table to apply and what its targets hold now (built again when it no longer fits)."""
    table = _STATE.table
    now = table.holding() if table is not None else None
    if table is None or now is None:
        table = _STATE.table = _build_table()
        now = list(table.seen)
    return table, now


def _build_table() -> _Table:
    from vcr.patch import CassettePatcherBuilder
    from vcr.stubs import VCRConnection

    class Builder(CassettePatcherBuilder):  # type: ignore[misc]
        """vcrpy's own patch list for the dispatcher, as plain patches instead of mocks."""

        def _build_patcher(self, obj: Any, attribute: str, replacement: Any) -> _Patch | None:
            if not hasattr(obj, attribute):
                return None
            return _Patch(obj, attribute, vars(obj).get(attribute, _MISSING),
                          self._recursively_apply_get_cassette_subclass(replacement))

        def _build_cassette_subclass(self, base_class: Any) -> type:
            namespace: dict[str, Any] = {"cassette": self._cassette}
            if issubclass(base_class, VCRConnection) and (
                    base_class.__init__ is VCRConnection.__init__):
                namespace["__init__"] = _connection_init
            return type(f"{base_class.__name__}Replay", (base_class,), namespace)

    path = tuple(sys.path)
    patches: dict[tuple[Any, str], _Patch] = {}
    cleaners: list[Any] = []
    for item in [*Builder(DISPATCHER).build(), *_header_patch()]:
        if isinstance(item, _Patch):
            patches[(item.owner, item.name)] = item  # the last one listed stays in place
        else:
            cleaners.append(item)
    listed = list(patches.values())
    _instrument_http_client(listed)
    return _Table(path, tuple(patches.keys()), tuple(patch.seen for patch in listed),
                  tuple(patch.replacement for patch in listed),
                  tuple(isinstance(patch.replacement, (type, dict)) for patch in listed),
                  tuple(cleaners))


def _header_patch() -> list[_Patch]:
    """vcrpy's stubs parse answer headers with a fast path while serving (see http_headers)."""
    import vcr.stubs

    from pytest_replay.replay.http_headers import header_parser

    original = vars(vcr.stubs).get("parse_headers")
    if not callable(original):  # another vcrpy: its own parsing stands
        return []
    return [_Patch(vcr.stubs, "parse_headers", original, header_parser(original))]


def _connection_init(self: Any, *args: Any, **kwargs: Any) -> None:
    """vcrpy's stub constructor, with the real classes put back by the table, not by mocks."""
    kwargs.pop("strict", None)
    with _real_classes():  # http.client's HTTPSConnection names its own class in super()
        self.real_connection = self._baseclass(*args, **kwargs)
    self._sock = None


def _set(owner: Any, name: str, value: Any) -> None:
    if value is _MISSING:
        if name in vars(owner):
            delattr(owner, name)
    else:
        setattr(owner, name, value)


@contextlib.contextmanager
def _real_classes() -> Iterator[None]:
    """The connection classes a serve replaced are the real ones again for the block.

    Then each holds what it held before the block (a patch made meanwhile stays).
    """
    swapped = _STATE.classes
    now = [(owner, name, vars(owner).get(name, _MISSING)) for owner, name, _before in swapped]
    for owner, name, before in reversed(swapped):
        _set(owner, name, before)
    try:
        yield
    finally:
        for owner, name, value in now:
            _set(owner, name, value)


def apply_table(table: _Table, before: list[Any]) -> None:
    applied = [(owner, name, value)
               for (owner, name), value in zip(table.targets, before, strict=True)]
    _STATE.applied = applied
    _STATE.classes = [entry for entry, is_class in zip(applied, table.classes, strict=True)
                      if is_class]
    for (owner, name), replacement in zip(table.targets, table.replacements, strict=True):
        setattr(owner, name, replacement)


def restore_patches() -> None:
    _STATE.classes = []
    applied, _STATE.applied = _STATE.applied, []
    for owner, name, before in reversed(applied):
        _set(owner, name, before)


def clean_pools(table: _Table) -> None:
    """Close the stub connections urllib3's pools still hold (vcrpy's ConnectionRemover)."""
    for cleaner in table.cleaners:
        cleaner.__exit__(None, None, None)
        pools = getattr(cleaner, "_connection_pool_to_connections", None)
        if isinstance(pools, dict):
            pools.clear()  # this serve's pools: the next serve starts with none


def _instrument_http_client(patches: list[_Patch]) -> None:
    """Capture on the stub classes the table puts in ``http.client``, once per table.

    The stub classes are the table's own and are only reachable while it is
    applied; capture's wrappers do nothing unless capture is installed.
    """
    import http.client

    schemes = {"HTTPConnection": "http", "HTTPSConnection": "https"}
    for patch in patches:
        if (patch.owner is http.client and patch.name in schemes
                and getattr(patch.replacement, "cassette", None) is DISPATCHER):
            wrap_http_client_class(patch.replacement, schemes[patch.name])


