"""What every ``oet`` command shares: a client for the chosen server, and one way to fail.

Failures are mapped to one ``Error: ...`` line on standard error and exit code
1 here, in :func:`session`; nothing a user can provoke ends in a traceback.
"""

import contextlib
import os
from collections.abc import Iterator
from typing import NoReturn

import httpx
import pydantic
import typer

from oet.cli.address import HINT, procedures_url
from oet.cli.client import APIError, NoProcedure, ProcedureClient
from oet.config import Settings
from oet.domain import OETError

DEFAULT_REST_URI = "http://oet-rest:5000/api/v1.0/procedures"
_TIMEOUT = httpx.Timeout(60.0, connect=5.0)  # a stop may wait for the script and the abort


def auth_headers() -> dict[str, str]:
    """``Authorization: Bearer $OET_API_TOKEN`` when that variable is set, for every request."""
    token = os.environ.get("OET_API_TOKEN", "").strip()
    return {"Authorization": f"Bearer {token}"} if token else {}


@contextlib.contextmanager
def session(ctx: typer.Context, server_url: str | None) -> Iterator[ProcedureClient]:
    """A client for the chosen server; turns every failure into one line and exit 1.

    The server address may be given in any usual form (see oet.cli.address).
    The HTTP transport can be injected through the root context's ``obj``.
    Every request (the stream too) carries the token from ``OET_API_TOKEN``.
    """
    url = ""
    try:
        url = procedures_url(server_url or Settings().rest_uri)
        transport = ctx.obj if isinstance(ctx.obj, httpx.BaseTransport) else None
        with httpx.Client(transport=transport, timeout=_TIMEOUT, headers=auth_headers()) as http:
            yield ProcedureClient(http, url)
    except APIError as exc:
        if exc.status == 404 and exc.error_type != "ResourceNotFound":
            fail(f"No OET procedures collection at {url} ({exc}); {HINT}")
        fail(str(exc))
    except OETError as exc:
        fail(str(exc))
    except pydantic.ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        fail(f"OET configuration is invalid: {where}: {problem['msg']}")
    except (httpx.HTTPError, httpx.InvalidURL) as exc:  # anything the client did not map
        fail(f"{type(exc).__name__}: {exc}")


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``message`` as one ``Error:`` line on stderr and exit with ``code``."""
    typer.echo(f"Error: {' '.join(message.split())}", err=True)
    raise typer.Exit(code)


def newest(client: ProcedureClient) -> int:
    """The ID of the last procedure created; NoProcedure if there is none."""
    procedures = client.list()
    if not procedures:
        raise NoProcedure("There are no procedures: create one with 'oet create'")
    return procedures[-1].id


def running(client: ProcedureClient) -> int:
    """The ID of the running procedure; NoProcedure if none runs."""
    found = [p for p in client.list() if p.state == "RUNNING"]
    if not found:
        raise NoProcedure("No procedure is running: there is nothing to stop")
    return found[-1].id
