"""Who is asking: API keys on requests, roles per route, a rate limit per key.

A request names its key as `Authorization: Bearer hk_...` or `X-API-Key: hk_...`, or carries
the session cookie `POST /v1/session` set (so that the web page's `<img>` and `<video>`, which
send no headers, load where keys are required). A request whose key came from the cookie and
that changes anything (not GET/HEAD) must also send `X-Heron-Client` (any value): another site
can make a browser send the cookie, never a custom header (besides SameSite=Strict). When the
server requires keys (it listens beyond loopback, or `ApiConfig.require_keys=True`) a missing or
unknown key is 401, a role without the route's action 403, and a key over its rate 429 with
`Retry-After`; otherwise every request is the anonymous local admin (`LOCAL_ADMIN`).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from http.cookies import CookieError, SimpleCookie

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from heron.catalog.keys import LOCAL_ADMIN, KeyRing, Principal
from heron.errors import USER_ERRORS
from heron.interfaces.rest.errors import ApiError, classify, error_body

__all__ = [
    "CLIENT_HEADER",
    "SESSION_COOKIE",
    "AuthMiddleware",
    "Authenticator",
    "RateLimiter",
    "principal_of",
    "secret_of",
    "session_secret",
]

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="heron"'}


SESSION_COOKIE = "heron_session"
CLIENT_HEADER = "x-heron-client"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def secret_of(headers: Mapping[str, str]) -> str | None:
    """The key a request carries in a header: `Authorization: Bearer ...`, else `X-API-Key`."""
    given = headers.get("authorization")
    if given:
        scheme, _, value = given.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    value = headers.get("x-api-key")
    return value.strip() if value and value.strip() else None


def session_secret(headers: Mapping[str, str]) -> str | None:
    """The key in the session cookie, if any."""
    raw = headers.get("cookie")
    if not raw:
        return None
    jar = SimpleCookie()
    try:
        jar.load(raw)
    except CookieError:
        return None
    morsel = jar.get(SESSION_COOKIE)
    if morsel is None or not morsel.value.strip():
        return None
    return morsel.value.strip()


class RateLimiter:
    """A token bucket per key: `per_minute` requests a minute on average, `burst` at once."""

    def __init__(self, per_minute: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.rate = per_minute / 60.0
        self.burst = max(1, burst)
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, when)
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0 when a request of `key` may go now, else the seconds until it may."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        with self._lock:
            tokens, when = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - when) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate


class Authenticator:
    """Who each request is (`authenticate`: 401, 429) and whether it may (`authorize`: 403)."""

    def __init__(self, keys: Callable[[], KeyRing], required: bool, limiter: RateLimiter) -> None:
        self.keys = keys  # opened on the first request that carries a key
        self.required = required
        self.limiter = limiter

    def authenticate(self, headers: Mapping[str, str], method: str = "GET") -> Principal:
        if not self.required:
            return LOCAL_ADMIN
        secret = secret_of(headers)
        if secret is None:
            secret = session_secret(headers)
            if (
                secret is not None
                and method not in _SAFE_METHODS
                and not headers.get(CLIENT_HEADER)
            ):
                raise ApiError(
                    403,
                    "forbidden",
                    "a request signed by the session cookie that changes anything must send "
                    "the X-Heron-Client header (or the key itself as Authorization: Bearer)",
                )
        if secret is None:
            raise ApiError(
                401,
                "unauthorized",
                "this server requires an API key: send Authorization: Bearer <key> "
                "(or X-API-Key: <key>)",
                headers=_CHALLENGE,
            )
        principal = self.keys().authenticate(secret)
        if principal is None:
            raise ApiError(
                401, "unauthorized", "the API key is unknown or revoked", headers=_CHALLENGE
            )
        wait = self.limiter.take(principal.key_id)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise ApiError(
                429,
                "too_many_requests",
                f"key {principal.key_id} is over its rate limit; retry in {seconds} s",
                headers={"Retry-After": str(seconds)},
            )
        return principal

    @staticmethod
    def authorize(principal: Principal, action: str) -> Principal:
        if not principal.can(action):
            raise ApiError(
                403, "forbidden", f"key {principal.key_id} ({principal.role}) may not {action}"
            )
        return principal


class AuthMiddleware:
    """Authenticates every /v1 request before its body is read (an unknown key uploads
    nothing) and leaves the principal in `request.state.principal`; the routes' dependencies
    check the role. Health probes and the OpenAPI pages need no key."""

    def __init__(self, app: ASGIApp, auth: Authenticator, hide: Callable[[str], str] = str) -> None:
        self.app = app
        self.auth = auth
        self.hide = hide

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _guarded(scope.get("path", "")) or ending_session(scope):
            await self.app(scope, receive, send)
            return
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope.get("headers") or []
        }
        try:  # a key lookup opens the catalog (and the first, the whole Heron): off the loop
            method = str(scope.get("method", "GET")).upper()
            principal = await run_in_threadpool(self.auth.authenticate, headers, method)
        except ApiError as exc:
            body = error_body(exc.code, self.hide(exc.message), **exc.detail)
            await JSONResponse(body, exc.status, headers=exc.headers)(scope, receive, send)
            return
        except USER_ERRORS as exc:  # the catalog or the model cannot open
            status, code = classify(exc)
            body = error_body(code, self.hide(str(exc)))
            await JSONResponse(body, status)(scope, receive, send)
            return
        scope.setdefault("state", {})[PRINCIPAL] = principal
        await self.app(scope, receive, send)


PRINCIPAL = "principal"


def _guarded(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


def ending_session(scope: Scope) -> bool:
    """`DELETE /v1/session` clears the cookie without a key check: a revoked key's cookie
    must still be removable."""
    return scope.get("method") == "DELETE" and scope.get("path") == "/v1/session"


def principal_of(request: Request, auth: Authenticator, action: str) -> Principal:
    """The principal `AuthMiddleware` found for this request, if it may do `action` (403).
    A request the middleware did not see is refused where keys are required (fail closed)."""
    principal = getattr(request.state, PRINCIPAL, None)
    if principal is None:
        if auth.required:
            raise ApiError(401, "unauthorized", "no API key checked", headers=_CHALLENGE)
        principal = LOCAL_ADMIN
    return auth.authorize(principal, action)
