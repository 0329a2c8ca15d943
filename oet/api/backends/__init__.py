"""What the REST layer needs from whatever runs procedures."""

from typing import Protocol

from oet.domain import Procedure, ProcedureInput


class Backend(Protocol):
    """Runs procedures and keeps their records. Errors are ``OETError``s."""

    async def startup(self) -> None:
        """Recover records and get ready to serve."""

    async def shutdown(self) -> None:
        """Bring every live procedure to a final state and release resources."""

    async def create(self, script_uri: str, init: ProcedureInput, run: ProcedureInput) -> Procedure:
        """Load a script and call its ``init``; return once it is CREATED or FAILED (or slow)."""

    def list(self, pids: list[int] | None = None) -> list[Procedure]:
        """The kept procedures, oldest first (only ``pids`` when given)."""

    def get(self, pid: int) -> Procedure:
        """One procedure; ProcedureNotFound if there is none with that ID."""

    async def start(self, pid: int, run: ProcedureInput | None) -> Procedure:
        """Start a CREATED procedure's ``run`` with ``run`` arguments."""

    async def stop(self, pid: int, abort: bool) -> str:
        """Stop a procedure whose script is executing, aborting its subarray if asked.

        Returns the abort message. StateConflict for a procedure whose script
        is not executing (CREATED or ended): no Abort is ever sent for those.
        """

    async def discard(self, pid: int) -> Procedure:
        """Forget a procedure whose script is not executing; never aborts anything."""
