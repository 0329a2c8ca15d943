"""The ``/procedures`` resources of the REST API, as the user docs describe them."""

import re
from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, status

from oet.api import procedure_path
from oet.api.backends import Backend
from oet.api.events import EventBus
from oet.api.guards import guard_change
from oet.api.models import CreateProcedure, UpdateProcedure, parse_body
from oet.api.responses import JSONBody
from oet.domain import Procedure, ProcedureNotFound, Topic

router = APIRouter()


async def backend(request: Request) -> Backend:
    """The backend the app was built with."""
    result: Backend = request.app.state.backend
    return result


async def bus(request: Request) -> EventBus:
    """The app's event bus."""
    result: EventBus = request.app.state.bus
    return result


BackendDep = Annotated[Backend, Depends(backend)]
BusDep = Annotated[EventBus, Depends(bus)]


_HOST = re.compile(r"(?:[A-Za-z0-9][A-Za-z0-9.-]{0,252}|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?")


def base_url(request: Request) -> str:
    """Where clients reach this server: ``public_url`` when set, else the address they used.

    A ``Host`` header that is not a plain host name or address (and port) is
    not copied into answers; the address the server listens on is used instead.
    """
    public: str | None = request.app.state.settings.public_url
    if public:
        return public.rstrip("/")
    host = request.headers.get("host", "")
    if not _HOST.fullmatch(host) and (server := request.scope.get("server")):
        name, port = server
        host = f"[{name}]:{port}" if ":" in name else f"{name}:{port}"
    return f"{request.url.scheme}://{host}"


def _summaries(request: Request, procedures: Iterable[Procedure]) -> list[dict[str, Any]]:
    """The procedures as the API shows them, each ``uri`` on the address the client used."""
    base = base_url(request)
    return [p.to_json(base + procedure_path(p.id)) for p in procedures]


def _summary(request: Request, procedure: Procedure) -> dict[str, Any]:
    return _summaries(request, [procedure])[0]


def _pid(text: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise ProcedureNotFound(text)
    return int(text)


# Handlers are ``async`` on purpose: they touch the event bus, which belongs to
# the event loop's thread, and they answer with JSONBody directly to skip
# FastAPI's generic (and slow) encoding of plain dicts.


@router.get("/procedures", summary="List procedures")
async def list_procedures(request: Request, backend: BackendDep, bus: BusDep) -> JSONBody:
    """Every kept procedure, oldest first."""
    bus.publish(Topic.REQUEST_LIST, {"pids": None})
    return JSONBody({"procedures": _summaries(request, backend.list())})


@router.get("/procedures/{pid}", summary="Retrieve one procedure")
async def get_procedure(pid: str, request: Request, backend: BackendDep, bus: BusDep) -> JSONBody:
    """One procedure by its ID."""
    number = _pid(pid)
    bus.publish(Topic.REQUEST_LIST, {"pids": [number]}, number)
    return JSONBody({"procedure": _summary(request, backend.get(number))})


@router.post(
    "/procedures",
    status_code=status.HTTP_201_CREATED,
    summary="Prepare a procedure",
    dependencies=[Depends(guard_change)],
)
async def create_procedure(
    request: Request,
    backend: BackendDep,
    bus: BusDep,
) -> JSONBody:
    """Load a script and call its ``init``; answers once it is CREATED (or FAILED)."""
    body = parse_body(CreateProcedure, await request.body())
    init, run = body.script_args.init.to_input(), body.script_args.run.to_input()
    bus.publish(
        Topic.REQUEST_CREATE,
        {"script_uri": body.script_uri, "init_args": init.to_json(), "run_args": run.to_json()},
    )
    procedure = await backend.create(body.script_uri, init, run)
    return JSONBody({"procedure": _summary(request, procedure)}, status_code=201)


@router.put(
    "/procedures/{pid}",
    summary="Start or stop a procedure",
    dependencies=[Depends(guard_change)],
)
async def update_procedure(
    pid: str,
    request: Request,
    backend: BackendDep,
    bus: BusDep,
) -> JSONBody:
    """``RUNNING`` starts the procedure; ``STOPPED`` stops it, aborting the subarray if asked."""
    number = _pid(pid)
    body = parse_body(UpdateProcedure, await request.body())
    if body.state == "STOPPED":
        bus.publish(Topic.REQUEST_STOP, {"abort": body.abort}, number)
        return JSONBody({"abort_message": await backend.stop(number, body.abort)})
    given = body.script_args.run if body.script_args else None
    run = given.to_input() if given else None
    bus.publish(Topic.REQUEST_START, {"run_args": run.to_json() if run else None}, number)
    procedure = await backend.start(number, run)
    return JSONBody({"procedure": _summary(request, procedure)})


@router.delete(
    "/procedures/{pid}",
    summary="Discard a procedure that is not executing",
    dependencies=[Depends(guard_change)],
)
async def discard_procedure(
    pid: str, request: Request, backend: BackendDep, bus: BusDep
) -> JSONBody:
    """Forget a CREATED or ended procedure (its idle runner ends); never sends ``Abort``."""
    number = _pid(pid)
    bus.publish(Topic.REQUEST_DISCARD, {"pids": [number]}, number)
    procedure = await backend.discard(number)
    return JSONBody({"procedure": _summary(request, procedure)})
