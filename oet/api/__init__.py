"""The REST API at ``/api/v1.0``: procedures and the SSE event stream.

The HTTP layer is the same for every deployment; what stands behind it is a
:class:`~oet.api.backends.Backend` (embedded: runner subprocesses + SQLite).
"""
