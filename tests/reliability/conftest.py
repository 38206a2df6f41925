"""Put the process's capture state back after each reliability test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import pytest_replay as replay
from pytest_replay.capture.runtime import RUNTIME


@pytest.fixture
def restore_capture() -> Iterator[None]:
    """Whatever a test configures, the runtime is as it was afterwards."""
    saved = (RUNTIME.sink, RUNTIME.active, RUNTIME.service, RUNTIME.redaction, RUNTIME.limits,
             RUNTIME.sample_rate, RUNTIME.last_sink)
    try:
        yield
    finally:
        replay.shutdown(timeout=2.0)
        (RUNTIME.sink, RUNTIME.active, RUNTIME.service, RUNTIME.redaction, RUNTIME.limits,
         RUNTIME.sample_rate, RUNTIME.last_sink) = saved
        RUNTIME.stats.reset()
