"""What the operator does for one Procedure, given what it knows of its runner Job and Pod.

Level-triggered: :meth:`Reconciler.reconcile` looks at the Procedure as it is
now and does whatever is missing (a runner Job, a final state for a dead
runner, an Abort owed, the deletion of a Job that must not start), so calling
it again, after any event or after an operator restart, is always safe. The
decisions are the pure builders' (:mod:`oet.operator.builders`,
:mod:`oet.operator.deaths`, :mod:`oet.operator.retention`); this module only
reads and writes the cluster.

A decision that ends a procedure is never made from the operator's caches
alone: the Procedure, Job and Pod are read afresh and the decision made again,
so a cache that lags behind (a Job just created, not yet seen) cannot end a
live procedure.
"""

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from kubernetes.client import ApiClient, BatchV1Api, CoreV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from oet.config import Settings
from oet.domain import FINAL_STATES, ProcedureState, StateConflict
from oet.kube import (
    GROUP,
    PLURAL,
    VERSION,
    DesiredState,
    ProcedureResource,
    read_spec,
    read_status,
    runner_job_name,
)
from oet.kube.names import LABEL_PROCEDURE
from oet.kube.resource import AbortOutcome, RunnerRef
from oet.kube.status import status_patch_for
from oet.operator.builders import build_runner_job
from oet.operator.deaths import (
    RunnerDeath,
    abort_owed,
    classify_runner_death,
    disrupted,
    named_disruption,
    with_disruption,
)
from oet.operator.metrics import OperatorMetrics
from oet.operator.retention import procedures_to_delete
from oet.operator.runner_objects import KubeObject
from oet.tango_abort import send_abort

S = ProcedureState
log = logging.getLogger("oet.operator")


def newest(objects: Iterable[KubeObject]) -> KubeObject | None:
    """The most recently created of ``objects`` (a Job has at most one runner Pod)."""
    found = sorted(objects, key=lambda o: o.get("metadata", {}).get("creationTimestamp", ""))
    return found[-1] if found else None


class Reconciler:
    """Reads and writes Procedures, runner Jobs and Pods in one namespace."""

    def __init__(self, client: ApiClient, namespace: str, settings: Settings) -> None:
        self.namespace = namespace
        self.settings = settings
        self.objects = CustomObjectsApi(client)
        self.batch = BatchV1Api(client)
        self.core = CoreV1Api(client)
        self.metrics = OperatorMetrics()
        self._locks: dict[str, threading.Lock] = {}
        self._disruptions: dict[str, tuple[str, str]] = {}
        """(reason, message) of each runner Pod seen marked for disruption, by Procedure."""
        self._locks_lock = threading.Lock()

    def _lock(self, name: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(name, threading.Lock())

    # -- fresh reads -------------------------------------------------------------------
    def read_procedure(self, name: str) -> ProcedureResource | None:
        """The Procedure now, or None if it is gone."""
        try:
            found: ProcedureResource = self.objects.get_namespaced_custom_object(  # type: ignore[assignment]
                GROUP, VERSION, self.namespace, PLURAL, name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return found

    def read_runner(
        self, procedure: ProcedureResource
    ) -> tuple[KubeObject | None, KubeObject | None]:
        """The runner Job and newest runner Pod of ``procedure`` now (None: absent)."""
        client = self.batch.api_client
        name = procedure["metadata"]["name"]
        job_name = runner_job_name(read_spec(procedure).id)
        try:
            job: KubeObject | None = client.sanitize_for_serialization(
                self.batch.read_namespaced_job(job_name, self.namespace)
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
            job = None
        pods = self.core.list_namespaced_pod(
            self.namespace, label_selector=f"{LABEL_PROCEDURE}={name}"
        )
        pod = newest(client.sanitize_for_serialization(p) for p in pods.items)
        return job, pod

    # -- writes ------------------------------------------------------------------------
    def patch_status(self, procedure: ProcedureResource, **change: Any) -> bool:
        """Patch ``procedure``'s status as last read; False when it changed meanwhile."""
        body = status_patch_for(
            procedure,
            time.time(),
            resource_version=procedure["metadata"]["resourceVersion"],
            **change,
        )
        try:
            self.objects.patch_namespaced_custom_object_status(
                GROUP, VERSION, self.namespace, PLURAL, procedure["metadata"]["name"], body
            )
        except ApiException as exc:
            if exc.status in (404, 409):
                return False
            raise
        return True

    def delete_job(self, name: str) -> None:
        """Delete a runner Job and its Pod (already gone is fine)."""
        try:
            self.batch.delete_namespaced_job(name, self.namespace, propagation_policy="Background")
        except ApiException as exc:
            if exc.status != 404:
                raise

    def create_job(self, procedure: ProcedureResource) -> None:
        """Create the runner Job; AlreadyExists means it was made before, which is fine."""
        try:
            job = build_runner_job(procedure, self.settings)
            self.batch.create_namespaced_job(self.namespace, job)  # type: ignore[arg-type]
            self.metrics.jobs_created.inc()
            log.info("runner Job created for %s", procedure["metadata"]["name"])
        except ApiException as exc:
            if exc.status != 409:
                raise

    # -- the decisions -----------------------------------------------------------------
    def reconcile(
        self, procedure: ProcedureResource, job: KubeObject | None, pod: KubeObject | None
    ) -> None:
        """Do what ``procedure`` lacks, judging first by the cached ``job`` and ``pod``."""
        name = procedure["metadata"]["name"]
        if "deletionTimestamp" in procedure.get("metadata", {}):
            self._disruptions.pop(name, None)  # nothing left to name for a deleted procedure
            return
        with self._lock(name):
            try:
                self._reconcile(procedure, job, pod)
            except StateConflict as exc:
                log.info("%s: %s", name, exc)

    def _reconcile(
        self, procedure: ProcedureResource, job: KubeObject | None, pod: KubeObject | None
    ) -> None:
        status, spec = read_status(procedure), read_spec(procedure)
        name = procedure["metadata"]["name"]
        if pod is not None and (disruption := disrupted(pod)) is not None:
            self._disruptions[name] = disruption  # the Pod may be gone when the runner reports
        if status.state in FINAL_STATES:
            disruption = self._disruptions.pop(name, None)
            named = named_disruption(procedure, disruption)
            if disruption and named and not self._name_disruption(procedure, *named):
                self._disruptions[name] = disruption  # changed meanwhile: again on its next event
            if abort_owed(procedure):
                self._abort(procedure)
            return
        runner_job = status.runner.job if status.runner else None
        if job is None and runner_job is None:
            if spec.desired_state == DesiredState.STOPPED:
                why = "stopped before a runner was made"
                self._end(procedure, RunnerDeath(S.STOPPED, "StoppedBeforeStart", why, True))
                return
            self.create_job(procedure)
            self.patch_status(procedure, runner=RunnerRef(job=runner_job_name(spec.id)))
            return
        if job is not None and runner_job is None:
            self.patch_status(procedure, runner=RunnerRef(job=job["metadata"]["name"]))
            return
        now = time.time()
        start_timeout = self.settings.runner_start_timeout
        if classify_runner_death(procedure, job, pod, now, start_timeout) is None:
            return
        # Confirm from fresh reads: the caches may not have seen a new Job or Pod yet.
        fresh = self.read_procedure(procedure["metadata"]["name"])
        if fresh is None:
            return
        job, pod = self.read_runner(fresh)
        death = classify_runner_death(fresh, job, pod, now, start_timeout)
        if death is not None:
            self._end(fresh, with_disruption(death, self._disruptions.get(name)))

    def _name_disruption(self, procedure: ProcedureResource, reason: str, message: str) -> bool:
        """Say why the runner was told to terminate (its Pod was evicted...); False: not written."""
        if not self.patch_status(procedure, reason=reason, message=message):
            return False
        log.info("%s: %s (%s)", procedure["metadata"]["name"], message, reason)
        self.metrics.runner_deaths.labels(reason).inc()
        return True

    def _end(self, procedure: ProcedureResource, death: RunnerDeath) -> None:
        name = procedure["metadata"]["name"]
        log.info("%s ends %s (%s): %s", name, death.state.value, death.reason, death.message)
        if death.delete_runner:
            self.delete_job(runner_job_name(read_spec(procedure).id))
        if self.patch_status(
            procedure, state=death.state, reason=death.reason, message=death.message
        ):
            self.metrics.runner_deaths.labels(death.reason).inc()
            fresh = self.read_procedure(name)
            if fresh is not None and abort_owed(fresh):
                self._abort(fresh)

    def _abort(self, procedure: ProcedureResource) -> None:
        """Send the Abort a stop asked for, whose runner was gone, and record what it did.

        Decided again on a fresh read: an event that arrived meanwhile may carry an
        older body, and an Abort must reach the subarray once, not once per event.
        """
        fresh = self.read_procedure(procedure["metadata"]["name"])
        if fresh is None or not abort_owed(fresh):
            return
        procedure = fresh
        subarray = read_spec(procedure).init.keyword_args.get("subarray_id")
        sent, message = send_abort(
            subarray, self.settings.abort_fqdn_template, self.settings.abort_timeout
        )
        log.info("%s: %s", procedure["metadata"]["name"], message)
        self.metrics.aborts.labels("sent" if sent else "failed").inc()
        outcome = AbortOutcome(sent=sent, message=f"sent by the operator: {message}")
        # How the runner died stays the reason (Killed, OOMKilled); a plain stop becomes
        # Aborted or AbortFailed, as when the runner sends the Abort itself.
        reason = read_status(procedure).reason
        if reason == "Stopped":
            reason = None
        if not self.patch_status(procedure, abort=outcome, reason=reason):
            log.warning(
                "%s: abort outcome not recorded (the procedure changed)",
                procedure["metadata"]["name"],
            )

    def retain(self, procedures: Iterable[ProcedureResource]) -> None:
        """Delete the oldest finished Procedures beyond ``max_procedures``."""
        for name in procedures_to_delete(procedures, self.settings.max_procedures):
            log.info("retention: deleting %s", name)
            try:
                self.objects.delete_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, PLURAL, name, propagation_policy="Background"
                )
            except ApiException as exc:
                if exc.status != 404:
                    raise
                continue  # already gone: someone else deleted it
            self.metrics.retention_deletions.inc()
