"""What a decorated function knows before it is called, and how its arguments become JSON.

Everything static about a call site (names, the redacted parameters, the
constant parts of both event lines, the service field) is encoded once per
configuration into ``bytes`` templates; each call only pastes in the clock,
the ids, the arguments and the result. Scalar arguments go to ``orjson``
as they are, after checks that prove the encoder would write them the same.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Final, final

import orjson

from pytest_replay.capture.redact import MIN_SCANNED
from pytest_replay.capture.runtime import RUNTIME
from pytest_replay.format import events as ev
from pytest_replay.format.values import redacted

_UNROLLED: Final = 3
"""Arities :func:`_positional_binder` writes scalars for without the encoder (1 to 3)."""
_SAFE_NOT_FLOAT: Final = frozenset({int, bool, type(None)})
"""Types orjson writes as the encoder would (floats too, when finite; strings too, when
short or free of secret-shaped text, see :func:`_plain_str`), given the checks made after
dumping: orjson refuses ints past 64 bits and lone surrogates (TypeError), and a dump no
longer than the string cap holds no string past it."""


def _plain_str(value: str) -> bool:
    """Whether a string may skip the encoder: nothing in it the value scan would redact.

    One past the cap never may: the encoder keeps (and scans) only its head, where
    scanning and dumping the whole of it would cost its full length.
    """
    if len(value) > RUNTIME.max_str:
        return False
    scan = RUNTIME.secret_text
    return scan is None or len(value) < MIN_SCANNED or not scan(value)
_dumps: Final = orjson.dumps


def plain(value: Any) -> Any:
    """``value`` itself when orjson writes it exactly as the encoder would, else its encoding."""
    return RUNTIME.encode(value)


def value_json(value: Any) -> bytes:
    """One value as JSON bytes, capped and redacted like every captured value."""
    if value is None:
        return b"null"
    kind = type(value)
    if (kind is float and value - value == 0.0) or kind in _SAFE_NOT_FLOAT or (
            kind is str and _plain_str(value)):
        try:
            out = _dumps(value)
        except TypeError:  # an int beyond 64 bits, a lone surrogate: the encoder tags them
            return _dumps(RUNTIME.encode(value))
        if len(out) <= RUNTIME.max_str:
            return out
    return _dumps(plain(value))


_REDACTED_JSON: Final = _dumps(redacted())


def _redacted_json(value: Any) -> bytes:
    """The result of a function whose name says it is secret."""
    return _REDACTED_JSON


def _template(parts: tuple[bytes, ...], *markers: bytes) -> bytes:
    """A ``%`` template: ``parts`` (escaped) with ``markers`` (``%d``, ``%b``) between them."""
    out = parts[0].replace(b"%", b"%%")
    for marker, part in zip(markers, parts[1:], strict=True):
        out += marker + part.replace(b"%", b"%%")
    return out


@final
class CallSite:
    """What is known about a decorated function before it is ever called."""

    __slots__ = (
        "_names",
        "arg_keys",
        "entry_format",
        "entry_parts",
        "exit_format",
        "exit_parts",
        "function_name",
        "generation",
        "keyword_only",
        "module",
        "positional",
        "positional_json",
        "positional_only",
        "qualname",
        "result_json",
        "root_format",
        "root_parts",
        "secret",
        "varargs",
        "varkw",
    )

    def __init__(self, function: Callable[..., Any]) -> None:
        code = getattr(function, "__code__", None)
        self.function_name: str = getattr(function, "__name__", None) or "?"
        self.module: str = getattr(function, "__module__", None) or "?"
        self.qualname: str = getattr(function, "__qualname__", None) or self.function_name
        self.positional: tuple[str, ...] = ()
        self.positional_only = 0
        self.keyword_only: frozenset[str] = frozenset()
        self.varargs: str | None = None
        self.varkw: str | None = None
        if code is not None:
            count = code.co_argcount
            names = code.co_varnames
            self.positional = tuple(names[:count])
            self.positional_only = code.co_posonlyargcount
            index = count + code.co_kwonlyargcount
            self.keyword_only = frozenset(names[count:index])
            if code.co_flags & inspect.CO_VARARGS:
                self.varargs = names[index]
                index += 1
            if code.co_flags & inspect.CO_VARKEYWORDS:
                self.varkw = names[index]
        self._names: tuple[str, ...] = tuple(code.co_varnames) if code is not None else ()
        self.generation = -1
        self.secret: frozenset[str] = frozenset()
        self.entry_format = self.root_format = self.exit_format = b""
        self.entry_parts: tuple[bytes, ...] = ()
        self.root_parts: tuple[bytes, ...] = ()
        self.exit_parts: tuple[bytes, ...] = ()
        self.arg_keys: tuple[bytes, ...] = ()
        """``{"a":``, ``,"b":`` when :attr:`positional_json` is the scalar binder, else ``()``."""
        self.positional_json: Callable[[tuple[Any, ...]], bytes] = self._bound_json
        """``args -> JSON`` for calls without keyword arguments (the common case)."""
        self.result_json: Callable[[Any], bytes] = value_json
        """``result -> JSON``, redacted whole for a secret-looking name (``issue_api_key``)."""
        self.refresh()

    def refresh(self) -> None:
        """Recompute what depends on the configuration (redaction, service, caps).

        The three templates take, in order: ``entry_format`` (timestamp, id,
        parent id, trace field, args), ``root_format`` (timestamp, id,
        reference fields, args), ``exit_format`` (timestamp, id, return value,
        duration). The ``*_parts`` tuples are the same lines as the constant
        pieces around those values, for the C accelerator, which pastes them
        without parsing a template.
        """
        # Read first: a configure() in another thread meanwhile leaves the site one
        # generation behind (refreshed again on its next call), never marked current.
        generation = RUNTIME.generation
        is_secret = RUNTIME.is_secret
        self.secret = frozenset(name for name in self._names if is_secret(name))
        self.result_json = _redacted_json if is_secret(self.function_name) else value_json
        if any(name in self.secret for name in self.positional):
            self.positional_json = self._bound_json
            self.arg_keys = ()
        else:
            self.positional_json = _positional_binder(self.positional, self._bound_json)
            self.arg_keys = (tuple((b"," if index else b"{") + _dumps(name) + b":"
                                   for index, name in enumerate(self.positional))
                             if len(self.positional) <= _UNROLLED else ())
        name = _dumps(self.function_name)
        service = RUNTIME.service_field
        head = b'{"event_type":"' + ev.FUNCTION_ENTRY.encode() + b'","timestamp_ns":'
        described = (b',"function_name":' + name + b',"module":' + _dumps(self.module)
                     + b',"qualname":' + _dumps(self.qualname) + b',"args":')
        closing = b',"v":' + str(ev.FORMAT_VERSION).encode() + service + b"}\n"
        self.entry_parts = (head, b',"correlation_id":"', b'","parent_correlation_id":"', b'"',
                            described, closing)
        self.root_parts = (head, b',"correlation_id":"', b'"', described, closing)
        self.exit_parts = (
            b'{"event_type":"' + ev.FUNCTION_EXIT.encode() + b'","timestamp_ns":',
            b',"correlation_id":"', b'","function_name":' + name + b',"return_value":',
            b',"duration_ns":', service + b"}\n")
        self.entry_format = _template(self.entry_parts, b"%d", b"%b", b"%b", b"%b", b"%b")
        self.root_format = _template(self.root_parts, b"%d", b"%b", b"%b", b"%b")
        self.exit_format = _template(self.exit_parts, b"%d", b"%b", b"%b", b"%d")
        self.generation = generation

    def _bound_json(self, args: tuple[Any, ...]) -> bytes:
        return _dumps(self.bind(args, {}))

    def args_json(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
        """The ``args`` object of the entry line, as JSON bytes."""
        if not kwargs:
            return self.positional_json(args)
        return _dumps(self.bind(args, kwargs))

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Encoded ``name -> value`` of the arguments actually passed."""
        secret = self.secret
        out: dict[str, Any] = {}
        positional = self.positional
        for index, value in enumerate(args):
            if index < len(positional):
                name = positional[index]
                out[name] = redacted() if name in secret else plain(value)
            else:
                out[self.varargs or "*args"] = [plain(item) for item in args[index:]]
                break
        if kwargs:
            if self.varkw is None:
                named, spill = kwargs, {}
            else:
                # Positional-only names passed by keyword land in **kwargs, as in Python.
                bindable = set(positional[self.positional_only:]) | self.keyword_only
                named = {k: v for k, v in kwargs.items() if k in bindable}
                spill = {k: v for k, v in kwargs.items() if k not in bindable}
            if named:
                out.update(RUNTIME.encode_named(named))
            if spill:
                out[self.varkw or "**kwargs"] = RUNTIME.encode_named(spill)
        return out


def _plain_json(names: tuple[str, ...], args: tuple[Any, ...]) -> bytes:
    return _dumps({name: plain(value) for name, value in zip(names, args, strict=False)})


def _positional_binder(names: tuple[str, ...], general: Callable[[tuple[Any, ...]], bytes]
                       ) -> Callable[[tuple[Any, ...]], bytes]:
    """``args -> JSON`` for positional calls of a site with no secret parameter.

    Scalars (finite floats, ints, strs, bools, None) are dumped as they are;
    orjson refuses ints past 64 bits and lone surrogates, and a dump longer
    than the string cap may hold a long string, so both go to ``general``
    (the encoder), like any other type. Unrolled for the common small
    arities: a loop costs more than the encoding.
    """
    safe = _SAFE_NOT_FLOAT
    runtime = RUNTIME
    if len(names) == 1:
        (n0,) = names

        def bind1(args: tuple[Any, ...]) -> bytes:
            if len(args) == 1:
                a = args[0]
                ta = type(a)
                if (ta is float and a - a == 0.0) or ta in safe or (
                        ta is str and _plain_str(a)):
                    try:
                        out = _dumps({n0: a})
                    except TypeError:
                        return general(args)
                    if len(out) <= runtime.max_str:
                        return out
            return general(args)

        return bind1
    if len(names) == 2:
        n0, n1 = names

        def bind2(args: tuple[Any, ...]) -> bytes:
            if len(args) == 2:
                a, b = args
                ta, tb = type(a), type(b)
                if ((ta is float and a - a == 0.0) or ta in safe or (
                        ta is str and _plain_str(a))) and (
                        (tb is float and b - b == 0.0) or tb in safe or (
                        tb is str and _plain_str(b))):
                    try:
                        out = _dumps({n0: a, n1: b})
                    except TypeError:
                        return general(args)
                    if len(out) <= runtime.max_str:
                        return out
            return general(args)

        return bind2
    if len(names) == 3:
        n0, n1, n2 = names

        def bind3(args: tuple[Any, ...]) -> bytes:
            if len(args) == 3:
                a, b, c = args
                ta, tb, tc = type(a), type(b), type(c)
                if ((ta is float and a - a == 0.0) or ta in safe or (
                        ta is str and _plain_str(a))) and (
                        (tb is float and b - b == 0.0) or tb in safe or (
                        tb is str and _plain_str(b))) and (
                        (tc is float and c - c == 0.0) or tc in safe or (
                        tc is str and _plain_str(c))):
                    try:
                        out = _dumps({n0: a, n1: b, n2: c})
                    except TypeError:
                        return general(args)
                    if len(out) <= runtime.max_str:
                        return out
            return general(args)

        return bind3
    return general
