"""Types of the optional C accelerator of ``@traced`` (see ``_speedups.c``)."""

from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, Final

INTERFACE: Final[int]
"""Version of the contract with ``traced.py`` (see ``_speedups_loader.INTERFACE``)."""

class Ids(Iterator[bytes]):
    """``prefix + hex counter`` (1, 2, ...) as bytes."""

    def __init__(self, prefix: bytes) -> None: ...
    def __next__(self) -> bytes: ...

class TracedFunction:
    """The wrapper ``@traced`` returns for sync callables."""

    __wrapped__: Callable[..., Any]
    def __init__(self, function: Callable[..., Any], site: object,
                 fallback: Callable[..., Any]) -> None: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...
    def __get__(self, instance: object, owner: type | None = None) -> Any: ...

def install(*, runtime: object, ids: object, frame_var: ContextVar[Any], trace_type: type,
            dumps: Callable[[Any], bytes], value_json: Callable[[Any], bytes],
            capture_failed: Callable[[Exception], None],
            record_failure: Callable[[Any, bytes, int, BaseException], None],
            unsampled: object, marker: Callable[..., Any], min_scanned: int) -> None: ...
def float_json(value: float) -> bytes | None: ...
def shortcuts() -> dict[str, bool]: ...

class LineQueue:
    def __init__(self, buffer: list[Any], soft_limit: int, crowded: Callable[[Any], None], /
                 ) -> None: ...
    def write(self, line: bytes, /) -> None: ...
    def point(self, buffer: list[Any], soft_limit: int, /) -> None: ...
