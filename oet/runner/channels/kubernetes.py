"""The Kubernetes backend's channel: the runner talks to the API server about its Procedure.

Commands come from the Procedure's ``spec`` (watched): ``desiredState:
RUNNING`` starts the script with ``spec.run``, ``STOPPED`` stops it (with
``abort``). Reports go to its ``status`` (state, per-state times, reason,
stack trace, abort outcome) through the status subresource, and script events
become core/v1 Events on the Procedure (:mod:`oet.kube.events`).

Every status write is made from a fresh read with its ``resourceVersion``, so
it never overwrites what the operator wrote meanwhile; a write the domain's
transition table refuses (the operator already ended the procedure) is
dropped with a log line.

A runner in a Pod has no supervisor to kill it when its script swallows a
stop, as the embedded backend's server does. So each stop also starts a
:class:`~oet.runner.channels.stop_watch.StopWatch`: a script that has not
stopped after ``stop_grace`` (or whose Abort outlives ``abort_timeout``) is
ended by the runner itself, the way the embedded server ends it.
"""

import collections
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from oet.config import Settings, get_settings
from oet.domain import FINAL_STATES, OETError, ProcedureState, StateConflict
from oet.domain.scripts import script_path
from oet.kube import (
    DesiredState,
    ProcedureResource,
    read_spec,
    read_status,
    runner_job_name,
)
from oet.kube.events import script_event
from oet.kube.plain_client import ApiError, PlainClient
from oet.kube.resource import AbortOutcome, RunnerRef
from oet.kube.status import RUNNER_TERMINATED, status_patch_for
from oet.runner.channels.stop_watch import StopWatch
from oet.script_files import locate_script

S = ProcedureState

STOPPED_ON_REQUEST = "Stopped on request"
"""How a procedure stopped by a user says it stopped, as on the embedded backend."""

_RETRIES = 5
_WATCH_SECONDS = 60


def log(text: str) -> None:
    """One line to the runner's log (``kubectl logs``)."""
    print(f"oet runner: {text}", file=sys.stderr, flush=True)


@contextmanager
def _sigterm_held() -> Iterator[None]:
    """Hold SIGTERM while talking to the API server, so a stop never cuts a request in half."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


class KubernetesChannel:
    """A runner's link to its Procedure resource."""

    def __init__(
        self, client: PlainClient, name: str, namespace: str, pod: str, settings: Settings
    ) -> None:
        self.name = name
        self.namespace = namespace
        self.pod = pod
        self.settings = settings
        self.client = client  # not the kubernetes package: see oet.kube.plain_client
        self._commands: collections.deque[dict[str, Any] | None] = collections.deque()
        self._loaded = False
        self._started = False
        self.stop_asked = False
        self._created = False
        self._start_pending = False
        self._seq = 0
        self._lock = threading.Lock()
        self._resource_version = ""
        self.uid = ""
        self._subarray_id: Any = None
        self.stop_watch = StopWatch(settings, self.write_status, log)

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> "KubernetesChannel":
        """The channel for the Procedure ``OET_PROCEDURE_NAME`` in ``OET_PROCEDURE_NAMESPACE``."""
        env = dict(os.environ if environ is None else environ)
        missing = [k for k in ("OET_PROCEDURE_NAME", "OET_PROCEDURE_NAMESPACE") if not env.get(k)]
        if missing:
            raise OETError(f"the Kubernetes channel needs {' and '.join(missing)} set")
        return cls(
            PlainClient(),
            env["OET_PROCEDURE_NAME"],
            env["OET_PROCEDURE_NAMESPACE"],
            env.get("OET_POD_NAME", ""),
            get_settings(),
        )

    # -- the Procedure ------------------------------------------------------------
    def read(self) -> ProcedureResource:
        """The Procedure as the API server has it now."""
        resource: ProcedureResource = self.client.get_procedure(self.namespace, self.name)  # type: ignore[assignment]
        return resource

    def write_status(self, **change: Any) -> bool:
        """Patch the status with ``change`` (``status_patch_for``'s arguments); True if written."""
        for _ in range(_RETRIES):
            try:
                with _sigterm_held():
                    resource = self.read()
                    body = status_patch_for(
                        resource,
                        time.time(),
                        resource_version=resource["metadata"]["resourceVersion"],
                        **change,
                    )
                    self.client.patch_procedure_status(self.namespace, self.name, body)
                return True
            except StateConflict as exc:
                log(f"status not changed: {exc}")
                return False
            except ApiError as exc:
                if exc.status == 404:
                    log(f"procedure {self.name} is gone; status not written")
                    return False
                if exc.status != 409:
                    log(f"status write failed ({exc.status} {exc.reason}); trying again")
                    time.sleep(1)
        log(f"status not written after {_RETRIES} attempts: {change}")
        return False

    def start_up(self) -> ProcedureResource | None:
        """Record this Pod as the runner (INITIALISING); None when the procedure already ended.

        A procedure stopped before its runner started ends STOPPED here, without
        loading the script.
        """
        resource = self.read()
        self.uid = str(resource["metadata"].get("uid", ""))
        status, spec = read_status(resource), read_spec(resource)
        if status.state in FINAL_STATES:
            log(f"procedure {self.name} is already {status.state.value}; nothing to run")
            return None
        runner = RunnerRef(job=runner_job_name(spec.id), pod=self.pod or None)
        if spec.desired_state == DesiredState.STOPPED:
            self.write_status(
                state=S.STOPPED,
                reason="StoppedBeforeStart",
                message="stopped before the script was loaded",
                runner=runner,
            )
            return None
        self.write_status(runner=runner)
        return self.read()

    def load_command(self, resource: ProcedureResource) -> dict[str, Any]:
        """The runner's first command, made from the Procedure's spec."""
        spec = read_spec(resource)
        self._subarray_id = spec.init.keyword_args.get("subarray_id")
        allowed = self.settings.allowed_script_dirs()
        try:
            path = str(locate_script(spec.script_uri, allowed))
        except OETError:
            path = str(script_path(spec.script_uri))  # the runner refuses it with the reason
        return {
            "cmd": "load",
            "procedure_id": spec.id,
            "script_path": path,
            "script_dirs": [str(d) for d in allowed],
            "init": spec.init.to_json(),
            "subarray_id": spec.init.keyword_args.get("subarray_id"),
            "stop_grace": self.settings.stop_grace,
            "abort": {
                "fqdn_template": self.settings.abort_fqdn_template,
                "timeout": self.settings.abort_timeout,
            },
        }

    # -- Channel: commands ------------------------------------------------------------
    def receive(self) -> dict[str, Any] | None:
        """The load command first; then start and stop as ``spec.desiredState`` asks.

        None when the Procedure was deleted.
        """
        if not self._loaded:
            self._loaded = True
            resource = self.read()
            self._resource_version = resource["metadata"]["resourceVersion"]
            self._commands.extend(self._commands_for(resource))
            return self.load_command(resource)
        while not self._commands:
            self._watch(self._commands_for)
        return self._commands.popleft()

    def _commands_for(self, resource: ProcedureResource | None) -> list[dict[str, Any] | None]:
        if resource is None:
            return [None]
        spec = read_spec(resource)
        commands: list[dict[str, Any] | None] = []
        if spec.desired_state == DesiredState.RUNNING and not self._started:
            self._started = True
            with self._lock:  # RUNNING is reported once init has returned, never before
                report_now = self._created
                self._start_pending = not report_now
            if report_now:
                self.write_status(state=S.RUNNING)
            commands.append({"cmd": "start", **spec.run.to_json()})
        if spec.desired_state == DesiredState.STOPPED and not self.stop_asked:
            self.stop_asked = True
            self._started = True
            self.write_status(state=S.STOPPING)
            commands.append({"cmd": "stop", "abort": spec.abort})
            # From the spec, not from the load: a stop can come before the runner has loaded.
            self.stop_watch.start(spec.abort, spec.init.keyword_args.get("subarray_id"))
        return commands

    def _watch(self, on_change: Callable[[ProcedureResource | None], list[Any]]) -> None:
        """Watch the Procedure until it changes in a way that gives commands."""
        stream = self.client.watch_procedures(
            self.namespace, f"metadata.name={self.name}", self._resource_version, _WATCH_SECONDS
        )
        try:
            for event in stream:
                obj = event["object"]
                kind = event["type"]
                if kind == "ERROR":
                    break
                self._resource_version = obj["metadata"]["resourceVersion"]
                if kind == "BOOKMARK":
                    continue
                commands = on_change(None if kind == "DELETED" else obj)
                if commands:
                    self._commands.extend(commands)
                    return
        except ApiError as exc:
            if exc.status == 410:  # too old: read afresh
                resource = self.read()
                self._resource_version = resource["metadata"]["resourceVersion"]
                self._commands.extend(on_change(resource))
                return
            if exc.status == 404:
                self._commands.append(None)
                return
            log(f"watching {self.name} failed ({exc.status} {exc.reason}); watching again")
            time.sleep(1)
        except Exception as exc:  # connection dropped: watch again
            log(f"watching {self.name} failed ({type(exc).__name__}: {exc}); watching again")
            time.sleep(1)
        finally:
            stream.close()

    # -- Channel: reports -----------------------------------------------------------
    def send(self, message: dict[str, Any]) -> None:
        """A state report becomes a status patch; a script event becomes an Event."""
        kind = message.get("type")
        if kind == "event":
            self._publish(message)
        elif kind == "interrupted":
            self.stop_watch.interrupted()
            self.write_status(state=S.STOPPING)
        elif kind == "state":
            self._report(message)

    def _report(self, message: dict[str, Any]) -> None:
        state = S(str(message["state"]))
        change: dict[str, Any] = {"state": state}
        if state == S.FAILED:
            change["stacktrace"] = message.get("stacktrace") or None
            change["message"] = message.get("reason")
            reason = "ScriptFailed" if self._started else "InitFailed"
            change["reason"] = reason if change["stacktrace"] else "RunnerFailed"
        elif state == S.STOPPED:
            abort = message.get("abort")
            if abort:
                change["abort"] = AbortOutcome(sent=bool(abort["sent"]), message=abort["message"])
            if not self.stop_asked:
                change["reason"] = RUNNER_TERMINATED
                change["message"] = (
                    f"runner Pod {self.pod} was told to terminate (deleted, evicted or its node"
                    " shutting down); the script was stopped"
                )
            else:  # the embedded backend's words: how it stopped, then what Abort did
                done = abort["message"] if abort else None
                change["message"] = "; ".join(m for m in (STOPPED_ON_REQUEST, done) if m)
        self.write_status(**change)
        if state in FINAL_STATES:
            self.stop_watch.ended()
        if state == S.CREATED:
            with self._lock:
                self._created = True
                start_pending, self._start_pending = self._start_pending, False
            if start_pending:  # a start that came during init: the script runs now
                self.write_status(state=S.RUNNING)

    def _publish(self, message: dict[str, Any]) -> None:
        with self._lock:
            self._seq += 1
            seq = self._seq
        topic, payload = str(message.get("topic")), message.get("payload") or {}
        procedure: ProcedureResource = {
            "metadata": {"name": self.name, "namespace": self.namespace, "uid": self.uid}
        }
        body, cut = script_event(procedure, topic, payload, float(message["time"]), seq, self.pod)
        if cut:
            log(f"event {seq} ({topic}) was cut: its payload is larger than the Event limit")
        for attempt in range(_RETRIES):
            try:
                with _sigterm_held():
                    self.client.create_event(self.namespace, body)
                return
            except ApiError as exc:
                log(f"event {seq} ({topic}) not published ({exc.status} {exc.reason})")
                if exc.status in (400, 403, 422) or attempt == _RETRIES - 1:
                    return
                time.sleep(0.5)
