"""Maps every failure to the user docs' JSON error body, in one place.

    {"error": "404 Not Found", "type": "ResourceNotFound", "Message": "..."}

Also limits request bodies, so an oversized upload is refused with 413
before it is read into memory.
"""

import http
import logging
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oet.api.models import BodyNotJSON, BodyWrongShape, describe_problems
from oet.domain import (
    InvalidRequest,
    OETError,
    ProcedureNotFound,
    RunnerError,
    ScriptNotFound,
    StateConflict,
)

log = logging.getLogger(__name__)


class BodyTooLarge(InvalidRequest):
    """The request body is over the configured limit."""


# Most specific first: the first class an error is an instance of decides.
_STATUS: list[tuple[type[OETError], int, str]] = [
    (BodyTooLarge, 413, "PayloadTooLarge"),
    (BodyNotJSON, 400, "MalformedRequest"),
    (BodyWrongShape, 422, "MalformedRequest"),
    (ScriptNotFound, 400, "ScriptNotFound"),
    (InvalidRequest, 400, "InvalidRequest"),
    (ProcedureNotFound, 404, "ResourceNotFound"),
    (StateConflict, 409, "StateConflict"),
    (RunnerError, 500, "RunnerError"),
    (OETError, 500, "OETError"),
]


def error_response(
    status: int, error_type: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The documented error body with its HTTP status."""
    phrase = http.HTTPStatus(status).phrase
    body = {"error": f"{status} {phrase}", "type": error_type, "Message": message}
    return JSONResponse(body, status_code=status, headers=headers)


def _oet_error(request: Request, exc: Exception) -> JSONResponse:
    status, name = next((s, n) for cls, s, n in _STATUS if isinstance(exc, cls))
    return error_response(status, name, str(exc))


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    # Bodies are parsed by parse_body; this keeps any framework validation in the same shape.
    assert isinstance(exc, RequestValidationError)
    return error_response(422, "MalformedRequest", describe_problems(exc.errors()))


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    name = http.HTTPStatus(exc.status_code).phrase.replace(" ", "")
    headers = exc.headers
    if exc.status_code == 405:
        headers = {"Allow": ", ".join(_allowed_methods(request))}
    return error_response(exc.status_code, name, str(exc.detail), headers)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route accepts at this path (Starlette names only the first route's)."""
    routes = request.app.router.routes
    return [
        method
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE")
        if any(r.matches({**request.scope, "method": method})[0] == Match.FULL for r in routes)
    ]


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error serving %s %s", request.method, request.url.path)
    return error_response(500, "InternalServerError", f"{type(exc).__name__}: {exc}")


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception type to the JSON error body."""
    app.add_exception_handler(OETError, _oet_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``limit`` bytes."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await error_response(413, "PayloadTooLarge", self._message())(scope, receive, send)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise BodyTooLarge(self._message())
            return message

        await self.app(scope, limited, send)

    def _message(self) -> str:
        return f"The request body is larger than {self.limit} bytes"
