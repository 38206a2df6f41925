"""Fixtures for plugin tests (the helpers they use live in ``replay_project``)."""

from __future__ import annotations

import pytest

from tests.plugin.replay_project import ReplayProject


@pytest.fixture
def project(pytester: pytest.Pytester) -> ReplayProject:
    """A pytester dir with the buggy shop app and ``replay_targets = app``."""
    return ReplayProject(pytester)


@pytest.fixture(params=["no-xdist", "-n2"])
def xdist_args(request: pytest.FixtureRequest) -> tuple[str, ...]:
    """Run a scenario without xdist and with two workers (the syrupy way)."""
    return () if request.param == "no-xdist" else ("-n", "2")
