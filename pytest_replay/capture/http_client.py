"""Capture wrappers for http.client (``HTTPConnection.request`` + ``getresponse``),
which urllib.request uses too: the layer below every other client library.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, final

from pytest_replay.capture.http_event import (
    Recorder,
    not_captured,
    request_fields,
    response_fields,
    start_recording,
)
from pytest_replay.capture.http_libs import absolute_url, origin
from pytest_replay.capture.http_state import DROP_CATEGORY, LAYER, LOG, STATE, ServedError
from pytest_replay.capture.runtime import RUNTIME, current_ids

# -- http.client -------------------------------------------------------------------------

_PENDING: Final = "_telemetry_replay_http_call"


@final
class _Pending:
    """A request sent through http.client whose answer ``getresponse`` will read."""

    __slots__ = ("method", "recorder", "request")

    def __init__(self, recorder: Recorder, request: Callable[[], dict[str, Any]],
                 method: str) -> None:
        self.recorder = recorder
        self.request = request
        self.method = method


def _split_request_args(args: Sequence[Any], kwargs: dict[str, Any]
                        ) -> tuple[str, str, Any, Any]:
    names = ("method", "url", "body", "headers")
    values: list[Any] = [None, None, None, None]
    for index, value in enumerate(args[:4]):
        values[index] = value
    for index, name in enumerate(names):
        if name in kwargs:
            values[index] = kwargs[name]
    return str(values[0]), str(values[1]), values[2], values[3] or {}


def _http_client_response(response: Any, method: str) -> Callable[[], dict[str, Any]]:
    """Read a body of known, small length now and give it back; never a stream.

    A replayed answer (vcrpy's) holds its body in memory and is read without
    consuming it; the same rules decide, from the same headers, what is kept.
    """
    status = response.status
    headers = response.getheaders()
    replayed = hasattr(response, "recorded_response")
    skipped: str | None = None
    body: Any = None
    if method != "HEAD" and status not in (204, 304) and not 100 <= status < 200:
        length = _declared_length(headers) if replayed else response.length
        if length is None:
            skipped = "stream"
        elif length > STATE.config.max_body:
            skipped = "too_large"
        elif replayed:
            body = response.data
        else:
            body = _read_and_restore(response)
            if body is None:
                skipped = "read_error"
    return lambda: response_fields(status, headers, body, skipped=skipped)


def _declared_length(headers: Iterable[tuple[str, str]]) -> int | None:
    for name, value in headers:
        if name.lower() == "content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _read_and_restore(response: Any) -> bytes | None:
    import http.client
    import io

    owed = response.length
    try:
        data = response.read()
    except http.client.IncompleteRead as exc:
        # http.client has closed the response: put back what arrived, with the length
        # still owed, so the application's read() meets the same IncompleteRead (and a
        # read(n) loop the same bytes) as without capture
        response.fp = io.BufferedReader(io.BytesIO(bytes(exc.partial)))
        response.length = owed
        LOG.debug("http.client body cut short: %s", exc)
        return None
    except Exception as exc:  # the application will meet the same failure when it reads
        LOG.debug("http.client body not captured: %s", exc)
        return None
    response.fp = io.BufferedReader(io.BytesIO(data))
    response.length = len(data)
    return bytes(data)


def http_client_wrappers(scheme_of: Callable[[Any], str]
                          ) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """``request``/``getresponse`` replacements calling whatever ``cls`` defined before."""

    def wrap_request(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def request(self: Any, *args: Any, **kwargs: Any) -> Any:
            if not STATE.enabled or LAYER.get() is not None:
                return original(self, *args, **kwargs)
            self.__dict__.pop(_PENDING, None)
            if not RUNTIME.active or current_ids()[0] is None:
                return original(self, *args, **kwargs)  # unsampled: no URL built, no drop
            try:
                method, target, body, headers = _split_request_args(args, kwargs)
                url = absolute_url(lambda: origin(scheme_of(self), self.host, self.port), target)
                recorder = start_recording(url)
            except Exception as exc:  # an unusual connection: the call goes on, uncaptured
                not_captured(exc)
                return original(self, *args, **kwargs)

            def fields() -> dict[str, Any]:
                return request_fields(method, url, dict(headers).items(), body)

            token = LAYER.set("http.client")
            try:
                result = original(self, *args, **kwargs)
            except Exception as exc:
                if recorder is not None:
                    recorder.emit(fields, None, exc)
                raise
            finally:
                LAYER.reset(token)
            if recorder is not None:
                self.__dict__[_PENDING] = _Pending(recorder, fields, method.upper())
            return result

        return request

    def wrap_getresponse(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def getresponse(self: Any, *args: Any, **kwargs: Any) -> Any:
            if not STATE.enabled or LAYER.get() is not None:
                return original(self, *args, **kwargs)
            pending: _Pending | None = self.__dict__.pop(_PENDING, None)
            token = LAYER.set("http.client")
            try:
                response = original(self, *args, **kwargs)
            except ServedError as exc:
                if pending is not None:
                    pending.recorder.emit(pending.request, None, exc.replacement)
                raise exc.replacement from None
            except Exception as exc:
                if pending is not None:
                    pending.recorder.emit(pending.request, None, exc)
                raise
            finally:
                LAYER.reset(token)
            if pending is not None:
                try:
                    answer = _http_client_response(response, pending.method)
                except Exception as exc:  # capture must not break the application's read
                    RUNTIME.drop(f"http_call not captured: {type(exc).__name__}: {exc}",
                                 DROP_CATEGORY)
                    return response
                pending.recorder.emit(pending.request, answer)
            return response

        return getresponse

    return wrap_request, wrap_getresponse


def wrap_http_client_class(cls: type, scheme: str) -> Callable[[], None]:
    """Capture calls through ``cls`` (an http.client-like connection class); returns the undo.

    Replay uses this for the connection classes vcrpy puts in ``http.client``
    during a replay, which are not subclasses of the real ones.
    """
    wrap_request, wrap_getresponse = http_client_wrappers(lambda _conn: scheme)
    had = {name: name in cls.__dict__ for name in ("request", "getresponse")}
    saved = {name: cls.__dict__.get(name) for name in had}
    type.__setattr__(cls, "request", wrap_request(getattr(cls, "request")))  # noqa: B009
    type.__setattr__(cls, "getresponse", wrap_getresponse(getattr(cls, "getresponse")))  # noqa: B009

    def undo() -> None:
        for name, present in had.items():
            if present:
                type.__setattr__(cls, name, saved[name])
            else:
                type.__delattr__(cls, name)

    return undo


