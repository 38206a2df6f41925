"""Suite-wide isolation: capture state never leaks from one test into the next."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _capture_recorders_removed_after_each_test() -> Iterator[None]:
    """``configure()`` installs process-wide recorders; take them out again after the test."""
    yield
    import pytest_replay
    from pytest_replay.capture.db import uninstall_db_capture
    from pytest_replay.capture.http import uninstall_http_capture
    from pytest_replay.capture.nondeterminism import uninstall_nondeterminism_capture

    pytest_replay.shutdown()
    uninstall_http_capture()
    uninstall_db_capture()
    uninstall_nondeterminism_capture()
