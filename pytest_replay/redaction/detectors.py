"""Personal data found by its shape in free text: each detector is a regex plus a check.

The check keeps false alarms down where a shape alone would redact too
much: a card number must pass the Luhn check and start like a card, an IBAN
must have its country's length and pass mod 97, an IP address must parse.
A detector returns the *normal form* a token is derived from (card digits
without spaces, IBAN without spaces), so the same value written two ways
gets the same token.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

Normalizer = Callable[[str], "str | None"]
"""The normal form of a candidate, or None when the check refuses it."""


@dataclass(frozen=True)
class Detector:
    """One kind of personal data: how to find candidates and how to confirm them."""

    kind: str
    regex: re.Pattern[str]
    confirm: Normalizer


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum every payment card number satisfies."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


# Issuer prefixes (IIN ranges) of the card networks, with the lengths each
# issues: a Luhn-valid number that fits none of them is taken for an id.
_NETWORKS: Final = (
    (re.compile(r"4"), frozenset({13, 16, 19})),  # Visa
    (re.compile(r"5[1-5]|2(?:22[1-9]|2[3-9]\d|[3-6]\d\d|7[01]\d|720)"), frozenset({16})),  # MC
    (re.compile(r"3[47]"), frozenset({15})),  # American Express
    (re.compile(r"3(?:0[0-5]|[689])"), frozenset(range(14, 20))),  # Diners Club
    (re.compile(r"6011|65|64[4-9]"), frozenset(range(16, 20))),  # Discover
    (re.compile(r"35(?:2[89]|[3-8]\d)"), frozenset(range(16, 20))),  # JCB
    (re.compile(r"62"), frozenset(range(16, 20))),  # UnionPay
    (re.compile(r"5[0678]|6\d"), frozenset(range(12, 20))),  # Maestro
)


def card_number(candidate: str) -> str | None:
    """Digits of a payment card number: a known issuer prefix and length, Luhn-valid."""
    digits = re.sub(r"[ -]", "", candidate)
    if not 12 <= len(digits) <= 19 or not digits.isdigit():
        return None
    if not any(prefix.match(digits) and len(digits) in lengths for prefix, lengths in _NETWORKS):
        return None
    return digits if luhn_valid(digits) else None


IBAN_LENGTHS: Final = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24,
    "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SC": 31,
    "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}


def iban_valid(compact: str) -> bool:
    """Country length and the ISO 13616 mod-97 check of an IBAN without spaces."""
    if IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact[2:4].isdigit():
        return False
    moved = compact[4:] + compact[:4]
    number = "".join(str(int(char, 36)) for char in moved)
    return int(number) % 97 == 1


def iban(candidate: str) -> str | None:
    """An IBAN's compact form, if the candidate is one."""
    compact = candidate.replace(" ", "").upper()
    return compact if compact.isalnum() and iban_valid(compact) else None


def email(candidate: str) -> str | None:
    """E-mail addresses are confirmed by their shape alone."""
    return candidate


_LOCAL_V4: Final = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("0.0.0.0/32"))


def ipv4(candidate: str) -> str | None:
    """An IPv4 address, except loopback and 0.0.0.0 (they name no one)."""
    try:
        address = ipaddress.IPv4Address(candidate)
    except ValueError:
        return None
    if any(address in network for network in _LOCAL_V4):
        return None
    return candidate


def ipv6(candidate: str) -> str | None:
    """An IPv6 address, except ``::`` and ``::1``."""
    address_text = candidate.split("%", 1)[0]
    try:
        address = ipaddress.IPv6Address(address_text)
    except ValueError:
        return None
    if address.is_loopback or address.is_unspecified:
        return None
    mapped = address.ipv4_mapped
    if mapped is not None and ipv4(str(mapped)) is None:
        return None
    return candidate


def phone(candidate: str) -> str | None:
    """A phone number: 8 to 15 digits once separators are gone (E.164 allows 15)."""
    digits = re.sub(r"\D", "", candidate)
    if not 8 <= len(digits) <= 15 or len(set(digits)) == 1:
        return None
    return candidate


def as_is(candidate: str) -> str | None:
    """Shapes that are specific enough on their own (tokens, keys)."""
    return candidate


_OCTET: Final = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"

EMAIL: Final = Detector("email", re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])"
), email)
CARD: Final = Detector("card", re.compile(r"(?<![\w-])\d(?:[ -]?\d){11,18}(?![\w-])"), card_number)
IBAN: Final = Detector("iban", re.compile(
    r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?![A-Za-z0-9])"
), iban)
IPV4: Final = Detector("ipv4", re.compile(
    rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?!\.?\d)(?![\w])"
), ipv4)
IPV6: Final = Detector("ipv6", re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{0,4})"
    r"(?:%[\w.]+)?(?![\w:]|\.\d)"
), ipv6)
PHONE: Final = Detector("phone", re.compile(
    r"(?<![\w+])(?:"
    r"\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{1,5}){1,5}"  # +1 555 123 4567
    r"|\(\d{3}\) ?\d{3}[ .-]\d{4}"  # (555) 123-4567
    r"|\d{3}[.-]\d{3}[.-]\d{4}"  # 555-123-4567
    r"|0\d(?:[ .]\d{2}){4}"  # 06 12 34 56 78
    r"|0\d{2,4} \d{3,4} \d{3,4}"  # 020 7946 0958
    r")(?![\w-])"
), phone)
JWT: Final = Detector("jwt", re.compile(
    r"\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"
), as_is)

DETECTORS: Final = (JWT, EMAIL, IBAN, CARD, IPV6, IPV4, PHONE)
"""In the order they run: a found value becomes a token, which no later detector matches."""
