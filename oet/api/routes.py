"""The ``/procedures`` resources of the REST API, as the user docs describe them."""

from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import JSONResponse

from oet.api import procedure_path
from oet.api.backends import Backend
from oet.api.events import EventBus
from oet.api.models import CreateProcedure, UpdateProcedure, parse_body
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


def _summaries(request: Request, procedures: Iterable[Procedure]) -> list[dict[str, Any]]:
    """The procedures as the API shows them, each ``uri`` on the address the client used."""
    base = str(request.base_url).rstrip("/")
    return [p.to_json(base + procedure_path(p.id)) for p in procedures]


def _summary(request: Request, procedure: Procedure) -> dict[str, Any]:
    return _summaries(request, [procedure])[0]


def _pid(text: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise ProcedureNotFound(text)
    return int(text)


# Handlers are ``async`` on purpose: they touch the event bus, which belongs to
# the event loop's thread, and they answer with JSONResponse directly to skip
# FastAPI's generic (and slow) encoding of plain dicts.


@router.get("/procedures", summary="List procedures")
async def list_procedures(request: Request, backend: BackendDep, bus: BusDep) -> JSONResponse:
    """Every kept procedure, oldest first."""
    bus.publish(Topic.REQUEST_LIST, {"pids": None})
    return JSONResponse({"procedures": _summaries(request, backend.list())})


@router.get("/procedures/{pid}", summary="Retrieve one procedure")
async def get_procedure(
    pid: str, request: Request, backend: BackendDep, bus: BusDep
) -> JSONResponse:
    """One procedure by its ID."""
    number = _pid(pid)
    bus.publish(Topic.REQUEST_LIST, {"pids": [number]}, number)
    return JSONResponse({"procedure": _summary(request, backend.get(number))})


def _json_body(model: type[Any]) -> dict[str, Any]:
    schema = {"application/json": {"schema": model.model_json_schema()}}
    return {"requestBody": {"required": True, "content": schema}}


@router.post(
    "/procedures",
    status_code=status.HTTP_201_CREATED,
    summary="Prepare a procedure",
    openapi_extra=_json_body(CreateProcedure),
)
async def create_procedure(
    request: Request,
    backend: BackendDep,
    bus: BusDep,
) -> JSONResponse:
    """Load a script and call its ``init``; answers once it is CREATED (or FAILED)."""
    body = parse_body(CreateProcedure, await request.body())
    init, run = body.script_args.init.to_input(), body.script_args.run.to_input()
    bus.publish(
        Topic.REQUEST_CREATE,
        {"script_uri": body.script_uri, "init_args": init.to_json(), "run_args": run.to_json()},
    )
    procedure = await backend.create(body.script_uri, init, run)
    return JSONResponse({"procedure": _summary(request, procedure)}, status_code=201)


@router.put(
    "/procedures/{pid}",
    summary="Start or stop a procedure",
    openapi_extra=_json_body(UpdateProcedure),
)
async def update_procedure(
    pid: str,
    request: Request,
    backend: BackendDep,
    bus: BusDep,
) -> JSONResponse:
    """``RUNNING`` starts the procedure; ``STOPPED`` stops it, aborting the subarray if asked."""
    number = _pid(pid)
    body = parse_body(UpdateProcedure, await request.body())
    if body.state == "STOPPED":
        bus.publish(Topic.REQUEST_STOP, {"abort": body.abort}, number)
        return JSONResponse({"abort_message": await backend.stop(number, body.abort)})
    given = body.script_args.run if body.script_args else None
    run = given.to_input() if given else None
    bus.publish(Topic.REQUEST_START, {"run_args": run.to_json() if run else None}, number)
    procedure = await backend.start(number, run)
    return JSONResponse({"procedure": _summary(request, procedure)})


@router.delete("/procedures/{pid}", summary="Discard a procedure that is not executing")
async def discard_procedure(
    pid: str, request: Request, backend: BackendDep, bus: BusDep
) -> JSONResponse:
    """Forget a CREATED or ended procedure (its idle runner ends); never sends ``Abort``."""
    number = _pid(pid)
    bus.publish(Topic.REQUEST_DISCARD, {"pids": [number]}, number)
    procedure = await backend.discard(number)
    return JSONResponse({"procedure": _summary(request, procedure)})
