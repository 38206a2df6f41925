"""Redaction: on by default, everywhere capture looks, configurable, and following configure()."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

import pytest_replay as replay
from pytest_replay.capture.runtime import RUNTIME
from tests.capture.capturesupport import Captured

REDACTED = {"$type": "redacted", "rule": "key"}
DEFAULT_KEYS = ("password", "passwd", "secret", "token", "api_key", "apikey", "auth",
                "authorization", "credentials", "bearer", "session", "cookie", "csrftoken")
VARIANTS = ("{}", "{}".upper, "user_{}", "X-{}", "{}_value")


@pytest.mark.parametrize("key", DEFAULT_KEYS)
def test_default_keys_are_redacted_in_args_variables_context_and_locals(
        captured: Captured, key: str) -> None:
    secret = f"s3cr3t-{key}-value"

    @replay.traced
    def handler(**params: str) -> None:
        replay.variable(key, secret)
        replay.context({key: secret, "nested": {key: secret}})
        local_copy = dict(params)
        raise RuntimeError(f"failed for {len(local_copy)}")

    with replay.request_scope("req_r"), pytest.raises(RuntimeError):
        handler(**{key: secret, "plain": "visible"})
    assert secret.encode() not in captured.raw()
    entry = captured.events("function_entry")[0]
    assert entry["args"]["params"] == {key: REDACTED, "plain": "visible"}
    assert captured.events("variable_change")[0]["value"] == REDACTED
    assert captured.events("context")[0]["context"] == {key: REDACTED,
                                                       "nested": {key: REDACTED}}
    assert captured.events("error")[0]["locals"]["local_copy"][key] == REDACTED


@pytest.mark.parametrize("shape", ["password", "PASSWORD", "db_password", "X-Auth-Token",
                                   "sessionid", "csrftoken", "client_secret", "auth",
                                   "auth_header", "authHeader", "SHOP_DB_PASS", "pin"])
def test_secret_parameter_names_are_redacted(captured: Captured, shape: str) -> None:
    traced = replay.traced(_function_with_parameter(shape))
    traced("s3cr3t-param")
    entry = captured.events("function_entry")[0]
    assert entry["args"][_identifier(shape)] == REDACTED
    assert b"s3cr3t-param" not in captured.raw()


def _identifier(name: str) -> str:
    return re.sub(r"\W", "_", name)


def _function_with_parameter(name: str) -> Callable[[str], int]:
    """A one-parameter function whose parameter is called ``name`` (as an identifier)."""
    def template(value: str) -> int:
        return 1

    template.__code__ = template.__code__.replace(co_varnames=(_identifier(name),))
    return template


def test_nested_and_object_values_are_redacted(captured: Captured) -> None:
    class Client:
        def __init__(self) -> None:
            self.api_token = "objtok-123"
            self.base = "https://x"

    @replay.traced
    def send(headers: dict[str, str], client: Client) -> int:
        return len(headers)

    send({"Authorization": "Bearer abc-999", "Accept": "json"}, Client())
    args = captured.events("function_entry")[0]["args"]
    assert args["headers"] == {"Authorization": REDACTED, "Accept": "json"}
    assert args["client"]["attrs"] == {"api_token": REDACTED, "base": "https://x"}
    assert b"abc-999" not in captured.raw() and b"objtok-123" not in captured.raw()


def test_extra_keys_and_patterns(restore_capture: None) -> None:
    sink = replay.MemorySink()
    replay.configure(sink=sink, redact=replay.Redaction(keys=["branch_code"],
                                                        patterns=[r"^x_private_"]))

    @replay.traced
    def f(branch_code: str, x_private_note: str, password: str, note: str) -> None:
        return None

    f("1234", "hidden", "pw", "shown")
    args = Captured(sink).events("function_entry")[0]["args"]
    assert args == {"branch_code": REDACTED, "x_private_note": REDACTED, "password": REDACTED,
                    "note": "shown"}


def test_redaction_off_must_be_said_explicitly(restore_capture: None) -> None:
    for setting in (False, replay.Redaction.off()):
        sink = replay.MemorySink()
        replay.configure(sink=sink, redact=setting)
        with replay.request_scope("req_off"):
            replay.variable("password", "visible-pw")
        assert Captured(sink).events("variable_change")[0]["value"] == "visible-pw"


def test_redaction_follows_configure_for_functions_decorated_before(
        restore_capture: None) -> None:
    @replay.traced
    def login(user: str, branch_code: str, password: str) -> str:
        return user

    first = replay.MemorySink()
    replay.configure(sink=first, redact=replay.Redaction(keys=["branch_code"]))
    login("ann", "1234", "pw")
    second = replay.MemorySink()
    replay.configure(sink=second, redact=False)
    login("ann", "1234", "pw")
    third = replay.MemorySink()
    replay.configure(sink=third)
    login("ann", "1234", "pw")
    assert Captured(first).events("function_entry")[0]["args"] == {
        "user": "ann", "branch_code": REDACTED, "password": REDACTED}
    assert Captured(second).events("function_entry")[0]["args"] == {
        "user": "ann", "branch_code": "1234", "password": "pw"}
    assert Captured(third).events("function_entry")[0]["args"] == {
        "user": "ann", "branch_code": "1234", "password": REDACTED}


def test_redaction_set_directly_on_the_runtime_is_followed(captured: Captured) -> None:
    @replay.traced
    def f(order_ref: str) -> None:
        return None

    f("visible")
    RUNTIME.redaction = replay.Redaction(keys=["order_ref"])
    f("hidden")
    first, second = (e["args"]["order_ref"] for e in captured.events("function_entry"))
    assert (first, second) == ("visible", REDACTED)


def test_harmless_names_are_not_redacted(captured: Captured) -> None:
    @replay.traced
    def f(author: str, passenger: str, tokens_used: int, amount: float) -> None:
        return None

    f("ann", "bob", 3, 1.5)
    args = captured.events("function_entry")[0]["args"]
    assert args["author"] == "ann"
    assert args["passenger"] == "bob"
    assert args["amount"] == 1.5


SECRET_TEXT = (
    ("Authorization: Bearer sk_live_val9ab1Uu", "sk_live_val9ab1Uu"),
    ("https://partner.example/v1/pay?api_key=urlkey-arg-2d8cVv&currency=usd",
     "urlkey-arg-2d8cVv"),
    ("postgresql://shop:pg-dsn-pw-6e6eXx@db.internal/shop", "pg-dsn-pw-6e6eXx"),
    ("partner rejected token tok-exc-0deRr4 for ord-1", "tok-exc-0deRr4"),
    ("charge with sk_test_abcdef123456 now", "sk_test_abcdef123456"),
    ("session=cookie-sess-88adJj; theme=dark", "cookie-sess-88adJj"),
)


@pytest.mark.parametrize(("text", "secret"), SECRET_TEXT)
def test_secret_text_in_rare_events_is_scrubbed(captured: Captured, text: str,
                                                secret: str) -> None:
    @replay.traced
    def fails(note: str) -> None:
        detail = text
        raise PermissionError(f"refused: {detail}")

    with replay.request_scope("req_text"):
        replay.variable("note", text)
        replay.context(detail=text)
        for _ in replay.loop([text], "lines"):
            pass
        with pytest.raises(PermissionError):
            fails("plain")
    raw = captured.raw()
    assert secret.encode() not in raw
    assert raw.count(b"[REDACTED]") >= 5  # variable, context, loop, message, local
    variable = captured.events("variable_change")[0]["value"]
    assert "[REDACTED]" in variable and variable != "[REDACTED]"  # the rest of the text stays


def test_per_call_values_are_scanned_by_default(restore_capture: None) -> None:
    @replay.traced
    def audit(header_line: str) -> str:
        return header_line

    text, secret = SECRET_TEXT[0]
    default, everywhere, own = replay.MemorySink(), replay.MemorySink(), replay.MemorySink()
    replay.configure(sink=default)
    audit(text)
    replay.configure(sink=everywhere, redact=replay.Redaction(everywhere=True))
    audit(text)
    replay.configure(sink=own, redact=replay.Redaction(patterns=[r"sk_live_\w+"]))
    audit(text)
    for sink in (default, everywhere, own):
        assert secret.encode() not in Captured(sink).raw()
        entry, leave = Captured(sink).events()
        assert secret not in entry["args"]["header_line"]
        assert "[REDACTED]" in leave["return_value"]


def test_secret_loop_names_and_function_names_hide_values(captured: Captured) -> None:
    @replay.traced
    def issue_api_key(user: str) -> str:
        return "issued-key-5b0fAa"

    with replay.request_scope("req_names"):
        issue_api_key("ann")
        for _ in replay.loop(["loop-tok-e4d1Oo", "x"], "api_tokens"):
            pass
    raw = captured.raw()
    assert b"issued-key-5b0fAa" not in raw and b"loop-tok-e4d1Oo" not in raw
    assert captured.events("function_exit")[0]["return_value"] == REDACTED
    assert [e["value"] for e in captured.events("loop_iteration")] == [REDACTED, REDACTED]


def test_values_scan_can_be_turned_off(restore_capture: None) -> None:
    sink = replay.MemorySink()
    replay.configure(sink=sink, redact=replay.Redaction(values=False))
    with replay.request_scope("req_novalues"):
        replay.variable("note", SECRET_TEXT[0][0])
    assert Captured(sink).events("variable_change")[0]["value"] == SECRET_TEXT[0][0]


def test_texts_remembered_as_clean_never_hide_a_secret_and_stay_bounded() -> None:
    from pytest_replay.capture.redact import Redaction

    redaction = Redaction()
    header = "application/json"
    assert redaction.scrub(header) is header
    assert header in redaction.clean_texts  # asked once, remembered
    secret = "Bearer abcdef123456"
    for _ in range(3):  # a secret is scrubbed every time: it is never remembered as clean
        assert redaction.scrub(secret) == "Bearer [REDACTED]"
    assert secret not in redaction.clean_texts
    body = "x" * 65 + " token=abcdef"
    assert "abcdef" not in redaction.scrub(body)
    for index in range(10_000):  # dates, ids: churn never grows the memory without bound
        redaction.scrub(f"Thu, 26 Nov 2026 09:{index:05d} GMT")
    assert len(redaction.clean_texts) <= 4096


SHORT_SECRETS = (
    "Bearer abcdef123456", "bEaReR abcdef123456", "BASIC dXNlcjpwYXNz", "token abcdef12",
    "sk_live_abcdef123456", "ghp_" + "a" * 24, "AKIA" + "B" * 16, "xoxb-1234567890ab",
    "eyJabcdefgh.abcdefghij.sig", "https://ann:hunter2@db.example", "?api_key=abc123&x=1",
    "DB_PASS=hunter22", "x=1;Session=abcdef",
)


@pytest.mark.parametrize("text", SHORT_SECRETS)
def test_short_texts_cleared_at_once_by_the_anchor_gate_still_show_every_secret(
        text: str) -> None:
    from pytest_replay.capture.redact import Redaction

    redaction = Redaction()
    assert redaction.anchor_gate is not None and len(text) <= 64
    assert redaction.holds_secret_text(text) is True
    assert "[REDACTED]" in redaction.scrub(text)
    assert redaction.holds_secret_text("ch_1001 succeeded") is False


def test_a_pattern_of_ones_own_has_no_anchor_so_short_texts_are_searched_in_full() -> None:
    from pytest_replay.capture.redact import Redaction

    redaction = Redaction(patterns=[r"SHOP-\d{4}"])
    assert redaction.anchor_gate is None
    assert redaction.holds_secret_text("order SHOP-1234") is True


@pytest.mark.parametrize("secret_part", [
    "Authorization: BEARER abcdef123456", "next?Api_Key=abc123&x=1", "SHOP_DB_Password=hunter22",
])
def test_long_texts_are_searched_rule_by_rule_whatever_the_case(secret_part: str) -> None:
    from pytest_replay.capture.redact import Redaction

    text = "x" * 80 + " " + secret_part + " " + "y" * 80
    scrubbed = Redaction().scrub(text)
    assert "[REDACTED]" in scrubbed
    assert scrubbed.startswith("x" * 80) and scrubbed.endswith("y" * 80)


def test_scrubbing_an_encoded_value_copies_only_what_changes() -> None:
    from pytest_replay.capture.redact import Redaction

    redaction = Redaction()
    numbers = {"rows": [[1, 2.5], [3, None]], "description": ["id", "total"]}
    assert redaction.scrub_encoded(numbers) is numbers  # nothing to hide: the same object
    event: dict[str, list[Any]] = {"rows": [[1, "Bearer abcdef123456"], [2, "plain text"]],
                                   "note": ["ok"]}
    scrubbed = redaction.scrub_encoded(event)
    assert isinstance(scrubbed, dict)
    assert scrubbed == {"rows": [[1, "Bearer [REDACTED]"], [2, "plain text"]], "note": ["ok"]}
    assert event["rows"][0][1] == "Bearer abcdef123456"  # the original is left as it was
    assert scrubbed["note"] is event["note"]  # unchanged parts are shared, not copied
