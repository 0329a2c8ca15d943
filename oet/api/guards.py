"""Checks every request that changes something must pass before it is read.

Two defences against a web page in an operator's browser driving the server
(cross-site request forgery): a change must come with a JSON body — a browser
sends ``text/plain``, form or empty content types without asking, but never
``application/json`` to another site without the server's consent (CORS
preflight, which this server does not grant) — and, when the ``api_token``
setting is set, with ``Authorization: Bearer <token>``. A ``DELETE`` has no
body, so it needs no content type: a browser never sends that method to
another site without a preflight either.
"""

import hmac

from fastapi import Request

from oet.domain import InvalidRequest, NotAuthorised


class NotJSONContent(InvalidRequest):
    """A change was sent with a body that is not declared as JSON (REST 415)."""


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def guard_change(request: Request) -> None:
    """Refuse a mutating request without the API token (401) or a JSON body (415).

    A ``DELETE`` carries no body; only the token is checked for it.
    """
    token: str | None = request.app.state.settings.api_token
    if token:
        given = request.headers.get("authorization", "")
        scheme, _, credentials = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            credentials.strip().encode(), token.encode()
        ):
            raise NotAuthorised(
                "This request changes procedures and needs the server's API token:"
                " send 'Authorization: Bearer <token>' (the oet CLI sends $OET_API_TOKEN)"
            )
    if request.method != "DELETE" and not _is_json(request.headers.get("content-type", "")):
        raise NotJSONContent(
            "The request body must be JSON, sent with 'Content-Type: application/json'"
        )
