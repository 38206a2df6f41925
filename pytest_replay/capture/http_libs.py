"""Capture wrappers for requests (``Session.send``), httpx (``Client.send``,
``AsyncClient.send``) and urllib3 (``HTTPConnectionPool.urlopen``).

The outermost wrapper owns the call (see :mod:`pytest_replay.capture.http`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Final

from pytest_replay.capture.http_event import (
    Recorder,
    attach_request,
    elapsed_ns,
    not_captured,
    request_fields,
    response_fields,
    start_recording,
)
from pytest_replay.capture.http_state import LAYER, STATE, ServedError

# -- requests ----------------------------------------------------------------------------


def _requests_request(prepared: Any) -> Callable[[], dict[str, Any]]:
    return lambda: request_fields(prepared.method or "GET", prepared.url or "",
                                  prepared.headers.items(), prepared.body)


def _requests_response(response: Any, streamed: bool) -> Callable[[], dict[str, Any]]:
    if streamed:
        return lambda: response_fields(response.status_code, response.headers.items(), None,
                                        skipped="stream")
    return lambda: response_fields(response.status_code, response.headers.items(),
                                    response.content)


def wrap_requests_send(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def send(self: Any, request: Any, **kwargs: Any) -> Any:
        if not STATE.enabled or LAYER.get() is not None:
            return original(self, request, **kwargs)
        recorder = start_recording(request.url or "")
        token = LAYER.set("requests")
        try:
            response = original(self, request, **kwargs)
        except ServedError as exc:
            error = exc.replacement
            attach_request(error, request)
            if recorder is not None:
                recorder.emit(_requests_request(request), None, error)
            raise error from None
        except Exception as exc:
            if recorder is not None:
                recorder.emit(_requests_request(request), None, exc)
            raise
        finally:
            LAYER.reset(token)
        if recorder is not None:
            for hop in response.history:
                recorder.emit(_requests_request(hop.request), _requests_response(hop, False),
                              duration_ns=elapsed_ns(hop))
            recorder.emit(_requests_request(response.request),
                          _requests_response(response, bool(kwargs.get("stream"))))
        return response

    return send


# -- httpx -------------------------------------------------------------------------------


def _httpx_body(request: Any) -> Any:
    try:
        return request.content
    except Exception:  # a streaming request body the application has not read
        return _STREAMED


_STREAMED: Final = object()


def _httpx_request(request: Any) -> Callable[[], dict[str, Any]]:
    return lambda: request_fields(request.method, str(request.url), request.headers.raw,
                                  _httpx_body(request))


def _httpx_response(response: Any, streamed: bool) -> Callable[[], dict[str, Any]]:
    if streamed:
        return lambda: response_fields(response.status_code, response.headers.raw, None,
                                        skipped="stream")
    return lambda: response_fields(response.status_code, response.headers.raw,
                                    response.content)


def _httpx_finished(recorder: Recorder, response: Any, streamed: bool) -> None:
    for hop in response.history:
        recorder.emit(_httpx_request(hop.request), _httpx_response(hop, False),
                      duration_ns=elapsed_ns(hop))
    recorder.emit(_httpx_request(response.request), _httpx_response(response, streamed))


def _httpx_failed(recorder: Recorder | None, request: Any, exc: Exception) -> BaseException:
    """Record a failed send; the error to raise (a served failure's recorded error)."""
    error: BaseException = exc
    if isinstance(exc, ServedError):
        error = exc.replacement
        attach_request(error, request)
    if recorder is not None:
        recorder.emit(_httpx_request(request), None, error)
    return error


def wrap_httpx_send(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def send(self: Any, request: Any, **kwargs: Any) -> Any:
        if not STATE.enabled or LAYER.get() is not None:
            return original(self, request, **kwargs)
        recorder = start_recording(str(request.url))
        token = LAYER.set("httpx")
        try:
            response = original(self, request, **kwargs)
        except Exception as exc:
            error = _httpx_failed(recorder, request, exc)
            if error is exc:
                raise
            raise error from None
        finally:
            LAYER.reset(token)
        if recorder is not None:
            _httpx_finished(recorder, response, bool(kwargs.get("stream")))
        return response

    return send


def wrap_httpx_async_send(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def send(self: Any, request: Any, **kwargs: Any) -> Any:
        if not STATE.enabled or LAYER.get() is not None:
            return await original(self, request, **kwargs)
        recorder = start_recording(str(request.url))
        token = LAYER.set("httpx")
        try:
            response = await original(self, request, **kwargs)
        except Exception as exc:
            error = _httpx_failed(recorder, request, exc)
            if error is exc:
                raise
            raise error from None
        finally:
            LAYER.reset(token)
        if recorder is not None:
            _httpx_finished(recorder, response, bool(kwargs.get("stream")))
        return response

    return send


# -- urllib3 -----------------------------------------------------------------------------


def origin(scheme: str, host: str, port: int | None) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host}" if port in (None, default) else f"{scheme}://{host}:{port}"


def absolute_url(origin: Callable[[], str], target: str) -> str:
    if target.startswith("/") or not target:
        return origin() + (target or "/")
    return target  # already absolute (a request through a proxy)


def wrap_urlopen(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def urlopen(self: Any, method: str, url: str, body: Any = None, headers: Any = None,
                *args: Any, **kwargs: Any) -> Any:
        if not STATE.enabled or LAYER.get() is not None:
            return original(self, method, url, body, headers, *args, **kwargs)
        full_url = url
        try:
            full_url = absolute_url(lambda: origin(self.scheme, self.host, self.port), url)
            recorder = start_recording(full_url)
        except Exception as exc:  # an unusual pool: the call goes on, uncaptured
            not_captured(exc)
            recorder = None
        token = LAYER.set("urllib3")
        sent_headers = headers if headers is not None else self.headers

        def request() -> dict[str, Any]:
            return request_fields(method, full_url, dict(sent_headers).items(), body)

        try:
            response = original(self, method, url, body, headers, *args, **kwargs)
        except ServedError as exc:
            if recorder is not None:
                recorder.emit(request, None, exc.replacement)
            raise exc.replacement from None
        except Exception as exc:
            if recorder is not None:
                recorder.emit(request, None, exc)
            raise
        finally:
            LAYER.reset(token)
        if recorder is not None:
            # urlopen's parameters after ``headers``: preload_content is the ninth.
            preloaded = bool(args[8] if len(args) > 8 else kwargs.get("preload_content", True))
            recorder.emit(request, lambda: response_fields(
                response.status, response.headers.items(),
                response.data if preloaded else None,
                skipped=None if preloaded else "stream"))
        return response

    return urlopen


