"""``oet start --wait``: follow a started procedure until it ends, and say how it ended.

An operator (or a shell script) that starts an observation wants to know
whether it worked: the exit code says COMPLETED (0), FAILED (1) or STOPPED
(3), and the last line says why when it did not complete.
"""

import time
from collections.abc import Callable, Iterable

from oet.cli.client import ProcedureClient, ProcedureSummary, StreamEvent

ENDINGS = frozenset(
    {"procedure.lifecycle.complete", "procedure.lifecycle.failed", "procedure.lifecycle.stopped"}
)
FINAL_STATES = frozenset({"COMPLETED", "FAILED", "STOPPED"})
EXIT_CODES = {"COMPLETED": 0, "FAILED": 1, "STOPPED": 3}


def follow_procedure(
    events: Iterable[StreamEvent], pid: int, show: Callable[[StreamEvent], None]
) -> bool:
    """Show procedure ``pid``'s lifecycle and script events until it ends.

    Returns True once its ending event was shown, False if the stream ended
    first (the caller then asks the server how the procedure ended).
    """
    for event in events:
        if event.procedure_id != pid or event.topic.startswith("request."):
            continue
        show(event)
        if event.topic in ENDINGS:
            return True
    return False


def final_state(
    client: ProcedureClient, pid: int, pause: Callable[[float], None] = time.sleep
) -> ProcedureSummary:
    """Procedure ``pid`` once it has ended, asking the server once a second."""
    while (procedure := client.get(pid)).state not in FINAL_STATES:
        pause(1.0)
    return procedure


def outcome(procedure: ProcedureSummary) -> tuple[int, str | None]:
    """The exit code for how ``procedure`` ended, and the error line when it did not complete."""
    code = EXIT_CODES.get(procedure.state, 1)
    if code == 0:
        return 0, None
    reason = procedure.reason or "no reason was recorded"
    more = f" (oet describe --pid={procedure.id} shows the stack trace)"
    detail = more if procedure.stacktrace else ""
    return code, f"Procedure {procedure.id} {procedure.state}: {reason}{detail}"
