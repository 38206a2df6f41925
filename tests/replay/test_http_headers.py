"""A served answer's header message is the one vcrpy's own parser would build, odd headers too."""

from __future__ import annotations

import http.client
from typing import Any

import pytest
import vcr.stubs

from pytest_replay.replay.http_headers import header_parser, plain_message

VCRPY_PARSE = vcr.stubs.parse_headers
PLAIN: dict[str, dict[str, list[str]]] = {
    "json answer": {"Content-Type": ["application/json"], "Content-Length": ["57"],
                    "Server": ["BaseHTTP/0.6 Python/3.11.7"],
                    "Date": ["Thu, 26 Nov 2026 09:35:11 GMT"]},
    "repeated": {"Set-Cookie": ["a=1; Path=/", "b=2"], "set-cookie": ["c=3"]},
    "empty value": {"X-Empty": [""]},
    "inner and trailing blanks": {"X-Spaces": ["a  b\tc  "]},
    "no headers": {},
    "symbols in names": {"X-Weird_Name.v2!": ["ok"]},
    "text type": {"Content-Type": ["text/plain; charset=utf-8"]},
}
ODD: dict[str, dict[str, Any]] = {
    "leading blank": {"X-Pad": ["  padded"]},
    "line break": {"X-Folded": ["one\r\n two"]},
    "form feed": {"X-Feed": ["a\x0cb"]},
    "non-ascii value": {"X-Name": ["Zoë"]},
    "non-ascii name": {"X-Namé": ["a"]},
    "space in name": {"Bad Name": ["a"]},
    "multipart body": {"Content-Type": ["multipart/mixed; boundary=zz"]},
    "message body": {"Content-Type": ["message/rfc822"]},
    "a value that is not a list": {"X-Str": "abc"},
    "many": {f"X-{n}": ["v"] for n in range(80)},
}


def as_dict(message: Any) -> dict[str, Any]:
    """Everything a message holds (headers, payload, defects, policy...), parts included."""
    fields = {k: v for k, v in vars(message).items() if k not in ("defects", "_payload")}
    payload = message.get_payload()
    fields["_payload"] = [as_dict(part) for part in payload] if isinstance(
        payload, list) else payload
    fields["defects"] = [type(d) for d in message.defects]
    return fields


@pytest.mark.parametrize("headers", PLAIN.values(), ids=PLAIN.keys())
def test_plain_headers_give_the_message_vcrpy_parses(headers: dict[str, list[str]]) -> None:
    fast = plain_message(headers)
    assert fast is not None
    assert as_dict(fast) == as_dict(VCRPY_PARSE(headers))
    assert fast.items() == VCRPY_PARSE(headers).items()


@pytest.mark.parametrize("headers", ODD.values(), ids=ODD.keys())
def test_odd_headers_are_left_to_vcrpys_parser(headers: dict[str, Any]) -> None:
    assert plain_message(headers) is None
    assert as_dict(header_parser(VCRPY_PARSE)(headers)) == as_dict(VCRPY_PARSE(headers))


def test_too_many_headers_fail_as_vcrpy_fails() -> None:
    headers = {f"X-{n}": ["v"] for n in range(120)}
    with pytest.raises(http.client.HTTPException, match="got more than 100 headers"):
        header_parser(VCRPY_PARSE)(headers)
