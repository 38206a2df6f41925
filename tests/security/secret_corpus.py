"""A realistic shop that carries secrets everywhere capture looks, and the secrets themselves.

Each secret has one unique value and one way the shop carries it (argument,
local, variable, context, HTTP header/URL/body, exception message...). The
values live only in the shop's ``settings.py``; the tests scan every file a
writer produced for each value.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Final


@dataclass(frozen=True)
class Secret:
    """One secret value and how the shop carries it."""

    id: str
    name: str
    """The constant in ``sec_shop/settings.py``."""
    value: str
    carried: str


SECRETS: Final[tuple[Secret, ...]] = (
    # under secret-looking names (keys)
    Secret("arg-password", "PASSWORD", "hunter2-pw-Qx81Lm", "login(password=...) argument"),
    Secret("scope-session_token", "SCOPE_SESSION", "scope-sess-5Rt0Zq",
           "request_scope(session_token=...) context field"),
    Secret("context-api_key", "API_KEY_CTX", "ak-ctx-7c1d9eWw", "replay.context(api_key=...)"),
    Secret("context-credentials", "CREDENTIALS", "cred-ctx-55e0Hh",
           "replay.context(credentials={'key': ...})"),
    Secret("variable-access_token", "TOKEN_VAR", "tok-var-51bb02Kk",
           "replay.variable('access_token', ...)"),
    Secret("return-session_id", "SESSION_RET", "sess-ret-0a9fPp",
           "return value {'session_id': ...}"),
    Secret("dict-authorization", "BEARER_DICT", "sk_live_dict4f2aYy",
           "argument dict {'Authorization': 'Bearer ...'}"),
    Secret("dict-cookie", "COOKIE", "cookie-sess-88adJj",
           "argument dict {'Cookie': 'session=...'}"),
    Secret("nested-x-api-key", "NESTED", "nested-key-0c3eGg",
           "argument {'request': {'headers': {'X-Api-Key': ...}}}"),
    Secret("kwargs-password", "KWARGS_SPILL", "spill-pw-8d21Ss", "handler(**{'password': ...})"),
    Secret("dataclass-client_secret", "CLIENT_SECRET", "cs-dc-31f7Bb",
           "dataclass field client_secret"),
    Secret("object-api_token", "OBJ_TOKEN", "objtok-9921Nn", "object attribute api_token"),
    Secret("local-db_password", "LOCAL_PW", "dbpw-local-77c3Mm",
           "local db_password of the failing frame"),
    # HTTP, through the capture of requests
    Secret("http-authorization-header", "BEARER_HDR", "sk_live_hdr7Tt2b",
           "HTTP request header Authorization: Bearer ..."),
    Secret("http-url-api_key", "URL_HTTP", "urlkey-http-6b4eCc", "HTTP URL ?api_key=..."),
    Secret("http-json-body-password", "HTTP_BODY", "body-pw-12efDd",
           "HTTP JSON request body {'password': ...}"),
    Secret("http-response-access_token", "HTTP_RESP_TOKEN", "resp-tok-3377Ee",
           "HTTP JSON response body {'access_token': ...}"),
    Secret("http-set-cookie", "SET_COOKIE", "setck-4410Ff", "HTTP response header Set-Cookie"),
    # values under names that say nothing (the known gaps)
    Secret("value-bearer-in-string", "BEARER_VALUE", "sk_live_val9ab1Uu",
           "argument header_line='Authorization: Bearer ...'"),
    Secret("value-url-query-api_key", "URL_ARG", "urlkey-arg-2d8cVv",
           "argument url='https://partner.example/v1/pay?api_key=...'"),
    Secret("exception-message", "EXC_TOKEN", "sk_live_exc0deRr",
           "PermissionError('partner rejected token ...') message"),
    Secret("positional-non-secret-name", "POSITIONAL", "sk_live_pos71aaIi",
           "authenticate(user, value) called positionally"),
    Secret("loop-api_tokens", "LOOP_TOKEN", "loop-tok-e4d1Oo",
           "replay.loop(tokens, 'api_tokens') iteration value"),
    Secret("return-plain-string", "ISSUED_KEY", "issued-key-5b0fAa",
           "issue_api_key() returns the key"),
    Secret("variable-auth_header", "AUTH_HEADER_VAR", "authhdr-var-19c2Zz",
           "replay.variable('auth_header', 'Bearer ...')"),
    Secret("local-dsn-password", "DSN_PW", "pg-dsn-pw-6e6eXx",
           "local dsn='postgresql://shop:...@db.internal/shop' of the failing frame"),
    Secret("env-SHOP_DB_PASS", "ENV_DB_PASS", "env-db-pass-4c4cWq",
           "os.environ.get('SHOP_DB_PASS') (nondeterminism capture)"),
)

_SETTINGS_HEADER = '"""The shop secrets (only here, so a scan of written files finds them)."""\n'

_APP = '''\
"""A small shop: logins, checkouts calling a partner API, refunds."""
from __future__ import annotations

import dataclasses
import os

import requests

import pytest_replay as replay
from sec_shop import settings


@dataclasses.dataclass
class OAuthApp:
    client_id: str
    client_secret: str


class PartnerClient:
    def __init__(self, base_url: str, api_token: str) -> None:
        self.base_url = base_url
        self.api_token = api_token


@replay.traced
def login(username: str, password: str) -> dict[str, str]:
    replay.variable("access_token", settings.TOKEN_VAR)
    replay.context(api_key=settings.API_KEY_CTX,
                   credentials={"user": username, "key": settings.CREDENTIALS})
    return {"user": username, "session_id": settings.SESSION_RET}


@replay.traced
def authenticate(user: str, value: str) -> bool:
    return len(value) > 3


@replay.traced
def issue_api_key(user: str) -> str:
    return settings.ISSUED_KEY


@replay.traced
def audit(header_line: str, url: str) -> int:
    return len(header_line) + len(url)


@replay.traced
def forward(headers: dict[str, str], metadata: dict[str, object]) -> int:
    return len(headers) + len(metadata)


@replay.traced
def handler(**params: str) -> int:
    return len(params)


@replay.traced
def register(app: OAuthApp, client: PartnerClient) -> str:
    return app.client_id


@replay.traced
def rotate(tokens: list[str]) -> int:
    count = 0
    for _token in replay.loop(tokens, "api_tokens"):
        count += 1
    replay.variable("auth_header", "Bearer " + settings.AUTH_HEADER_VAR)
    return count


@replay.traced
def call_partner(base_url: str, amount: float) -> dict[str, object]:
    response = requests.post(
        base_url + "/charges?api_key=" + settings.URL_HTTP + "&currency=usd",
        headers={"Authorization": "Bearer " + settings.BEARER_HDR},
        json={"password": settings.HTTP_BODY, "amount": amount},
        timeout=5,
    )
    return {"status": response.status_code, "ok": response.ok}


@replay.traced
def verify_partner(reference: str) -> None:
    db_password = settings.LOCAL_PW
    dsn = "postgresql://shop:" + settings.DSN_PW + "@db.internal/shop"
    raise PermissionError("partner rejected token " + settings.EXC_TOKEN + " for " + reference
                          + " (" + str(len(db_password) + len(dsn)) + ")")


@replay.traced
def checkout(base_url: str, user: str, amount: float) -> dict[str, object]:
    forward({"Authorization": "Bearer " + settings.BEARER_DICT,
             "Cookie": "session=" + settings.COOKIE, "Accept": "application/json"},
            {"request": {"headers": {"X-Api-Key": settings.NESTED}}})
    audit("Authorization: Bearer " + settings.BEARER_VALUE,
          "https://partner.example/v1/pay?api_key=" + settings.URL_ARG)
    authenticate(user, settings.POSITIONAL)
    issue_api_key(user)
    handler(password=settings.KWARGS_SPILL, user=user)
    register(OAuthApp("shop-web", settings.CLIENT_SECRET),
             PartnerClient(base_url, settings.OBJ_TOKEN))
    rotate([settings.LOOP_TOKEN, "not-a-secret"])
    result = call_partner(base_url, amount)
    try:
        verify_partner("ord-1")
    except PermissionError:
        result["verified"] = False
    result["db"] = len(os.environ.get("SHOP_DB_PASS", ""))
    return result


@replay.traced
def refund(order_id: int) -> None:
    verify_partner("refund-" + str(order_id))
'''

_MAIN = '''\
"""Run the shop under capture: ``python -m sec_shop.main OUT BASE_URL file|logging``."""
from __future__ import annotations

import logging
import sys

import pytest_replay as replay
from sec_shop import app, settings


def main() -> None:
    out, base_url, sink = sys.argv[1:4]
    if sink == "file":
        replay.configure(path=out, service="shop")
    else:
        logger = logging.getLogger("shop.telemetry")
        logger.setLevel(logging.INFO)
        logger.addHandler(logging.FileHandler(out, encoding="utf-8"))
        replay.configure(sink=replay.LoggingSink(logger), service="shop")
    from pytest_replay.capture.http import install_http_capture
    from pytest_replay.capture.nondeterminism import install_nondeterminism_capture

    install_http_capture()
    install_nondeterminism_capture()
    with replay.request_scope("req_login", user_id=1, session_token=settings.SCOPE_SESSION):
        app.login("alice", password=settings.PASSWORD)
    with replay.request_scope("req_checkout", user_id=1):
        app.checkout(base_url, "alice", 12.5)
    with replay.request_scope("req_refund", user_id=1):
        try:
            app.refund(77)
        except PermissionError:
            pass
    replay.shutdown()


if __name__ == "__main__":
    main()
'''

SHOP_ENV: Final = {"SHOP_DB_PASS": next(s.value for s in SECRETS if s.name == "ENV_DB_PASS")}


def write_shop(root: Path) -> None:
    """Write the ``sec_shop`` package under ``root``."""
    package = root / "sec_shop"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    settings = _SETTINGS_HEADER + "".join(f"{s.name} = {s.value!r}\n" for s in SECRETS)
    (package / "settings.py").write_text(settings, encoding="utf-8")
    (package / "app.py").write_text(textwrap.dedent(_APP), encoding="utf-8")
    (package / "main.py").write_text(textwrap.dedent(_MAIN), encoding="utf-8")


def run_shop(root: Path, out: Path, base_url: str, sink: str = "file") -> None:
    """Run the shop under capture in its own interpreter (as production would)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **SHOP_ENV,
           "PYTHONPATH": os.pathsep.join([str(root), *sys.path])}
    done = subprocess.run([sys.executable, "-m", "sec_shop.main", str(out), base_url, sink],
                          cwd=root, env=env, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, f"the shop failed:\n{done.stdout}\n{done.stderr}"
