"""The REST API at ``/api/v1.0``: procedures and the SSE event stream.

The HTTP layer is the same for every deployment; what stands behind it is a
:class:`~oet.api.backends.Backend` (embedded: runner subprocesses + SQLite).
"""

API_PREFIX = "/api/v1.0"
"""Where the REST API lives on the server."""


def procedure_path(pid: int) -> str:
    """The path of one procedure's resource on the server."""
    return f"{API_PREFIX}/procedures/{pid}"
