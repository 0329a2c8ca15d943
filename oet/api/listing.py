"""The encoded ``GET /procedures`` body, rebuilt only when a procedure changed.

Listing is the request clients make most (consoles and scripts poll it), and
encoding every procedure for every request is most of its cost. A backend
that counts its changes (an integer ``changes`` attribute that grows with
every change to any procedure) lets the body be kept between requests; the
address clients use in each ``uri`` is the only part that varies from one
request to the next, so one body is kept per address, for a few addresses.
A backend without the counter gets a body encoded afresh each time.
"""

from typing import Any

from fastapi.responses import Response

from oet.api import procedure_path
from oet.api.backends import Backend
from oet.api.responses import JSONBody

_ADDRESSES = 4
"""Bodies kept for as many client addresses (Host headers) at once."""


class ListingCache:
    """The last encoded listing per client address, valid until the backend changes."""

    def __init__(self) -> None:
        self._changes: int | None = None
        self._bodies: dict[str, bytes] = {}

    def response(self, backend: Backend, base: str) -> Response:
        """The listing of ``backend`` with each ``uri`` under ``base``."""
        changes = getattr(backend, "changes", None)
        if not isinstance(changes, int):
            return JSONBody(_content(backend, base))
        if changes != self._changes:
            self._changes, self._bodies = changes, {}
        body = self._bodies.get(base)
        if body is None:
            body = bytes(JSONBody(_content(backend, base)).body)
            if len(self._bodies) >= _ADDRESSES:
                del self._bodies[next(iter(self._bodies))]
            self._bodies[base] = body
        return Response(body, media_type="application/json")


def _content(backend: Backend, base: str) -> dict[str, Any]:
    return {"procedures": [p.to_json(base + procedure_path(p.id)) for p in backend.list()]}
