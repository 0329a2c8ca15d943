"""The one exception tree of OET.

Every edge maps these once: the REST API to the documented JSON error body,
the CLI to one readable line and a non-zero exit.

    OETError
    ├── ProcedureNotFound   no procedure has that ID            (REST 404)
    ├── InvalidRequest      the request cannot be acted on      (REST 400)
    │   ├── ScriptNotFound  the script URI points at nothing    (REST 400)
    │   └── ScriptNotAllowed  the script is outside script_dirs (REST 400)
    ├── NotAuthorised       a change without the API token      (REST 401)
    ├── StateConflict       not allowed in the current state    (REST 409)
    ├── RunnerError         the runner process misbehaved       (REST 500)
    ├── StorageUnavailable  the procedure records cannot be written (server refuses to start)
    └── ClusterUnavailable  no Kubernetes API server configured (at start-up)
"""


class OETError(Exception):
    """Base of every error OET raises on purpose."""


class ProcedureNotFound(OETError):
    """No procedure has the requested ID (it never existed or was dropped)."""

    def __init__(self, pid: object) -> None:
        super().__init__(f"No information available for PID={pid}")
        self.pid = pid


class InvalidRequest(OETError):
    """The request is well-formed but cannot be acted on as given."""


class ScriptNotFound(InvalidRequest):
    """The script URI does not name a readable script."""


class ScriptNotAllowed(InvalidRequest):
    """The script is not inside one of the directories scripts may be loaded from."""


class NotAuthorised(OETError):
    """A request that changes something came without the configured API token."""


class StateConflict(OETError):
    """The requested change is not allowed in the procedure's current state."""


class RunnerError(OETError):
    """The runner process for a procedure could not be started or talked to."""


class ClusterUnavailable(OETError):
    """No Kubernetes API server could be configured (neither in-cluster nor kubeconfig)."""


class StorageUnavailable(OETError):
    """The procedure records cannot be opened or written (the server does not start)."""
