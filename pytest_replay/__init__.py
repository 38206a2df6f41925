"""telemetry-replay: production traces in, pytest regression tests out.

The capture API lives here (``import pytest_replay as replay``); the pytest
plugin, the replay engine and the command-line tools import it, never the
other way round.
"""

from __future__ import annotations

from pytest_replay.capture.api import (
    Telemetry,
    configure,
    context,
    loop,
    request_scope,
    shutdown,
    stats,
    variable,
)
from pytest_replay.capture.redact import Redaction
from pytest_replay.capture.sinks import FileSink, LoggingSink, MemorySink, Sink
from pytest_replay.capture.traced import traced
from pytest_replay.format.values import Limits

__version__ = "0.1.0"

__all__ = [
    "FileSink",
    "Limits",
    "LoggingSink",
    "MemorySink",
    "Redaction",
    "Sink",
    "Telemetry",
    "__version__",
    "configure",
    "context",
    "loop",
    "request_scope",
    "shutdown",
    "stats",
    "traced",
    "variable",
]
