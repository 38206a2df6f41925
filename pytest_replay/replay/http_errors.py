"""A recorded failure (``error_type``, ``error_module``, message) raised again, safely.

Only exception classes of modules already imported are rebuilt, and only
through constructors that take a message; anything else becomes a plain
error naming what was recorded.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

# -- recorded errors ---------------------------------------------------------------------


def rebuild_error(error_type: str, error_module: str, message: str) -> BaseException:
    """The recorded exception again: same class (if already imported) and same message.

    Only classes of modules the process already imported are considered, and
    only ``Exception`` subclasses: a trace never makes replay import anything.
    Anything else becomes a ``ConnectionError`` carrying the recorded message.
    """
    cls = _exception_class(error_module, error_type)
    if cls is not None:
        for error in (_built(cls, message), _bare(cls, message)):
            if error is not None and _text_of(error) == message:
                return error
    return ConnectionError(message)


def _built(cls: type[Exception], message: str) -> Exception | None:
    try:
        return cls(message)
    except Exception:  # a constructor that wants more than a message: try without it
        return None


def _bare(cls: type[Exception], message: str) -> Exception | None:
    try:
        error = cls.__new__(cls)
        BaseException.__init__(error, message)
    except Exception:  # a class that cannot even be made bare: the fallback serves
        return None
    return error


def _text_of(error: BaseException) -> str | None:
    try:
        return str(error)
    except Exception:
        return None


def _exception_class(module_name: str, qualname: str) -> type[Exception] | None:
    """The class ``module:qualname`` names, read from namespaces only: no code runs.

    Attribute access could run a module's lazy ``__getattr__`` (and import on
    the trace's word) or a metaclass's hooks; reading ``__dict__`` does not.
    """
    found: Any = sys.modules.get(module_name or "builtins")
    for part in qualname.split("."):
        if found is None or not part.isidentifier() or part.startswith("__"):
            return None
        try:
            namespace = object.__getattribute__(found, "__dict__")
        except AttributeError:
            return None
        found = namespace.get(part) if isinstance(namespace, Mapping) else None
    if isinstance(found, type) and issubclass(found, Exception):
        return found
    return None


