"""Target resolution: only callables defined inside ``replay_targets`` are imported and called."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_replay.replay.targets import ReplayRefused, TargetPolicy
from tests.replay.engine_support import AppPackage, make_app, write_lines

SHOP = """\
from __future__ import annotations

import os
from os import system as shell
from pathlib import Path
from subprocess import run as run_command

MARKER = Path(__file__).with_name("called")


def process_order(order_id: int, user_id: int) -> dict[str, int]:
    return {"order_id": order_id, "user_id": user_id}


def calculate_tax(amount: float, rate: float) -> float:
    return amount * rate


class Cart:
    system = staticmethod(os.system)

    def __init__(self, owner: str) -> None:
        self.owner = owner

    def total(self, factor: float) -> float:
        return factor

    @staticmethod
    def make(owner: str) -> "Cart":
        return Cart(owner)

    @classmethod
    def empty(cls) -> "Cart":
        return cls("nobody")


def outer() -> object:
    def inner() -> None:
        MARKER.touch()
    return inner


def _keep() -> tuple[object, object]:
    return shell, run_command
"""

BILLING = """\
def calculate_tax(amount: float, rate: float) -> float:
    return round(amount * rate, 2)
"""


@pytest.fixture
def app(request: pytest.FixtureRequest, tmp_path: Path) -> AppPackage:
    """A target package with a shop module (imports os and subprocess) and a billing one."""
    package = make_app(request, tmp_path)
    package.write("shop", SHOP)
    package.write("billing", BILLING)
    return package


def entry(**fields: Any) -> dict[str, Any]:
    return {"event_type": "function_entry", "correlation_id": "r1", **fields}


def refusal(policy: TargetPolicy, **fields: Any) -> str:
    with pytest.raises(ReplayRefused) as info:
        policy.resolve_call(entry(**fields))
    return str(info.value)


# -- what resolves ------------------------------------------------------------------------


def test_module_and_qualname_resolve_to_the_function_in_the_targets(app: AppPackage) -> None:
    policy = TargetPolicy((app.name,))
    resolved = policy.resolve_call(entry(module=f"{app.name}.shop", qualname="process_order",
                                         function_name="process_order"))
    assert resolved.function is app.module("shop").process_order
    assert resolved.owner is None


def test_methods_resolve_with_their_class_as_owner(app: AppPackage) -> None:
    policy = TargetPolicy((app.name,))
    shop = app.module("shop")
    method = policy.resolve_call(entry(module=f"{app.name}.shop", qualname="Cart.total"))
    static = policy.resolve_call(entry(module=f"{app.name}.shop", qualname="Cart.make"))
    klass = policy.resolve_call(entry(module=f"{app.name}.shop", qualname="Cart.empty"))
    assert (method.function, method.owner) == (shop.Cart.total, shop.Cart)
    assert static.function is shop.Cart.make
    assert klass.function is shop.Cart.empty.__func__


def test_a_seed_style_bare_name_resolves_inside_the_targets(app: AppPackage) -> None:
    policy = TargetPolicy((app.name,))
    resolved = policy.resolve_call(entry(function_name="process_order"))
    assert resolved.function is app.module("shop").process_order


def test_an_ambiguous_bare_name_is_refused_with_the_candidates(app: AppPackage) -> None:
    message = refusal(TargetPolicy((app.name,)), function_name="calculate_tax")
    assert "ambiguous" in message
    assert f"{app.name}.billing:calculate_tax" in message
    assert f"{app.name}.shop:calculate_tax" in message


# -- what is refused, judged on the resolved object ------------------------------------------


@pytest.mark.parametrize(("module", "qualname", "expected"), [
    ("os", "system", "module 'os' is outside replay_targets"),
    ("subprocess", "run", "module 'subprocess' is outside replay_targets"),
    ("builtins", "eval", "module 'builtins' is outside replay_targets"),
    ("builtins", "exec", "module 'builtins' is outside replay_targets"),
])
def test_standard_library_callables_are_refused(app: AppPackage, module: str, qualname: str,
                                                expected: str) -> None:
    message = refusal(TargetPolicy((app.name,)), module=module, qualname=qualname)
    assert expected in message


@pytest.mark.parametrize(("qualname", "expected"), [
    ("os.system", "'os' is a module"),
    ("shell", "builtin_function_or_method, not a Python function"),
    ("run_command", "defined in 'subprocess'"),
    ("Cart.system", "not a Python function"),
    ("Path", "not a Python function"),
    ("MARKER", "not a Python function"),
    ("Cart.__class__.__subclasses__", "dunder attribute paths are never replayed"),
    ("process_order.__globals__", "dunder attribute paths are never replayed"),
    ("outer.<locals>.inner", "nested functions and lambdas"),
    ("process_order.os", "'process_order' is not a class"),
    ("missing", "'missing' not found"),
    ("a-b", "is not an attribute name"),
])
def test_names_inside_a_target_module_that_lead_outside_are_refused(
        app: AppPackage, qualname: str, expected: str) -> None:
    message = refusal(TargetPolicy((app.name,)), module=f"{app.name}.shop", qualname=qualname)
    assert expected in message


def test_what_the_trace_says_about_itself_does_not_matter(app: AppPackage) -> None:
    """A function_name that looks harmless does not make os.system callable, nor the reverse."""
    policy = TargetPolicy((app.name,))
    message = refusal(policy, module=f"{app.name}.shop", qualname="os.system",
                      function_name="process_order")
    assert "'os' is a module" in message
    resolved = policy.resolve_call(entry(module=f"{app.name}.shop", qualname="process_order",
                                         function_name="system"))
    assert resolved.function is app.module("shop").process_order


def test_bare_names_of_stdlib_functions_are_refused(app: AppPackage) -> None:
    policy = TargetPolicy((app.name,))
    for name in ("system", "run", "eval", "shell", "run_command"):
        assert "is not defined in replay_targets" in refusal(policy, function_name=name)
    assert "not a plain function name" in refusal(policy, function_name="__import__")


def test_a_module_outside_the_targets_is_never_imported(app: AppPackage, tmp_path: Path) -> None:
    name = f"evil_{app.name}"
    marker = tmp_path / "imported"
    (tmp_path / f"{name}.py").write_text(f"open({str(marker)!r}, 'w').close()\n"
                                         "def evil():\n    pass\n", encoding="utf-8")
    policy = TargetPolicy((app.name,))
    assert "outside replay_targets" in refusal(policy, module=name, qualname="evil")
    assert name not in sys.modules
    assert not marker.exists()


def test_a_prefix_of_a_target_name_is_not_inside_it(app: AppPackage) -> None:
    policy = TargetPolicy((app.name,))
    assert policy.allows_module(f"{app.name}.shop")
    assert not policy.allows_module(f"{app.name}x.shop")
    assert "outside replay_targets" in refusal(policy, module=f"{app.name}x", qualname="f")


@pytest.mark.parametrize("module", ["__main__", "x.__init__", "os;rm", ""])
def test_malformed_or_dunder_module_names_are_refused(app: AppPackage, module: str) -> None:
    policy = TargetPolicy((app.name,))
    with pytest.raises(ReplayRefused):
        policy.resolve_call(entry(module=module, qualname="f", function_name=""))


def test_without_targets_nothing_resolves_and_the_error_says_how_to_configure(
        app: AppPackage) -> None:
    message = refusal(TargetPolicy(()), module=f"{app.name}.shop", qualname="process_order")
    assert "no replay_targets configured" in message
    assert "pyproject.toml" in message


def test_an_entry_without_any_name_is_refused() -> None:
    assert "names no function" in refusal(TargetPolicy(("x",)))


# -- decoding classes -----------------------------------------------------------------------


def test_recorded_classes_decode_only_from_inside_the_targets(app: AppPackage) -> None:
    policy = TargetPolicy((app.name,))
    assert policy.resolve_class(f"{app.name}.shop:Cart") is app.module("shop").Cart
    for name in ("subprocess:Popen", "os:_wrap_close", "builtins:type", f"{app.name}.shop:Path",
                 f"{app.name}.shop:Cart.__class__", "pathlib:Path"):
        assert policy.resolve_class(name) is None, name


def test_allowed_types_add_one_named_class(app: AppPackage) -> None:
    import decimal

    policy = TargetPolicy((app.name,), allowed_types=("decimal:Decimal",))
    assert policy.resolve_class("decimal:Decimal") is decimal.Decimal
    assert policy.resolve_class("decimal:Context") is None


# -- end to end: refused traces call nothing ---------------------------------------------------


def test_hostile_roots_are_not_replayable_and_nothing_is_called(app: AppPackage,
                                                                tmp_path: Path) -> None:
    marker = tmp_path / "called"  # the shop's MARKER; every hostile call below would create it
    touch = ["touch", str(marker)]
    trace = write_lines(tmp_path / "hostile.jsonl", [
        entry(correlation_id="h1", module="os", qualname="system",
              args={"command": f"touch {marker}"}),
        entry(correlation_id="h2", module="subprocess", qualname="run", args={"args": touch}),
        entry(correlation_id="h3", module="builtins", qualname="eval",
              args={"source": f"open({str(marker)!r}, 'w')"}),
        entry(correlation_id="h4", module=f"{app.name}.shop", qualname="os.system",
              args={"command": f"touch {marker}"}),
        entry(correlation_id="h5", module=f"{app.name}.shop", qualname="run_command",
              args={"args": touch}),
        entry(correlation_id="h6", module=f"{app.name}.shop", qualname="Cart.system",
              args={"command": f"touch {marker}"}),
        entry(correlation_id="h7", function_name="system", args={"command": f"touch {marker}"}),
        entry(correlation_id="h8", module=f"{app.name}.shop",
              qualname="Cart.__class__.__subclasses__", args={}),
        entry(correlation_id="h9", module=f"{app.name}.shop", qualname="process_order",
              args={"order_id": {"$type": "object", "class": "subprocess:Popen",
                                 "attrs": {"args": touch}}, "user_id": 1}),
    ])
    engine = app.engine()
    results = [engine.replay(root) for root in trace.roots]
    assert [r.status for r in results] == ["not_replayable"] * 9
    assert all(r.replayed == [] for r in results)
    assert "refused" in results[0].message and "os" in results[0].message
    assert "subprocess:Popen" in results[8].message
    assert "replay_allowed_types" in results[8].message
    assert not marker.exists()
