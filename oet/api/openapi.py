"""The OpenAPI document at ``/openapi.json``, made to say what the server does.

The routes parse their own bodies (so that every mistake gets the documented
error body), which leaves FastAPI unable to describe them on its own: it
would nest each body model's ``$defs`` where no ``$ref`` can reach them,
document a 422 body the server never sends, and call the SSE stream JSON.
This module writes those parts: request and response models as shared
components, every error status an operation can answer with the one error
body, and ``text/event-stream`` for the stream. Generated clients and
schemathesis (run by ``make test``) rely on it.
"""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema

from oet.api import API_PREFIX
from oet.api.models import CreateProcedure, UpdateProcedure

_REF = "#/components/schemas/{model}"


class Error(BaseModel):
    """The body of every error answer."""

    error: str = Field(description="HTTP status code and phrase, e.g. '404 Not Found'.")
    type: str = Field(description="What kind of error, e.g. 'ResourceNotFound'.")
    Message: str = Field(description="What went wrong, for people.")


class ScriptArgs(BaseModel):
    """``init`` and ``run`` arguments, as recorded."""

    init: dict[str, Any]
    run: dict[str, Any]


class History(BaseModel):
    """When the procedure entered each state, and why it failed or stopped."""

    process_states: dict[str, float]
    stacktrace: str | None
    reason: str | None


class ProcedureSummary(BaseModel):
    """A procedure as the API shows it."""

    uri: str = Field(description="The procedure's own resource.")
    script_uri: str
    script_args: ScriptArgs
    state: str
    history: History


class OneProcedure(BaseModel):
    """Answer with one procedure."""

    procedure: ProcedureSummary


class ProcedureList(BaseModel):
    """Answer with every kept procedure."""

    procedures: list[ProcedureSummary]


class StopAnswer(BaseModel):
    """Answer to a stop: what became of the abort, if one was asked for."""

    abort_message: str


class StreamEvent(BaseModel):
    """The JSON in an SSE message's ``data:``."""

    id: int = Field(description="Same as the message's ``id:``; increases.")
    topic: str = Field(description="Same as the message's ``event:``.")
    time: float = Field(description="UNIX time the event happened.")
    procedure_id: int | None = Field(description="The procedure it concerns, if any.")
    source: str = Field(description="'api' for requests and lifecycle, 'script' for scripts.")
    payload: dict[str, Any] = Field(description="The published keyword arguments, as sent.")
    msg_src: str = Field(description="Who published: given by the publisher, or OET's default.")

    model_config = {"extra": "allow"}  # the payload's keywords, lifted to the top level


_SSE_MESSAGE = {
    "type": "object",
    "description": "One Server-Sent Events message.",
    "required": ["id", "event", "data"],
    "properties": {
        "id": {"type": "string", "pattern": "^[0-9]+$"},
        "event": {"type": "string"},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {"$ref": "#/components/schemas/StreamEvent"},
        },
    },
}

_ERRORS = {
    400: "The request cannot be acted on: bad JSON, bad script URI, script not allowed.",
    401: "The server has an API token and the request did not carry it.",
    404: "No procedure has that ID.",
    409: "Not allowed in the procedure's current state (a stop of a procedure that is not"
    " executing, a start or discard of one that is).",
    413: "The request body is larger than max_body_bytes.",
    415: "The request body is not declared as JSON (Content-Type: application/json).",
    422: "The body is JSON but not of the expected shape.",
    500: "The server failed; the body names an error id found in the server log.",
}

_STREAM = (
    "Server-Sent Events, each message described by the schema: `id:` (increasing),"
    " `event:` (the topic) and `data:` (the event as JSON). The stream does not end on"
    " its own; send `Last-Event-ID` to resume after the last message seen."
)


_TOKEN_IF_SET: list[dict[str, list[str]]] = [{}, {"apiToken": []}]
"""Changes need the bearer token only when the server's ``api_token`` is set."""


def _json(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": _REF.format(model=ref)}}}


def _answers(ok: int, body: dict[str, Any], errors: tuple[int, ...]) -> dict[str, Any]:
    answers: dict[str, Any] = {str(ok): {"description": "Success", "content": body}}
    for status in (*errors, 500):
        answers[str(status)] = {"description": _ERRORS[status], "content": _json("Error")}
    return answers


def _operations() -> dict[tuple[str, str], dict[str, Any]]:
    change = (400, 401, 413, 415, 422)
    stop_or_start = {
        "application/json": {
            "schema": {
                "oneOf": [{"$ref": _REF.format(model=m)} for m in ("OneProcedure", "StopAnswer")]
            }
        }
    }
    return {
        ("/procedures", "get"): {"responses": _answers(200, _json("ProcedureList"), ())},
        ("/procedures", "post"): {
            "security": _TOKEN_IF_SET,
            "requestBody": {"required": True, "content": _json("CreateProcedure")},
            "responses": _answers(201, _json("OneProcedure"), change),
        },
        ("/procedures/{pid}", "get"): {"responses": _answers(200, _json("OneProcedure"), (404,))},
        ("/procedures/{pid}", "put"): {
            "security": _TOKEN_IF_SET,
            "requestBody": {"required": True, "content": _json("UpdateProcedure")},
            "responses": _answers(200, stop_or_start, (*change, 404, 409)),
        },
        ("/procedures/{pid}", "delete"): {
            "security": _TOKEN_IF_SET,
            "responses": _answers(200, _json("OneProcedure"), (401, 404, 409)),
        },
        ("/stream", "get"): {
            "responses": {
                "200": {
                    "description": _STREAM,
                    "content": {"text/event-stream": {"schema": _SSE_MESSAGE}},
                },
                "500": {"description": _ERRORS[500], "content": _json("Error")},
            }
        },
    }


def _schemas() -> dict[str, Any]:
    models: list[type[BaseModel]] = [
        CreateProcedure,
        UpdateProcedure,
        Error,
        OneProcedure,
        ProcedureList,
        StopAnswer,
        StreamEvent,
    ]
    _, top = models_json_schema([(m, "validation") for m in models], ref_template=_REF)
    schemas: dict[str, Any] = top.get("$defs", {})
    return schemas


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document of ``app``, with the parts FastAPI cannot know filled in."""
    if app.openapi_schema is None:
        document = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        for (path, method), spec in _operations().items():
            operation = document["paths"][API_PREFIX + path][method]
            operation.update(spec)
        document["components"] = {
            "schemas": _schemas(),
            "securitySchemes": {
                "apiToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The server's api_token setting, when it has one.",
                }
            },
        }
        app.openapi_schema = document
    return app.openapi_schema


def install_openapi(app: FastAPI) -> None:
    """Serve :func:`build_openapi` at ``/openapi.json``."""
    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]
