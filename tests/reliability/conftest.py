"""Put the process's capture state back after each reliability test; Hypothesis profiles.

The profiles serve the format fuzz tests (``test_fuzz_format.py``): ``ci`` is
sized to matter in CI and stay fast, ``long`` is a deliberate soak selected
with ``HYPOTHESIS_PROFILE=long``. The fuzz tests apply the chosen profile to
themselves only, so registering them here changes no other test's settings.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

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


_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large]
settings.register_profile("ci", max_examples=150, deadline=None, suppress_health_check=_QUIET)
settings.register_profile("long", max_examples=20_000, deadline=None,
                          suppress_health_check=_QUIET)
