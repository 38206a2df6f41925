"""Personal data is replaced wherever it hides, consistently, and nothing structural is touched."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from pytest_replay.redaction import (
    Redactor,
    Rules,
    iban_valid,
    luhn_valid,
    matches,
    redact_event,
)
from tests.extract.extractsupport import Event, events_of, run_cli, write

EMAIL = "jane.doe@example.com"
OTHER_EMAIL = "max.mustermann@example.de"
CARD = "4111 1111 1111 1111"
IBAN = "DE89 3704 0044 0532 0130 00"
TOKEN = re.compile(r"<([a-z0-9_]+):([0-9a-f]{8})>")


def _corpus() -> list[Event]:
    """One request with personal data in every place a trace can hold it."""
    root = "req_pii"
    body = json.dumps({"customer": {"email": EMAIL, "password": "hunter2",
                                    "note": json.dumps({"card": CARD})}})
    return [
        {"event_type": "context", "timestamp_ns": 1, "correlation_id": root,
         "context": {"user_id": 67890, "client_ip": "203.0.113.7", "contact": EMAIL,
                     "session_id": "s3ss10n-abc"}},
        {"event_type": "function_entry", "timestamp_ns": 2, "correlation_id": root,
         "function_name": "checkout", "module": "shop.orders", "qualname": "checkout",
         "args": {"email": EMAIL, "password": "hunter2", "card": CARD,
                  "order_id": 4111111111111112, "amount": 100.0,
                  "by_email": {OTHER_EMAIL: 3},
                  "profile": {"$type": "object", "class": "shop:Profile",
                              "attrs": {"api_key": "sk_live_abc", "phone": "+1 555 123 4567"},
                              "repr": f"Profile(email={EMAIL!r})"},
                  "long_note": {"$type": "str", "head": f"write to {EMAIL} now",
                                "len": 5000, "truncated": True},
                  "already": {"$type": "redacted", "rule": "key"}}},
        {"event_type": "variable_change", "timestamp_ns": 3, "correlation_id": root,
         "variable_name": "password", "value": "correct horse"},
        {"event_type": "variable_change", "timestamp_ns": 4, "correlation_id": root,
         "variable_name": "payer_iban", "value": IBAN},
        {"event_type": "http_call", "timestamp_ns": 5, "correlation_id": root,
         "request": {"method": "POST",
                     "url": f"https://api.example.com/v1/users?email={EMAIL.replace('@', '%40')}"
                            "&api_key=abc123&page=2",
                     "headers": [["Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig"],
                                 ["Cookie", "session=abc; theme=dark"],
                                 ["X-Forwarded-For", "2001:db8::1"],
                                 ["Content-Type", "application/json"]],
                     "body": body},
         "response": {"status": 200, "headers": {"Set-Cookie": "sid=xyz"},
                      "body": json.dumps({"phone": "+44 20 7946 0958", "ok": True})}},
        {"event_type": "db_call", "timestamp_ns": 6, "correlation_id": root,
         "statement": f"SELECT id FROM users WHERE email = '{EMAIL}' AND password = 'hunter2'",
         "parameters": [EMAIL, IBAN, 42], "named": {"token": "t0k3n", "card": CARD}},
        {"event_type": "error", "timestamp_ns": 7, "correlation_id": root,
         "error_type": "PaymentError", "message": f"card {CARD} declined for {EMAIL}",
         "function_name": "checkout", "filename": "/srv/shop/orders.py", "lineno": 42,
         "source_line": "charge(card, email)",
         "locals": {"card": CARD, "email": EMAIL, "retries": 3}},
        {"event_type": "nondeterminism", "timestamp_ns": 8, "correlation_id": root,
         "source": "os.environ.get", "key": "STRIPE_SECRET", "value": "sk_live_env"},
        {"event_type": "function_exit", "timestamp_ns": 9, "correlation_id": root,
         "function_name": "checkout", "error": True, "duration_ns": 7},
    ]


def _flat(value: Any) -> str:
    return json.dumps(value)


@pytest.fixture(scope="module")
def redacted() -> tuple[list[Event], Redactor]:
    redactor = Redactor()
    return [redact_event(event, redactor) for event in _corpus()], redactor


def test_no_personal_value_survives_anywhere(redacted: tuple[list[Event], Redactor]) -> None:
    text = _flat(redacted[0])
    for secret in (EMAIL, OTHER_EMAIL, "jane.doe%40example.com", "hunter2", "correct horse",
                   "4111 1111 1111 1111", "4111111111111111", "3704 0044", "203.0.113.7",
                   "2001:db8::1", "555 123 4567", "7946 0958", "sk_live_abc", "abc123",
                   "eyJhbGci", "s3ss10n", "t0k3n", "sid=xyz", "session=abc", "sk_live_env"):
        assert secret not in text, secret


def test_structure_and_numbers_that_are_no_card_stay(
        redacted: tuple[list[Event], Redactor]) -> None:
    events, _redactor = redacted
    for before, after in zip(_corpus(), events, strict=True):
        for field in ("event_type", "timestamp_ns", "correlation_id", "function_name",
                      "module", "qualname", "variable_name", "lineno", "filename",
                      "source_line", "duration_ns", "error_type"):
            assert after.get(field) == before.get(field)
    entry = events[1]["args"]
    assert entry["order_id"] == 4111111111111112  # fails Luhn: an id, not a card
    assert entry["amount"] == 100.0
    assert entry["already"] == {"$type": "redacted", "rule": "key"}
    assert entry["profile"]["class"] == "shop:Profile"
    assert entry["long_note"]["len"] == 5000
    assert events[0]["context"]["user_id"] == 67890
    assert events[4]["response"]["status"] == 200
    assert events[5]["parameters"][2] == 42
    headers = events[4]["request"]["headers"]
    assert headers[3] == ["Content-Type", "application/json"]
    assert events[6]["locals"]["retries"] == 3


def test_same_value_same_token_everywhere(redacted: tuple[list[Event], Redactor]) -> None:
    events, _redactor = redacted
    args = events[1]["args"]
    email_token = args["email"]
    assert TOKEN.fullmatch(email_token) and email_token.startswith("<email:")
    body = json.loads(events[4]["request"]["body"])
    assert body["customer"]["email"] == email_token  # JSON inside a string
    assert events[5]["parameters"][0] == email_token  # SQL parameters
    assert f"'{email_token}'" in events[5]["statement"]  # SQL text
    assert events[6]["locals"]["email"] == email_token
    assert email_token in events[6]["message"]
    assert events[0]["context"]["contact"] == email_token
    assert args["card"] == events[6]["locals"]["card"] == events[5]["named"]["card"]
    inner = json.loads(body["customer"]["note"])  # JSON inside JSON inside a string
    assert inner["card"] == args["card"]
    assert events[5]["parameters"][1] == events[3]["value"]  # IBAN by shape and by name
    assert list(args["by_email"]) != [OTHER_EMAIL]  # a key that is an e-mail
    assert TOKEN.fullmatch(next(iter(args["by_email"])))
    query = events[4]["request"]["url"].split("?", 1)[1]
    assert "page=2" in query


def test_tokens_differ_between_runs_but_not_within_one() -> None:
    first, second = Redactor(), Redactor()
    assert first.text(EMAIL) == first.text(EMAIL)
    assert first.text(EMAIL) != first.text(OTHER_EMAIL)
    assert first.text(EMAIL) != second.text(EMAIL)


def test_counts_by_rule(redacted: tuple[list[Event], Redactor]) -> None:
    _events, redactor = redacted
    counts = redactor.counts
    assert counts["email"] >= 9
    assert counts["card"] >= 5
    assert counts["iban"] == 2  # by shape: payer_iban is no secret name, nor is a parameter
    assert counts["phone"] == 2
    assert counts["ipv4"] == 1 and counts["ipv6"] == 1
    assert counts["secret_key"] >= 8
    assert redactor.secret_keys["password"] >= 3
    assert redactor.secret_keys["authorization"] == 1


@pytest.mark.parametrize("number", ["4111111111111112", "1234567812345678", "4111-1111-1111",
                                    "9999999999999995"])
def test_numbers_that_are_not_cards(number: str) -> None:
    assert Redactor().text(f"ref {number}") == f"ref {number}"


@pytest.mark.parametrize("card", ["4111111111111111", "5555 5555 5555 4444", "378282246310005",
                                  "6011-1111-1111-1117", "3530111333300000"])
def test_cards_of_every_network(card: str) -> None:
    assert luhn_valid(card.replace(" ", "").replace("-", ""))
    assert Redactor().text(f"pay {card}").startswith("pay <card:")


@pytest.mark.parametrize(("text", "valid"), [
    ("DE89370400440532013000", True), ("GB82WEST12345698765432", True),
    ("FR1420041010050500013M02606", True), ("DE89370400440532013001", False),
    ("GB82WEST1234569876543", False), ("XX89370400440532013000", False),
])
def test_iban_check(text: str, valid: bool) -> None:
    assert iban_valid(text) is valid
    assert (Redactor().text(f"to {text}") != f"to {text}") is valid


@pytest.mark.parametrize("text", ["version 1.2.3.4.5", "at 12:30:45", "127.0.0.1:8080",
                                  "mac 00:1a:2b:3c:4d:5e", "::1", "2025-10-31 02:00:00",
                                  "call 5551234567", "id 123e4567-e89b-12d3-a456-426614174000"])
def test_lookalikes_stay(text: str) -> None:
    assert Redactor().text(text) == text


def test_extra_keys_and_patterns() -> None:
    redactor = Redactor(Rules(extra_keys=["customer_ref"], patterns=[r"ORD-\d{6}"]))
    out = redactor.value({"customer_ref": "C-1", "note": "see ORD-123456 and ORD-123456",
                          "nested": json.dumps({"Customer_Ref": "C-2"})})
    assert out["customer_ref"].startswith("<secret:")
    tokens = TOKEN.findall(out["note"])
    assert len(tokens) == 2 and tokens[0] == tokens[1] and tokens[0][0] == "custom"
    assert "C-2" not in out["nested"]
    assert redactor.counts[r"custom:ORD-\d{6}"] == 2


CONFIGS = {
    "pyproject.toml": '[tool.pytest.ini_options]\nreplay_redact_keys = ["customer_ref"]\n'
                      'replay_redact_patterns = ["ORD-\\\\d{6}"]\n',
    "pytest.ini": "[pytest]\nreplay_redact_keys = customer_ref\n"
                  "replay_redact_patterns =\n    ORD-\\d{6}\n",
    "tox.ini": "[pytest]\nreplay_redact_keys = customer_ref\n"
               "replay_redact_patterns = ORD-\\d{6}\n",
    "setup.cfg": "[tool:pytest]\nreplay_redact_keys = customer_ref\n"
                 "replay_redact_patterns = ORD-\\d{6}\n",
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_cli_reads_rules_from_pytest_configuration(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text(CONFIGS[name], encoding="utf-8")
    log = write(tmp_path / "app.log", [
        {"event_type": "function_entry", "timestamp_ns": 1, "correlation_id": "req_c",
         "function_name": "f", "args": {"customer_ref": "C-9", "note": "ORD-000042",
                                         "email": EMAIL}},
    ])
    work = tmp_path / "sub" / "dir"
    work.mkdir(parents=True)
    result = run_cli(log, cwd=work)
    assert result.returncode == 0, result.stderr
    args = events_of(result.stdout)[0]["args"]
    assert args["customer_ref"].startswith("<secret:")
    assert args["note"].startswith("<custom:")
    assert args["email"].startswith("<email:")
    assert re.search(rb"redacted 3 values: .*custom:ORD-\\d\{6\}: 1", result.stderr)
    assert b"secret key (customer_ref 1): 1" in result.stderr


def test_cli_redacts_by_default_everywhere_and_no_redact_turns_it_off(tmp_path: Path) -> None:
    log = write(tmp_path / "app.log", _corpus())
    for arguments in ([], ["-o", str(tmp_path / "out.jsonl")]):
        result = run_cli(log, *arguments)
        data = result.stdout if not arguments else (tmp_path / "out.jsonl").read_bytes()
        assert EMAIL.encode() not in data
        assert b"redacted" in result.stderr and b"email: " in result.stderr
    plain = run_cli(log, "--no-redact")
    assert EMAIL.encode() in plain.stdout
    assert b"not redacted (--no-redact)" in plain.stderr


def test_a_bad_pattern_in_configuration_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\nreplay_redact_patterns = ORD-(\n")
    log = write(tmp_path / "app.log", _corpus())
    result = run_cli(log, cwd=tmp_path)
    assert result.returncode == 2
    assert b"replay_redact_patterns" in result.stderr


def test_recorded_tokens_match_live_values_at_replay() -> None:
    redactor = Redactor()
    url = f"https://api.example.com/users?email={EMAIL.replace('@', '%40')}&key=k1&page=2"
    recorded = redactor.text(url)
    assert EMAIL.replace("@", "%40") not in recorded
    assert matches(recorded, url)  # the real value (from configuration, say)
    assert matches(recorded, recorded)  # the token itself (from redacted arguments)
    assert not matches(recorded, url.replace("page=2", "page=3"))
    body = redactor.text(json.dumps({"to": EMAIL, "cc": EMAIL, "bcc": OTHER_EMAIL}))
    assert matches(body, json.dumps({"to": "a@b.c", "cc": "a@b.c", "bcc": "d@e.f"}))
    assert not matches(body, json.dumps({"to": "a@b.c", "cc": "x@y.z", "bcc": "d@e.f"}))
