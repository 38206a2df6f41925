"""Serve a replay's HTTP calls from the recorded ``http_call`` events, never the network.

Every client vcrpy patches (requests, urllib3, http.client, httpx sync and
async) is answered by vcrpy's stubs, which open no socket; the stubs ask one
process-wide stand-in for a vcrpy cassette, which passes each request to the
serve in progress, so the stubs and patches are made once per process, not
per replay. The serve decides what to answer:

* overrides first (:class:`HttpOverrides`, built on ``responses``);
* then the first recorded call, not yet served, that matches on the chosen
  rules (so a repeated identical request takes the next recorded answer);
* else the call is refused with :class:`UnrecordedCall` naming method and URL.

Matching compares requests in the form capture writes them: the live
request is redacted and encoded exactly as the recording was, so a recorded
``[REDACTED]`` matches today's real secret; a token that ``extract-traces``
put in (``<email:3f2a9c1b>``) stands for whatever value is there now. Capture runs during the
replay too (``install_http_capture`` is ensured), so each served call emits
the same ``http_call`` event as the recorded one.

The parts: :mod:`~pytest_replay.replay.http_cassette` checks the recording,
:mod:`~pytest_replay.replay.http_match` matches, :mod:`~pytest_replay.replay.http_errors`
raises recorded failures again, :mod:`~pytest_replay.replay.http_patch` holds
vcrpy's patches; this module answers and serves.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final, final
from urllib.parse import parse_qs, urlsplit

from pytest_replay.capture.http import (
    DEFAULT_MAX_BODY,
    ServedError,
    active_layer,
    http_capture_installed,
    install_http_capture,
    uninstall_http_capture,
)
from pytest_replay.capture.http_state import STATE
from pytest_replay.replay.external import ServedCalls
from pytest_replay.replay.http_cassette import HttpCassetteError, RecordedCall, recorded_calls
from pytest_replay.replay.http_errors import rebuild_error
from pytest_replay.replay.http_match import (
    DEFAULT_MATCH_ON,
    MATCH_RULES,
    Check,
    asked_as,
    checks_for,
    form_of,
    matchers_for,
    results_of,
)
from pytest_replay.replay.http_patch import (
    DISPATCHER,
    apply_table,
    clean_pools,
    patch_table,
    restore_patches,
)

__all__ = [
    "DEFAULT_MATCH_ON",
    "MATCH_RULES",
    "HttpCassetteError",
    "HttpOverrides",
    "RecordedCall",
    "matchers_for",
    "rebuild_error",
    "recorded_calls",
    "serve_http",
]


_SERVING: Final = threading.Lock()


# -- overrides ---------------------------------------------------------------------------


@final
class HttpOverrides:
    """Answers a test adds or changes for a replay, consulted before the recording.

    Built on ``responses``: each :meth:`add` registers a ``responses.Response``
    (``match=`` takes ``responses.matchers``), and several answers for one
    request are served in the order added, the last one repeating. Overrides
    answer every client the replay serves (requests, urllib3, http.client,
    httpx), because the cassette consults them, not a patched ``requests``.
    """

    def __init__(self) -> None:
        self._registry: Any = None
        self.calls: list[str] = []
        """``METHOD URL`` of each request an override answered, in order."""

    def add(self, method: str, url: str | Any, *, json: Any = None, body: str | bytes |
            BaseException = "", status: int = 200, headers: Mapping[str, str] | None = None,
            content_type: str | None = None, match: Sequence[Any] = ()) -> None:
        """Answer ``method url`` (a string, or a compiled regex) with this response.

        ``body`` may be an exception instance: the request then raises it.
        """
        import responses

        if self._registry is None:
            self._registry = responses.registries.FirstMatchRegistry()
        extra: dict[str, Any] = {} if content_type is None else {"content_type": content_type}
        self._registry.add(responses.Response(method=method.upper(), url=url, json=json,
                                              body=body, status=status, headers=headers,
                                              match=tuple(match), **extra))

    def answer(self, request: Any) -> dict[str, Any] | None:
        """vcrpy's form of the override answering ``request`` (a vcrpy request), or None.

        An override whose body is an exception raises it (through
        :class:`ServedError`, so the application sees that exception).
        """
        if self._registry is None:
            return None
        prepared = _prepared(request)
        found, _reasons = self._registry.find(prepared)
        if found is None:
            return None
        self.calls.append(f"{request.method} {request.uri}")
        try:
            response = found.get_response(prepared)
        except Exception as exc:  # the override says: this call fails with exc
            raise ServedError(exc) from None
        headers: dict[str, list[str]] = {}
        for name, value in response.headers.items():
            headers.setdefault(name, []).append(value)
        return {"status": {"code": response.status, "message": response.reason or ""},
                "headers": headers, "body": {"string": response.read()}}


def _prepared(request: Any) -> Any:
    """A ``requests.PreparedRequest`` of a vcrpy request, for ``responses``' matchers."""
    import requests
    from vcr.util import read_body

    prepared = requests.PreparedRequest()
    prepared.prepare(method=request.method, url=request.uri,
                     headers=dict(request.headers.items()), data=read_body(request) or None)
    query = urlsplit(request.uri).query
    prepared.params = {k: v[0] if len(v) == 1 else v  # type: ignore[attr-defined]
                       for k, v in parse_qs(query, keep_blank_values=True).items()}
    prepared.req_kwargs = {}  # type: ignore[attr-defined]
    return prepared


# -- answering ---------------------------------------------------------------------------



@final
class Answers:
    """One serve's recorded calls: answers each request from them, or refuses it.

    Requests are matched in capture's written form on both sides (the
    recorded form is the event itself), rule by rule, as vcrpy would run the
    same rules as matchers; vcrpy requests for the recording are made only
    when a vcrpy stub asks for them.
    """

    def __init__(self, calls: list[RecordedCall], checks: Sequence[tuple[str, Check]],
                 served: ServedCalls, overrides: HttpOverrides | None) -> None:
        self.calls = calls
        self.played = [False] * len(calls)
        self.checks = checks
        self.served = served
        self.overrides = overrides
        self._requests: list[Any] | None = None

    @property
    def requests(self) -> list[Any]:
        """The recorded calls as vcrpy requests (made on first use)."""
        if self._requests is None:
            from vcr.request import Request

            self._requests = [call.vcr_request(Request) for call in self.calls]
        return self._requests

    def play(self, request: Any) -> dict[str, Any]:
        """The override or next matching recorded answer; raises for a recorded failure."""
        if self.overrides is not None:
            answer = self.overrides.answer(request)
            if answer is not None:
                self.served.served += 1
                return answer
        live = form_of(request)
        for index, call in enumerate(self.calls):
            if self.played[index] or any(check(live, call.form) is not None
                                         for _name, check in self.checks):
                continue
            self.played[index] = True
            self.served.served += 1
            if call.error is not None:
                raise ServedError(rebuild_error(*call.error))
            return call.vcr_response(encode_for_httpx=active_layer() == "httpx")
        raise ServedError(self.served.refuse(asked_as(request), self._closest(live)))

    def _closest(self, live: Mapping[str, Any]) -> str:
        best: tuple[int, int, list[tuple[str, str]]] | None = None
        for index, call in enumerate(self.calls):
            passed, failed = results_of(live, call.form, self.checks)
            if not failed:  # it matches: only served already
                best = (len(passed) + 1, index, [])
                break
            if best is None or len(passed) > best[0]:
                best = (len(passed), index, failed)
        if best is None:
            return "the recording holds no HTTP call"
        call = self.calls[best[1]]
        if not best[2]:
            return f"{call.describe()} matches but was already served"
        reasons = "; ".join(message for _name, message in best[2])
        return f"closest recorded call {call.describe()} differs: {reasons}"

    def most_alike(self, request: Any) -> list[tuple[Any, list[str], list[tuple[str, str]]]]:
        """The recorded requests matching most rules (at least one), as vcrpy lists them."""
        live = form_of(request)
        results = [(stored, *results_of(live, call.form, self.checks))
                   for stored, call in zip(self.requests, self.calls, strict=True)]
        most = max((len(passed) for _stored, passed, _failed in results), default=0)
        return [result for result in results if most and len(result[1]) == most]

    def unused(self) -> list[str]:
        """Recorded calls no request took."""
        return [call.describe() for call, played in zip(self.calls, self.played, strict=True)
                if not played]






# -- serving -----------------------------------------------------------------------------


@contextlib.contextmanager
def serve_http(recorded: Sequence[Mapping[str, Any]], *,
               match_on: Sequence[str] = DEFAULT_MATCH_ON,
               overrides: HttpOverrides | None = None,
               max_body: int = DEFAULT_MAX_BODY) -> Iterator[ServedCalls]:
    """Answer HTTP calls from ``recorded`` (``http_call`` events in recorded order).

    ``max_body`` is the body cap production's capture used: live requests are
    matched, and served calls captured, with bodies cut where theirs were.

    Yields the :class:`ServedCalls` report (kind ``"http"``): ``served``,
    ``unrecorded`` (calls refused) and, after exit, ``unused`` (recorded calls
    never asked for). Raises :class:`HttpCassetteError` before serving when an
    event cannot be served, and ``ValueError`` for an unknown match rule.
    One serve at a time per process: the stubs are patched in process-wide.
    """
    checks = checks_for(match_on)
    calls = recorded_calls(recorded)
    if not _SERVING.acquire(blocking=False):
        raise RuntimeError("serve_http is already serving in this process; HTTP replay "
                           "patches process-wide and serves one replay at a time")
    try:
        yield from _serving(calls, checks, overrides, max_body)
    finally:
        _SERVING.release()


def _serving(calls: list[RecordedCall], checks: Sequence[tuple[str, Check]],
             overrides: HttpOverrides | None, max_body: int) -> Iterator[ServedCalls]:
    served = ServedCalls("http")
    answers = Answers(calls, checks, served, overrides)
    capture_here = not http_capture_installed()
    if capture_here:
        install_http_capture()
    options = STATE.config
    if options.max_body != max_body:
        STATE.config = options.with_max_body(max_body)
    try:
        table, before = patch_table()
        DISPATCHER.answers = answers
        try:
            apply_table(table, before)
            for cleaner in table.cleaners:
                cleaner.__enter__()
            try:
                yield served
            finally:
                clean_pools(table)
        finally:
            restore_patches()
            DISPATCHER.answers = None
            served.unused.extend(answers.unused())
    finally:
        STATE.config = options
        if capture_here:
            uninstall_http_capture()
