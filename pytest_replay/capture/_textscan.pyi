"""Types of the optional C value walker of capture (see ``_textscan.c``)."""

from collections.abc import Callable, Iterable
from typing import Any, Final

INTERFACE: Final[int]
"""Version of the contract with ``textscan.py`` (see ``textscan.INTERFACE``)."""

class AnchorGate:
    """Whether a string may hold secret-shaped text: any rule's literal anchor is in it.

    ``case_anchors`` are looked for as they are, ``folded_anchors`` (lower case) in the
    lower-cased text. Calling the gate answers ``fallback(text)`` when an anchor is
    there (or the text is not ASCII, or not an exact ``str``) and ``False`` otherwise;
    without a fallback it answers whether the text must be asked about at all.
    """

    def __init__(self, case_anchors: tuple[str, ...], folded_anchors: tuple[str, ...],
                 fallback: Callable[[str], bool] | None = None, /) -> None: ...
    def __call__(self, text: str, /) -> bool: ...
    def may_hold(self, text: str, /) -> bool: ...

def shape(value: Any, max_str: int, max_items: int, max_depth: int,
          is_secret: Callable[[str], bool], verdicts: dict[str, bool], safe_keys: set[str],
          secret_text: Callable[[str], bool] | None,
          children: Callable[[Any, type, int], Iterable[Any]], min_scanned: int, /) -> int:
    """``plain.shape`` in C: ``PLAIN`` (0), ``BOUNDED`` (1) or ``HUGE`` (2)."""

def scrub_encoded(value: object, structural: frozenset[str], gate: AnchorGate,
                  min_scanned: int, scrub: Callable[[str], str], /) -> object:
    """``Redaction.scrub_encoded`` in C: strings the gate lets through go to ``scrub``."""
