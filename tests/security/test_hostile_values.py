"""Tagged values that ask the decoder for arbitrary types are refused, building nothing.

A ``$type`` naming ``os:system``, ``subprocess:Popen``, ``builtins:eval`` or a
class outside the targets decodes to an opaque placeholder, and a root whose
arguments hold one is not replayed; the class's module is never imported.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_replay.format.decode import Opaque, decode
from pytest_replay.replay.targets import TargetPolicy
from tests.security.hostile_check import assert_refused
from tests.security.hostile_corpus import APP, VALUE_CASES, Hostile
from tests.security.secsupport import (
    LAZY,
    OUTSIDE,
    RECORDED_AT_NS,
    TARGET,
    Packages,
    entry,
    failed_exit,
    replay_file,
    write_trace,
)


@pytest.mark.parametrize("case", VALUE_CASES, ids=[c.id for c in VALUE_CASES])
def test_engine_refuses_hostile_value(case: Hostile, packages: Packages, tmp_path: Path) -> None:
    """The root is not replayed and the message names the class it would not rebuild."""
    assert_refused(case, tmp_path, packages)


@pytest.mark.parametrize("name", [
    "os:system", "subprocess:Popen", "builtins:eval", "builtins:object", "antigravity:Fly",
    f"{OUTSIDE}.models:Payload", f"{APP}:Popen", f"{APP}:Service.__class__", f"{APP}:add",
    "sec_target.app:Order.__init__", "sec_target:app", ":Order", "sec_target.app:",
])
def test_policy_resolves_no_class_outside_targets(name: str, packages: Packages) -> None:
    """``resolve_class`` (the decoder's only way to a class) says no, importing nothing."""
    assert TargetPolicy(("sec_target",)).resolve_class(name) is None


def test_class_inside_targets_still_decodes(packages: Packages) -> None:
    """The allow-list is not a deny-all: a target's own dataclass is rebuilt."""
    policy = TargetPolicy(("sec_target",))
    value = decode({"$type": "dataclass", "class": f"{APP}:Order", "fields": {"order_id": 7}},
                   policy.resolve_class)
    assert type(value).__name__ == "Order"
    assert value.order_id == 7


def test_allowed_types_admit_exactly_the_named_class(packages: Packages) -> None:
    """replay_allowed_types widens decoding by one class, not by its module."""
    policy = TargetPolicy((), allowed_types=("fractions:Fraction",))
    assert policy.resolve_class("fractions:Fraction") is not None
    assert policy.resolve_class("fractions:Decimal") is None
    assert policy.resolve_class("os:system") is None


def test_decoder_without_resolver_builds_only_inert_values() -> None:
    """With no resolver every class-naming tag stays opaque; inert tags decode."""
    tagged: list[Any] = [
        {"$type": "object", "class": "os:system"},
        {"$type": "dataclass", "class": "subprocess:Popen", "fields": {}},
        {"$type": "enum", "class": "signal:Signals", "name": "SIGKILL"},
        {"$type": "pickle", "b64": "gASVAAAAAAAAAAA="},
        {"$type": "eval", "source": "__import__('os').system('id')"},
    ]
    assert all(isinstance(decode(value), Opaque) for value in tagged)
    assert decode({"$type": "tuple", "items": [1, {"$type": "decimal", "value": "1.5"}]}) == (
        1, __import__("decimal").Decimal("1.5"))


def _http_error_trace(path: Path, url: str, module: str, error_type: str) -> Path:
    """A root that makes one HTTP call, recorded as failing with ``module.error_type``."""
    call = {"event_type": "http_call", "timestamp_ns": RECORDED_AT_NS + 10,
            "correlation_id": "req_sec", "method": "GET", "url": url, "request_headers": {},
            "error_type": error_type, "error_module": module, "error_message": "recorded"}
    return write_trace(path, [entry(APP, "fetch_requests", {"url": url}), call,
                              *failed_exit("fetch_requests", error_type, "recorded")])


@pytest.mark.parametrize("error_type", ["Heavy", "__getattr__", "LibraryError.__subclasses__"])
def test_recorded_http_error_class_triggers_no_import(error_type: str, packages: Packages,
                                                      tmp_path: Path) -> None:
    """Rebuilding a recorded HTTP error looks its class up without running module code.

    Today ``http_errors._exception_class`` walks the trace's dotted name with
    ``getattr``, so a library's lazy ``__getattr__`` runs and imports
    ``sec_lazy.heavy`` (which writes the marker) on the trace's word.
    """
    importlib.import_module(LAZY)  # a library the application already uses
    path = _http_error_trace(tmp_path / "t.jsonl", "http://partner.invalid/x", LAZY, error_type)
    replay_file(path, (TARGET,))
    assert f"{LAZY}.heavy" not in sys.modules
    assert packages.marks() == []
