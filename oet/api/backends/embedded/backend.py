"""The embedded backend: each procedure is a runner subprocess of this server.

The server's event loop owns all state: the procedures in memory (the
authority while the server runs), their SQLite records (so history survives a
restart) and the runner processes. Every change goes through
:meth:`EmbeddedBackend._move`, which persists, publishes the lifecycle event
and wakes whoever waits on the procedure, so those three never disagree.
"""

import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

from oet.api import procedure_path
from oet.api.backends.embedded import adopted
from oet.api.backends.embedded.runner_process import RunnerProcess
from oet.api.backends.embedded.spares import SpareRunners
from oet.api.backends.embedded.store import ProcedureStore
from oet.api.events import EventBus
from oet.config import Settings
from oet.domain import (
    FINAL_STATES,
    LIVE_STATES,
    Procedure,
    ProcedureInput,
    ProcedureNotFound,
    ProcedureState,
    RunnerError,
    Topic,
)
from oet.domain.rules import (
    abort_message,
    check_can_discard,
    check_can_start,
    check_can_stop,
    next_to_drop,
)
from oet.domain.state import can_transition
from oet.script_files import locate_script

log = logging.getLogger(__name__)
S = ProcedureState

_REFILL_DELAY = 0.25
"""Seconds after a create is answered before the spare it used is replaced."""

_LIFECYCLE_TOPICS = {
    S.CREATED: Topic.CREATED,
    S.RUNNING: Topic.STARTED,
    S.COMPLETED: Topic.COMPLETE,
    S.FAILED: Topic.FAILED,
    S.STOPPED: Topic.STOPPED,
}


class EmbeddedBackend:
    """Procedures run by runner subprocesses of this server, recorded in SQLite."""

    def __init__(self, settings: Settings, bus: EventBus, base_url: str = "") -> None:
        self.settings = settings
        self.bus = bus
        self.base_url = (settings.public_url or base_url).rstrip("/")
        self._store = ProcedureStore(settings.db_path)
        self._procedures: dict[int, Procedure] = {}
        self._runners: dict[int, RunnerProcess] = {}
        self._changed: dict[int, asyncio.Event] = {}
        self._abort_asked: set[int] = set()
        self._abort_outcomes: dict[int, tuple[bool, str]] = {}
        self._interrupted: set[int] = set()  # scripts stopped, runner still aborting
        self._given_new_runner: set[int] = set()  # their first runner died before loading
        self._tasks: set[asyncio.Task[Any]] = set()
        self.spares = SpareRunners(settings.warm_runners)
        self.changes = 0
        """Grows with every change to any procedure: cached listings compare it."""

    # -- lifecycle of the server ---------------------------------------------
    async def startup(self) -> None:
        """Load the records; a procedure that was live when the server died has failed."""
        for procedure in self._store.load_all():
            self._procedures[procedure.id] = procedure
            if procedure.state in LIVE_STATES:
                procedure.history.reason = (
                    f"The OET server stopped while the procedure was {procedure.state.value};"
                    " its runner ended with it"
                )
                self._move(procedure, S.FAILED)
        self.spares.fill()

    def health_problem(self) -> str | None:
        """Why this backend cannot serve now (None: it can): its database must be writable."""
        return self._store.write_problem()

    async def shutdown(self) -> None:
        """Stop every live procedure (no abort), kill stragglers, record the outcome."""
        await self.spares.close()
        live = [p for p in self._procedures.values() if p.state in LIVE_STATES]
        for procedure in live:
            procedure.history.reason = "The OET server shut down"
            if procedure.state != S.STOPPING:
                self._move(procedure, S.STOPPING)
            if runner := self._runners.get(procedure.id):
                runner.send({"cmd": "stop", "abort": False})
        for procedure in live:
            await self._wait_until(procedure.id, lambda p: p.is_final, self.settings.stop_grace)
            if runner := self._runners.get(procedure.id):
                runner.kill()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(runner.wait(), 5)
            if procedure.state in LIVE_STATES:
                self._move(procedure, S.STOPPED)
        for task in list(self._tasks):
            task.cancel()
        self._store.close()

    # -- queries ------------------------------------------------------------
    def list(self, pids: list[int] | None = None) -> list[Procedure]:
        if pids is None:
            return list(self._procedures.values())
        return [self.get(pid) for pid in pids]

    def get(self, pid: int) -> Procedure:
        try:
            return self._procedures[pid]
        except KeyError:
            raise ProcedureNotFound(pid) from None

    # -- commands -----------------------------------------------------------
    async def create(self, script_uri: str, init: ProcedureInput, run: ProcedureInput) -> Procedure:
        allowed = self.settings.allowed_script_dirs()
        path = locate_script(script_uri, allowed)
        self._make_room()
        procedure = Procedure(self._store.new_id(), script_uri, init, run)
        self._procedures[procedure.id] = procedure
        self.changes += 1
        self._store.save(procedure)
        load = {
            "procedure_id": procedure.id,
            "script_path": str(path),
            "script_dirs": [str(d) for d in allowed],
            "init": init.to_json(),
            "subarray_id": procedure.subarray_id,
            "stop_grace": self.settings.stop_grace,
            "abort": {
                "fqdn_template": self.settings.abort_fqdn_template,
                "timeout": self.settings.abort_timeout,
            },
        }
        try:
            # Shielded: a cancelled request must not leave a recorded procedure without a runner.
            await asyncio.shield(self._launch(procedure, load))
            await self._wait_until(
                procedure.id, lambda p: p.state != S.INITIALISING, self.settings.create_wait
            )
        finally:
            # Not beside init, nor beside a start that follows at once: all want the CPU.
            self.spares.fill(after=_REFILL_DELAY)
        return procedure

    async def _launch(self, procedure: Procedure, load: dict[str, Any], spare: bool = True) -> None:
        """Spawn the procedure's runner (a spare if ``spare`` and one waits); a failure to
        spawn ends the procedure FAILED."""
        pid = procedure.id
        handlers = (
            lambda message: self._on_report(pid, message),
            lambda code: self._on_runner_exit(pid, code),
            self.settings.script_output_limit,
        )
        try:
            runner = (spare and self.spares.take()) or await self.spares.start_runner()
            gone = self._procedures.get(pid) is not procedure or self.spares.closed
            if gone or procedure.state != S.INITIALISING:
                await runner.discard()  # stopped, dropped or shut down while its runner started
                await self._stopped_before_loading(procedure)
                return
            runner.hand(load, *handlers)
            self._runners[pid] = runner
            log.info("procedure %d (%s): handed to runner process %d",
                     pid, procedure.script_uri, runner.pid)  # fmt: skip
        except Exception as exc:
            procedure.history.reason = str(exc)
            self._move(procedure, S.FAILED)
            raise

    async def _stopped_before_loading(self, procedure: Procedure) -> None:
        """End a procedure stopped before any runner read its load: no script code ran."""
        if procedure.state != S.STOPPING:
            return
        procedure.history.reason = "Stopped before the script was loaded"
        if procedure.id in self._abort_asked:  # asked for: sent, as when a runner is gone
            self._record_abort(procedure, *await self._abort_from_server(procedure))
        self._move(procedure, S.STOPPED)

    async def start(self, pid: int, run: ProcedureInput | None) -> Procedure:
        procedure = self.get(pid)
        check_can_start(procedure, self._procedures.values())
        runner = self._runners.get(pid)
        if runner is None:
            raise RunnerError(f"Procedure {pid} has lost its runner; create it again")
        if run is not None:
            procedure.run_args = run
        self._move(procedure, S.RUNNING)
        runner.send({"cmd": "start", **procedure.run_args.to_json()})
        return procedure

    async def stop(self, pid: int, abort: bool) -> str:
        procedure = self.get(pid)
        check_can_stop(procedure)
        if abort:
            self._abort_asked.add(pid)
        self._move(procedure, S.STOPPING)
        runner = self._runners.get(pid)
        if runner is not None:
            runner.send({"cmd": "stop", "abort": abort})
            self._spawn_task(self._kill_if_stuck(pid, runner))
        limit = self.settings.stop_grace + self.settings.abort_timeout + 5
        await self._wait_until(pid, lambda p: p.is_final, limit)
        return abort_message(procedure, abort, self._abort_outcomes.pop(pid, None))

    async def discard(self, pid: int) -> Procedure:
        procedure = self.get(pid)
        check_can_discard(procedure)
        self._drop(procedure)  # a CREATED procedure's runner is idle: killing it aborts nothing
        log.info("procedure %d (%s): discarded on request", pid, procedure.script_uri)
        return procedure

    # -- reports from runners ---------------------------------------------------
    def _on_report(self, pid: int, message: dict[str, Any]) -> None:
        procedure = self._procedures.get(pid)
        if procedure is None:
            return  # dropped by retention while its runner wound down
        kind = message.get("type")
        if kind == "interrupted":
            self._interrupted.add(pid)
            self._notify(pid)
            return
        if kind == "event":
            topic = message.get("topic")
            payload = message.get("payload")
            if isinstance(topic, str) and isinstance(payload, dict):
                self.bus.publish(topic, payload, pid, "script", message.get("time"))
            return
        if kind != "state":
            return
        try:
            new = ProcedureState(str(message.get("state")))
        except ValueError:
            return
        if not can_transition(procedure.state, new):
            return  # e.g. CREATED reported just as a stop arrived
        if new == S.FAILED:
            procedure.history.stacktrace = message.get("stacktrace")
            procedure.history.reason = message.get("reason")
        if new == S.STOPPED:
            procedure.history.reason = procedure.history.reason or "Stopped on request"
            abort = message.get("abort")
            if isinstance(abort, dict):
                self._record_abort(procedure, bool(abort.get("sent")), str(abort.get("message")))
        self._move(procedure, new)

    async def _on_runner_exit(self, pid: int, code: int) -> None:
        runner = self._runners.pop(pid, None)
        procedure = self._procedures.get(pid)
        if procedure is None or procedure.state in FINAL_STATES:
            return
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        if await self._relaunched(procedure, runner, how):
            return
        if procedure.state == S.STOPPING and runner is not None and runner.killed:
            if pid in self._interrupted:
                procedure.history.reason = "Stopped on request; runner killed while aborting"
            else:
                procedure.history.reason = (
                    f"The script did not stop within {self.settings.stop_grace:g} s; runner killed"
                )
            if pid in self._abort_asked and pid not in self._interrupted:
                self._record_abort(procedure, *await self._abort_from_server(procedure))
            self._move(procedure, S.STOPPED)
            return
        procedure.history.reason = f"The runner {how} before the procedure ended"
        self._move(procedure, S.FAILED)

    async def _relaunched(
        self, procedure: Procedure, runner: RunnerProcess | None, how: str
    ) -> bool:
        """Hand the procedure to a new runner if its first one died before reading its load.

        A spare can die (killed from outside, say) in the instant between being taken and
        reading its load command. Nothing of the script has run then, so a new runner may
        take over; once a runner has said it read its load, it never is: an observing
        script is not run twice. One new runner per procedure, never a spare.
        """
        if (
            runner is None
            or runner.loaded
            or runner.load is None
            or procedure.id in self._given_new_runner
            or procedure.state != S.INITIALISING
            or self.spares.closed
        ):
            return False
        self._given_new_runner.add(procedure.id)
        with contextlib.suppress(Exception):  # a failure to spawn ends it FAILED
            await self._launch(procedure, runner.load, spare=False)
        new = self._runners.get(procedure.id)
        outcome = f"runner process {new.pid} took it over" if new else "no new runner took it"
        log.warning("procedure %d (%s): runner process %d %s before reading its load; %s",
                    procedure.id, procedure.script_uri, runner.pid, how, outcome)  # fmt: skip
        return True

    async def _kill_if_stuck(self, pid: int, runner: RunnerProcess) -> None:
        """Kill a runner whose script ignores the stop, or whose abort outlives its timeout."""
        settings = self.settings
        await self._wait_until(
            pid, lambda p: p.is_final or pid in self._interrupted, settings.stop_grace
        )
        if pid in self._interrupted:  # the script is stopped; the abort has its own timeout
            await self._wait_until(pid, lambda p: p.is_final, settings.abort_timeout + 2)
        procedure = self._procedures.get(pid)
        if procedure is not None and procedure.state == S.STOPPING:
            runner.kill()

    def _record_abort(self, procedure: Procedure, sent: bool, message: str) -> None:
        self._abort_outcomes[procedure.id] = (sent, message)
        procedure.history.reason = f"{procedure.history.reason}; {message}"

    async def _abort_from_server(self, procedure: Procedure) -> tuple[bool, str]:
        """Send Abort from a helper process, for a runner that had to be killed."""
        settings = self.settings
        argument = json.dumps(
            [procedure.subarray_id, settings.abort_fqdn_template, settings.abort_timeout]
        )
        with adopted.starting():
            helper = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "oet.runner.abort", argument, stdout=asyncio.subprocess.PIPE
            )
            adopted.own(helper.pid)
        out, _ = await helper.communicate()
        adopted.disown(helper.pid)
        try:
            outcome = json.loads(out)
            return bool(outcome["sent"]), str(outcome["message"])
        except (ValueError, KeyError, TypeError):
            return False, f"Abort helper failed with exit code {helper.returncode}"

    # -- shared mechanics -------------------------------------------------------
    def _move(self, procedure: Procedure, new: ProcedureState) -> None:
        old = procedure.state
        procedure.move_to(new)
        self.changes += 1
        log.info(
            "procedure %d (%s): %s -> %s%s",
            procedure.id,
            procedure.script_uri,
            old.value,
            new.value,
            f": {procedure.history.reason}" if procedure.history.reason else "",
        )
        if new in FINAL_STATES:
            self._abort_asked.discard(procedure.id)
            self._interrupted.discard(procedure.id)
        if old == S.INITIALISING:  # a runner has loaded it, or it ended: no new runner now
            self._given_new_runner.discard(procedure.id)
        self._store.save(procedure)
        topic = _LIFECYCLE_TOPICS.get(new)
        if topic is not None:
            summary = procedure.to_json(self.base_url + procedure_path(procedure.id))
            self.bus.publish(topic, {"procedure": summary}, procedure.id)
        self._notify(procedure.id)

    def _notify(self, pid: int) -> None:
        """Wake every request waiting on this procedure."""
        if changed := self._changed.pop(pid, None):
            changed.set()

    async def _wait_until(
        self, pid: int, done: Callable[[Procedure], bool], timeout: float
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (procedure := self._procedures.get(pid)) is not None and not done(procedure):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            changed = self._changed.setdefault(pid, asyncio.Event())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    def _make_room(self) -> None:
        """Drop procedures (oldest finished first) until one more fits under the limit."""
        limit = self.settings.max_procedures
        while (victim := next_to_drop(self._procedures.values(), limit)) is not None:
            self._drop(victim)

    def _drop(self, procedure: Procedure) -> None:
        del self._procedures[procedure.id]
        self.changes += 1
        self._store.delete(procedure.id)
        if runner := self._runners.pop(procedure.id, None):
            runner.kill()
        self._notify(procedure.id)

    def _spawn_task(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
