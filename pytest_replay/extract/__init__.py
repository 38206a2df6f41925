"""Cut whole requests out of production logs: the engine behind ``extract-traces``.

The selection reads logs in large blocks and parses only the lines that can
matter (see :mod:`pytest_replay.extract.byid` and
:mod:`pytest_replay.extract.general`); the output goes through
:mod:`pytest_replay.redaction` unless redaction is turned off.
"""

from __future__ import annotations

from pytest_replay.extract.criteria import Criteria
from pytest_replay.extract.engine import Options, Report, extract

__all__ = ["Criteria", "Options", "Report", "extract"]
