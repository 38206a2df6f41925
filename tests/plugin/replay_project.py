"""Plugin test support: a small app package and traces recorded from it, in a pytester dir.

Traces are recorded by really running the app under ``pytest_replay`` capture
(in this process, then the app's modules are forgotten so the pytest run
under test imports today's source). Hand-written traces are only used where
the hand-writing is the point (the seed's lines, hostile or corrupt ones).
"""

from __future__ import annotations

import importlib
import pkgutil
import shutil
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

import pytest_replay as replay


def _import_the_whole_package() -> None:
    """In-process pytest runs forget the modules they import; importing (and
    assertion-rewriting) the package again on every run would cost seconds."""
    import freezegun  # noqa: F401 - imported lazily by the sandbox

    for info in pkgutil.walk_packages(replay.__path__, "pytest_replay."):
        importlib.import_module(info.name)


_import_the_whole_package()

BUG_LINE = "    discount_amount = sum(discounts) / discount_count\n"
FIX_LINE = "    discount_amount = sum(discounts) / discount_count if discount_count else 0.0\n"

SHOP = '''\
"""A shop with the seed's bug: no discounts -> ZeroDivisionError."""

from __future__ import annotations

import os
from subprocess import run as run_command

import pytest_replay as replay

ORDER_TOTALS = {12345: 100.0, 777: 200.0, 4242: 180.0}


@replay.traced
def calculate_tax(amount: float, rate: float) -> float:
    discounts = active_discounts(amount)
    discount_count = len(discounts)
''' + BUG_LINE + '''\
    return round((amount - discount_amount) * rate, 2)


@replay.traced
def active_discounts(amount: float) -> list[float]:
    return [5.0, 10.0] if amount >= 150 else []


@replay.traced
def process_order(order_id: int, user_id: int) -> dict[str, float | int]:
    amount = ORDER_TOTALS[order_id]
    tax_rate = 0.08
    replay.variable("tax_rate", tax_rate)
    tax = calculate_tax(amount, tax_rate)
    return {"order_id": order_id, "user_id": user_id, "total": round(amount + tax, 2),
            "tax": tax}


@replay.traced
def order_tags(order_id: int) -> set[str]:
    """A set of strings: its order changes with every interpreter's hash seed."""
    return {f"order-{order_id}", "vip", "eu", "gift-wrap", "express", "fragile"}


def _keep_imports() -> tuple[object, object]:
    return os.system, run_command
'''

BUG_LINENO = SHOP.splitlines().index(BUG_LINE.rstrip("\n")) + 1
"""The line ``ZeroDivisionError`` is raised at in ``app/shop.py``."""

FIXED_SHOP = SHOP.replace(BUG_LINE, FIX_LINE)
REGRESSED_SHOP = SHOP.replace("[5.0, 10.0] if amount >= 150", "[5.0, 20.0] if amount >= 150")
"""Healthy orders now get another discount: a divergence in ``active_discounts``."""
REGRESSED_777 = SHOP.replace("[5.0, 10.0] if amount >= 150",
                             "[5.0, 20.0] if amount >= 190 else [5.0, 10.0] if amount >= 150")
"""Only the 200.0 order (``req_ok777``) changes; ``req_ok4242`` and the incident do not."""

Request = tuple[str, str, tuple[Any, ...]]
"""(correlation id, function of ``app.shop``, positional arguments): one recorded request."""

INCIDENT: Request = ("req_abc123", "process_order", (12345, 67890))
HEALTHY: Request = ("req_ok777", "process_order", (777, 1001))
HEALTHY_2: Request = ("req_ok4242", "process_order", (4242, 1002))
TAGS: Request = ("req_tags", "order_tags", (777,))

PYPROJECT = """\
[tool.pytest.ini_options]
pythonpath = ["."]
replay_targets = ["app"]
{extra}
"""


RUN_ARGS = ("-p", "no:hypothesispytest", "-W", "ignore::pytest.PytestAssertRewriteWarning")
"""Skip hypothesis' plugin (importing hypothesis costs a second per run and per xdist worker),
and, in process, the warning that ``pytest_replay`` was imported before the inner run."""


def forget_app(package: str = "app") -> None:
    """Drop the app's modules so the next import reads today's source."""
    for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
        del sys.modules[name]


class ReplayProject:
    """A pytester dir holding ``app/``, ``traces/`` and a pytest config with replay keys."""

    def __init__(self, pytester: pytest.Pytester) -> None:
        self.pytester = pytester
        self.path = pytester.path
        self.traces = pytester.path / "traces"
        self.traces.mkdir()
        self.configure()
        self.write_app(SHOP)

    def configure(self, extra: str = "") -> None:
        """Write ``pyproject.toml`` with ``replay_targets = app`` plus ``extra`` ini lines."""
        (self.path / "pyproject.toml").write_text(PYPROJECT.format(extra=extra),
                                                  encoding="utf-8")

    def write_app(self, source: str, module: str = "shop") -> Path:
        """Write ``app/<module>.py`` (and forget any stale import or bytecode of it)."""
        package = self.path / "app"
        package.mkdir(exist_ok=True)
        (package / "__init__.py").write_text("", encoding="utf-8")
        shutil.rmtree(package / "__pycache__", ignore_errors=True)
        target = package / f"{module}.py"
        target.write_text(source, encoding="utf-8")
        forget_app()
        return target

    def record(self, filename: str, requests: Iterable[Request], module: str = "app.shop",
               **options: Any) -> Path:
        """Run each request through the app under capture, into ``traces/<filename>``.

        ``options`` go to ``configure`` (``limits=...``), as production's would.

        Like production: the request's own error is logged (captured), then
        swallowed by the server, which answers 500.
        """
        path = self.traces / filename
        path.unlink(missing_ok=True)  # the file sink appends, like a production log
        sys.path.insert(0, str(self.path))
        try:
            forget_app()
            app = importlib.import_module(module)
            replay.configure(path=path, service="shop", **options)
            try:
                for correlation_id, function, args in requests:
                    with replay.request_scope(correlation_id=correlation_id):
                        replay.context(environment="production", region="us-west-2")
                        try:
                            getattr(app, function)(*args)
                        except Exception:
                            continue
            finally:
                replay.shutdown()
        finally:
            sys.path.remove(str(self.path))
            forget_app()
        return path

    def write_trace(self, filename: str, lines: Sequence[dict[str, Any] | str]) -> Path:
        """A hand-written trace: dicts become JSON lines, strings are written as they are."""
        path = self.traces / filename
        text = "".join((line if isinstance(line, str) else orjson.dumps(line).decode()) + "\n"
                       for line in lines)
        path.write_text(text, encoding="utf-8")
        return path

    def run(self, *args: str) -> pytest.RunResult:
        """pytest in this process (fast); the app is re-imported from today's source."""
        forget_app()
        try:  # hypothesis' plugin imports hypothesis at the end of every run: seconds
            return self.pytester.runpytest(*RUN_ARGS, *args)
        finally:
            forget_app()

    def run_subprocess(self, *args: str) -> pytest.RunResult:
        """pytest in a fresh interpreter (xdist, and anything isolation-sensitive)."""
        return self.pytester.runpytest_subprocess(*RUN_ARGS, *args)

    def run_with(self, xdist_args: Sequence[str], *args: str) -> pytest.RunResult:
        """In this process without xdist; in a subprocess with ``-n 2``."""
        if xdist_args:
            return self.run_subprocess(*xdist_args, *args)
        return self.run(*args)
