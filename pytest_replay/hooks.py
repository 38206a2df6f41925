"""Hooks telemetry-replay adds to pytest (implement them in a ``conftest.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

    from pytest_replay.replay.engine import ReplayResult


def pytest_replay_http_overrides(item: pytest.Item, overrides: Any) -> None:
    """Add or override HTTP answers for one replay item (what-if replays).

    ``overrides`` is a :class:`pytest_replay.replay.http_serve.HttpOverrides`;
    call ``overrides.add(method, url, json=..., status=...)``.
    """


def pytest_replay_result(item: pytest.Item, result: ReplayResult) -> None:
    """Called with every replay verdict, before the item passes or fails."""
