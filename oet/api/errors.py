"""Maps every failure to the user docs' JSON error body, in one place.

    {"error": "404 Not Found", "type": "ResourceNotFound", "Message": "..."}

Also limits request bodies, so an oversized upload is refused with 413
before it is read into memory.

A 500 says only that the request failed, with an error id; the details
(exception, SQLite message, runner output) go to the server log under that
id, never to the client.
"""

import http
import logging
import uuid
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oet.api.guards import NotJSONContent
from oet.api.models import BodyNotJSON, BodyWrongShape, describe_problems
from oet.api.responses import JSONBody
from oet.domain import (
    InvalidRequest,
    NotAuthorised,
    OETError,
    ProcedureNotFound,
    RunnerError,
    ScriptNotAllowed,
    ScriptNotFound,
    StateConflict,
)

log = logging.getLogger(__name__)


class BodyTooLarge(InvalidRequest):
    """The request body is over the configured limit."""


# Most specific first: the first class an error is an instance of decides.
_STATUS: list[tuple[type[OETError], int, str]] = [
    (NotAuthorised, 401, "Unauthorized"),
    (BodyTooLarge, 413, "PayloadTooLarge"),
    (NotJSONContent, 415, "UnsupportedMediaType"),
    (BodyNotJSON, 400, "MalformedRequest"),
    (BodyWrongShape, 422, "MalformedRequest"),
    (ScriptNotFound, 400, "ScriptNotFound"),
    (ScriptNotAllowed, 400, "ScriptNotAllowed"),
    (InvalidRequest, 400, "InvalidRequest"),
    (ProcedureNotFound, 404, "ResourceNotFound"),
    (StateConflict, 409, "StateConflict"),
    (RunnerError, 500, "RunnerError"),
    (OETError, 500, "OETError"),
]


def error_response(
    status: int, error_type: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONBody:
    """The documented error body with its HTTP status."""
    phrase = http.HTTPStatus(status).phrase
    body = {"error": f"{status} {phrase}", "type": error_type, "Message": message}
    return JSONBody(body, status_code=status, headers=headers)


def _server_failed(request: Request, error_type: str, exc: BaseException) -> JSONBody:
    """A 500 that names only an error id; the log has the details under that id."""
    error_id = uuid.uuid4().hex[:12]
    log.error(
        "error %s serving %s %s: %s: %s",
        error_id,
        request.method,
        request.url.path,
        type(exc).__name__,
        exc,
        exc_info=None if isinstance(exc, OETError) else exc,
    )
    message = f"The OET server could not complete the request (error id {error_id} in its log)"
    return error_response(500, error_type, message)


def _oet_error(request: Request, exc: Exception) -> JSONBody:
    status, name = next((s, n) for cls, s, n in _STATUS if isinstance(exc, cls))
    if status >= 500:
        return _server_failed(request, name, exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return error_response(status, name, str(exc), headers)


def _validation_error(request: Request, exc: Exception) -> JSONBody:
    # Bodies are parsed by parse_body; this keeps any framework validation in the same shape.
    assert isinstance(exc, RequestValidationError)
    return error_response(422, "MalformedRequest", describe_problems(exc.errors()))


def _http_error(request: Request, exc: Exception) -> JSONBody:
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


def _unexpected(request: Request, exc: Exception) -> JSONBody:
    return _server_failed(request, "InternalServerError", exc)


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception type to the JSON error body."""
    app.add_exception_handler(OETError, _oet_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)


class LastResort:
    """ASGI middleware: answer any unexpected exception with the 500 error body.

    Starlette's own last handler sends the answer but then re-raises, and the
    server closes the connection, which a client may see as a reset instead
    of the answer. This one answers and keeps the connection usable.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as exc:
            if started:
                raise
            response = _server_failed(Request(scope), "InternalServerError", exc)
            await response(scope, receive, send)


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
