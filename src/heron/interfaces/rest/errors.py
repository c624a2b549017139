"""Every error a client sees, in one shape: `{"error": {"code": "...", "message": "..."}}`.

One handler renders them all: Heron's user errors (`heron.errors.USER_ERRORS`) by their kind,
request validation (422), HTTP errors Starlette raises (404 for an unknown route, 405 ...), and
`ApiError`s the routes raise. Messages never carry the server's paths: the data dir is named
"<data dir>" instead.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from heron.errors import USER_ERRORS
from heron.util.errors import HeronError

log = logging.getLogger("heron.rest")

__all__ = ["ApiError", "error_body", "install_error_handler"]


class ApiError(Exception):
    """An error a route answers with: HTTP status, a stable code, a message for people."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        **detail: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers  # sent with the answer (WWW-Authenticate, Retry-After)
        self.detail = detail


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    422: "validation_error",
    429: "too_many_requests",
    503: "unavailable",
}


def error_body(code: str, message: str, **detail: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **detail}}


def classify(exc: BaseException) -> tuple[int, str]:
    """HTTP status and stable code of one of Heron's user errors (`HeronError` carries both;
    the server's own state, its model, store or settings, is 503: the request was fine)."""
    if isinstance(exc, HeronError):
        return exc.status, exc.code
    return 400, _snake(type(exc).__name__)


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def install_error_handler(app: FastAPI) -> None:
    """Register the one handler for every error kind a client can cause; the paths in
    `app.state.hidden_paths` (the data dir) are taken out of every message."""

    def scrub(message: str) -> str:
        for secret in getattr(app.state, "hidden_paths", ()):
            if secret:
                message = message.replace(secret, "<data dir>")
        return message

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        headers = None
        if isinstance(exc, ApiError):
            status, body = exc.status, error_body(exc.code, scrub(exc.message), **exc.detail)
            headers = exc.headers
        elif isinstance(exc, RequestValidationError):
            errors = jsonable_encoder(exc.errors(), exclude={"input", "ctx", "url"})
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in errors
            )
            status = 422
            body = error_body("validation_error", f"invalid request: {problems}", details=errors)
        elif isinstance(exc, StarletteHTTPException):
            status = exc.status_code
            message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
            body = error_body(_HTTP_CODES.get(status, f"http_{status}"), message)
            headers = getattr(exc, "headers", None)
        elif isinstance(exc, USER_ERRORS):
            status, code = classify(exc)
            position = getattr(exc, "position", None)  # a query-language error's token
            extra = {"position": position} if isinstance(position, int) else {}
            body = error_body(code, scrub(str(exc)), **extra)
        else:  # a bug: logged with its traceback, answered without one
            log.exception("unhandled error on %s %s", request.method, request.url.path)
            status = 500
            body = error_body("internal_error", "the server failed to answer; see its log")
        return JSONResponse(body, status_code=status, headers=headers)

    for kind in (ApiError, RequestValidationError, StarletteHTTPException, *USER_ERRORS):
        app.add_exception_handler(kind, handle)
    app.add_exception_handler(Exception, handle)
