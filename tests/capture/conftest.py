"""Capture into memory (or a file) for one test, then put the process's capture state back."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import pytest_replay as replay
from pytest_replay.capture.runtime import RUNTIME
from tests.capture.capturesupport import Captured


@pytest.fixture
def restore_capture() -> Iterator[None]:
    """Whatever a test configures, the runtime is as it was afterwards."""
    saved = (RUNTIME.sink, RUNTIME.active, RUNTIME.service, RUNTIME.redaction, RUNTIME.limits,
             RUNTIME.sample_rate, RUNTIME.last_sink)
    try:
        yield
    finally:
        replay.shutdown()
        (RUNTIME.sink, RUNTIME.active, RUNTIME.service, RUNTIME.redaction, RUNTIME.limits,
         RUNTIME.sample_rate, RUNTIME.last_sink) = saved
        RUNTIME.stats.reset()


@pytest.fixture
def captured(restore_capture: None) -> Captured:
    """Capture on, with default settings, into a memory sink."""
    sink = replay.MemorySink()
    replay.configure(sink=sink)
    return Captured(sink)
