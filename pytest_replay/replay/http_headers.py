"""The header message of a served HTTP answer, built without the email parser when it can be.

vcrpy turns recorded headers into an ``http.client.HTTPMessage`` by writing
them out as text and running the standard library's email parser over it,
three times per request (the response, ``info()``, ``getheaders()``): a
tenth of a replayed request. Headers that parser would take as they are
(printable ASCII names and values, no folding, no body for it to parse, far
from its limits) give the same message when set one by one; anything else
goes through vcrpy's own function, so odd headers keep vcrpy's behaviour,
errors included.
"""

from __future__ import annotations

import http.client
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

_NAME: Final = re.compile(r"[!-9;-~]+")
"""What the email parser reads as a header name: printable ASCII but ``:``."""
_VALUE: Final = re.compile(r"(?:[!-~][\t -~]*)?")
"""A value the parser keeps as it is: printable ASCII and tabs, no leading blank, no line break."""
_MOST_LINES: Final = 64
"""Well below http.client's limit of 100 header lines (which raises)."""
_LONGEST_LINE: Final = 8192
"""Well below http.client's limit of 65536 bytes per line (which raises)."""
_PARSED_BODIES: Final = frozenset({"message", "multipart"})
"""Content types whose (empty) body the parser would parse: their message differs."""

Parse = Callable[[Mapping[str, Any]], http.client.HTTPMessage]


def header_parser(original: Parse) -> Parse:
    """vcrpy's ``parse_headers`` with a fast path; ``original`` handles everything else."""

    def parse_headers(header_list: Mapping[str, Any]) -> http.client.HTTPMessage:
        message = plain_message(header_list)
        return original(header_list) if message is None else message

    return parse_headers


def plain_message(header_list: Mapping[str, Any]) -> http.client.HTTPMessage | None:
    """The message vcrpy's parser would build from ``{name: [values]}``, or None if unsure."""
    message = http.client.HTTPMessage()
    lines = 0
    for name, values in header_list.items():
        if type(name) is not str or type(values) is not list or not _NAME.fullmatch(name):
            return None
        for value in values:
            if (type(value) is not str or len(name) + len(value) > _LONGEST_LINE
                    or not _VALUE.fullmatch(value)):
                return None
            message[name] = value
            lines += 1
    if lines > _MOST_LINES or message.get_content_maintype() in _PARSED_BODIES:
        return None
    message.set_payload("")  # what the parser leaves for the empty body
    return message
