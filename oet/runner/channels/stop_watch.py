"""The end of a runner whose script does not stop, for runners without a supervisor.

Why this exists: the embedded backend's server kills a runner whose script
swallows a stop (after ``stop_grace``) or whose Abort outlives
``abort_timeout``, then sends the Abort itself. A runner in a Pod has nobody
above it to do that, and a procedure must never stay STOPPING for ever. So the
Kubernetes channel starts a :class:`StopWatch` with each stop: it does the
same, from a thread of the runner, with the same words in the reason.
"""

import os
import threading
from collections.abc import Callable
from typing import Any

from oet.config import Settings
from oet.domain import ProcedureState
from oet.kube.resource import AbortOutcome
from oet.process_tree import kill_descendants
from oet.tango_abort import send_abort

ABORT_REPORT_SECONDS = 2
"""What the runner has, beyond ``abort_timeout``, to report after its own Abort."""


class StopWatch:
    """Watches one stop; ends the runner process if the script does not stop in time.

    The channel calls :meth:`interrupted` when the script was stopped (the runner
    is then aborting and reporting) and :meth:`ended` when a final state was reported.
    """

    def __init__(
        self,
        settings: Settings,
        write_status: Callable[..., bool],
        log: Callable[[str], None],
    ) -> None:
        self.settings = settings
        self.write_status = write_status
        self.log = log
        self._settled = threading.Event()  # interrupted, or ended
        self._ended = threading.Event()

    def interrupted(self) -> None:
        """The script was stopped: the runner's own Abort and report follow."""
        self._settled.set()

    def ended(self) -> None:
        """A final state was reported: nothing is left to watch."""
        self._ended.set()
        self._settled.set()

    def start(self, abort: bool, subarray_id: Any) -> None:
        """Watch the stop that was just asked for, from a daemon thread."""
        threading.Thread(
            target=self.enforce, args=(abort, subarray_id), name="oet-stop-watch", daemon=True
        ).start()

    def enforce(self, abort: bool, subarray_id: Any) -> None:
        """Wait for the stop to take effect; if it does not, end the runner as the server would.

        ``stop_grace`` for the script to be interrupted, then ``abort_timeout``
        (and a little more) for the runner's own Abort and report. Otherwise: the
        script's processes are killed, the Abort is sent if the stop asked for it
        and the script was never interrupted, STOPPED is reported and the runner exits.
        """
        grace, abort_timeout = self.settings.stop_grace, self.settings.abort_timeout
        interrupted = self._settled.wait(grace)
        if self._ended.is_set():
            return
        if interrupted:  # the runner itself is aborting and reporting
            if self._ended.wait(abort_timeout + ABORT_REPORT_SECONDS):
                return
            message = "Stopped on request; runner killed while aborting"
        else:
            message = f"The script did not stop within {grace:g} s; runner killed"
        kill_descendants(os.getpid())
        outcome = None
        if abort and not interrupted:
            sent, detail = send_abort(subarray_id, self.settings.abort_fqdn_template, abort_timeout)
            outcome = AbortOutcome(sent=sent, message=detail)
            message = f"{message}; {detail}"
        self.log(message)
        self.write_status(state=ProcedureState.STOPPED, message=message, abort=outcome)
        os._exit(0)
