"""Find personal data in trace events and replace it with deterministic tokens.

Used by ``extract-traces`` before anything leaves production, and usable by
any other writer of trace files::

    from pytest_replay.redaction import Redactor, Rules, redact_event

    redactor = Redactor(Rules(extra_keys=["customer_ref"]))
    clean = redact_event(event, redactor)
    redactor.counts   # Counter({"email": 2, "secret_key": 1})

At replay, :func:`matches` compares a recorded value that holds tokens with
a live one (each token stands for some value). The rules, the tokens and
what is *not* detected are in docs/redaction.md.
"""

from __future__ import annotations

from pytest_replay.redaction.detectors import DETECTORS, Detector, iban_valid, luhn_valid
from pytest_replay.redaction.event import STRUCTURAL_FIELDS, redact_event
from pytest_replay.redaction.redactor import Redactor
from pytest_replay.redaction.rules import SECRET_NAMES, SECRET_WORDS, RuleError, Rules
from pytest_replay.redaction.tokens import TOKEN, has_tokens, matches

__all__ = [
    "DETECTORS",
    "SECRET_NAMES",
    "SECRET_WORDS",
    "STRUCTURAL_FIELDS",
    "TOKEN",
    "Detector",
    "Redactor",
    "RuleError",
    "Rules",
    "has_tokens",
    "iban_valid",
    "luhn_valid",
    "matches",
    "redact_event",
]
