"""``GET /healthz``: whether this server can do its job now, for probes and load balancers.

It answers honestly rather than "the process is up": a backend that has a
``health_problem()`` method is asked (the embedded one checks its database
can be written; the Kubernetes one, that its cache of Procedures is synced),
and any problem it reports makes the answer 503 with the reason.
"""

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request

from oet.api.responses import JSONBody

router = APIRouter()


def backend_problem(backend: Any) -> str | None:
    """The backend's own account of why it cannot serve, or None when it can (or cannot say)."""
    check: Callable[[], str | None] | None = getattr(backend, "health_problem", None)
    return check() if check is not None else None


@router.get("/healthz", summary="Health check", include_in_schema=False)
async def healthz(request: Request) -> JSONBody:
    """200 ``{"status": "ok"}`` when the backend can serve, else 503 with the reason."""
    problem = backend_problem(request.app.state.backend)
    if problem is not None:
        return JSONBody({"status": "unavailable", "reason": problem}, status_code=503)
    return JSONBody({"status": "ok"})
