"""The Kubernetes calls of the API backend, blocking (run them in a worker thread).

Two objects besides the Procedures make two API replicas behave as one:

* ConfigMap ``oet-procedure-ids`` holds the last procedure ID handed out
  (``data.last``). A replica takes the next one by replacing the ConfigMap
  with the resourceVersion it read (optimistic concurrency: of two replicas
  racing, one gets Conflict and tries again). The counter outlives the
  Procedures, so an ID is never reused, even after retention deleted the
  procedure that had it; it never goes below the highest ID the replica
  knows, so a deleted ConfigMap cannot bring old IDs back while they exist.
* Lease ``oet-running`` names the procedure that was last started
  (``holderIdentity: procedure-<id>``). A start takes the Lease the same
  optimistic way, and only if its holder no longer occupies the telescope:
  the holder is gone, has finished, or its start never took effect
  (``desiredState`` still CREATED :data:`START_GRACE` seconds after it took the
  Lease: the replica that took it died, or its start patch failed and it
  could not give the Lease back). The holder is read from the API server,
  not from the cache, so two replicas starting two procedures at the same
  moment cannot both win.
"""

import datetime
import json
from collections.abc import Callable
from typing import Any, cast

from kubernetes.client import (
    ApiClient,
    CoordinationV1Api,
    CoreV1Api,
    CustomObjectsApi,
    V1ConfigMap,
    V1DeleteOptions,
    V1LeaseSpec,
    V1ObjectMeta,
    V1Preconditions,
)
from kubernetes.client.exceptions import ApiException

from oet.domain import FINAL_STATES, ProcedureNotFound, ProcedureState, StateConflict
from oet.kube import GROUP, PLURAL, VERSION, DesiredState, ProcedureResource, procedure_name
from oet.kube.events import SCRIPT_EVENT
from oet.kube.names import APP, LABEL_APP, LABEL_COMPONENT, LABEL_PROCEDURE, procedure_id
from oet.kube.resource import read_spec, read_status

ID_COUNTER = "oet-procedure-ids"
RUNNING_LEASE = "oet-running"
_RETRIES = 50
START_GRACE = 30.0
"""Seconds a fresh holder whose start patch has not landed yet still holds the Lease."""


class Cluster:
    """Procedures, their script Events, the ID counter and the running Lease in one namespace."""

    def __init__(self, client: ApiClient, namespace: str) -> None:
        self.namespace = namespace
        self.client = client
        self.custom = CustomObjectsApi(client)
        self.core = CoreV1Api(client)
        self.coordination = CoordinationV1Api(client)

    # -- Procedures -------------------------------------------------------------------
    def list_procedures(self, **kwargs: Any) -> Any:
        """The Procedures (a watchable list call)."""
        return self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, **kwargs
        )

    def read_procedure(self, pid: int) -> ProcedureResource | None:
        """The Procedure as the API server has it now; None if there is none."""
        try:
            found: Any = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, procedure_name(pid)
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return cast(ProcedureResource, found)

    def create_procedure(self, body: ProcedureResource) -> ProcedureResource:
        """Create a Procedure (ApiException 409 if its name is taken)."""
        created: Any = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, dict(body)
        )
        return cast(ProcedureResource, created)

    def patch_spec(self, pid: int, patch: list[dict[str, Any]]) -> ProcedureResource:
        """Apply a JSON Patch (``oet.kube.spec_patches``) to a Procedure."""
        patched: Any = self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, procedure_name(pid), patch,
            _content_type="application/json-patch+json",
        )  # fmt: skip
        return cast(ProcedureResource, patched)

    def delete_procedure(self, pid: int, resource_version: str | None = None) -> None:
        """Delete a Procedure (its runner Job goes with it); gone already is fine.

        With ``resource_version``, only if the Procedure is still that version
        (else ApiException 409).
        """
        preconditions = V1Preconditions(resource_version=resource_version)
        try:
            self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, procedure_name(pid),
                body=V1DeleteOptions(propagation_policy="Background",
                                     preconditions=preconditions if resource_version else None),
            )  # fmt: skip
        except ApiException as exc:
            if exc.status != 404:
                raise

    # -- script Events ----------------------------------------------------------------
    def list_events(self, **kwargs: Any) -> Any:
        """The script Events (a watchable list call)."""
        return self.core.list_namespaced_event(
            self.namespace, label_selector=f"{LABEL_COMPONENT}={SCRIPT_EVENT}", **kwargs
        )

    def list_script_events_of(
        self, pid: int, resource_version: int, timeout: float
    ) -> list[dict[str, Any]]:
        """Procedure ``pid``'s script Events, as of ``resource_version`` or later.

        The API server answers from its watch cache once that has caught up with
        ``resource_version``: every Event written before it is in the answer, however far
        behind this replica's own watch is."""
        selector = f"{LABEL_COMPONENT}={SCRIPT_EVENT},{LABEL_PROCEDURE}={procedure_name(pid)}"
        response: Any = self.core.list_namespaced_event(
            self.namespace,
            label_selector=selector,
            resource_version=str(resource_version),
            resource_version_match="NotOlderThan",
            _preload_content=False,
            _request_timeout=timeout,
        )
        items = json.loads(response.data).get("items") or []
        return list(items)

    # -- IDs --------------------------------------------------------------------------
    def next_id(self, floor: int) -> int:
        """A procedure ID never handed out before and above ``floor``."""
        for _ in range(_RETRIES):
            try:
                counter = self.core.read_namespaced_config_map(ID_COUNTER, self.namespace)
            except ApiException as exc:
                if exc.status != 404:
                    raise
                fresh = V1ConfigMap(
                    metadata=V1ObjectMeta(name=ID_COUNTER, labels={LABEL_APP: APP}),
                    data={"last": str(floor + 1)},
                )
                if _conflicts(self.core.create_namespaced_config_map, self.namespace, fresh):
                    continue
                return floor + 1
            data = counter.data or {}
            last = int(data.get("last", "0")) if str(data.get("last", "0")).isdigit() else 0
            new = max(last, floor) + 1
            counter.data = {**data, "last": str(new)}
            replace = self.core.replace_namespaced_config_map
            if _conflicts(replace, ID_COUNTER, self.namespace, counter):
                continue
            return new
        raise StateConflict("Too many procedures are being created at once; try again")

    # -- one procedure running at a time ----------------------------------------------
    def take_running_lease(self, pid: int) -> None:
        """Make procedure ``pid`` the holder, unless another one occupies the telescope."""
        mine = procedure_name(pid)
        for _ in range(_RETRIES):
            try:
                lease = self.coordination.read_namespaced_lease(RUNNING_LEASE, self.namespace)
            except ApiException as exc:
                if exc.status != 404:
                    raise
                body = {
                    "metadata": {"name": RUNNING_LEASE, "labels": {LABEL_APP: APP}},
                    "spec": {"holderIdentity": mine, "acquireTime": _now()},
                }
                create = self.coordination.create_namespaced_lease
                if _conflicts(create, self.namespace, body):
                    continue
                return
            if lease.spec is None:
                lease.spec = V1LeaseSpec()
            holder = lease.spec.holder_identity
            if holder and holder != mine:
                self._refuse_if_busy(holder, lease.spec.acquire_time, pid)
            lease.spec.holder_identity = mine
            lease.spec.acquire_time = datetime.datetime.now(datetime.UTC)
            take = self.coordination.replace_namespaced_lease
            if _conflicts(take, RUNNING_LEASE, self.namespace, lease):
                continue
            return
        raise StateConflict(f"Procedure {pid} was not started: too many starts at once")

    def release_running_lease(self, pid: int) -> None:
        """Give the Lease up after a start that failed, if procedure ``pid`` still holds it."""
        try:
            lease = self.coordination.read_namespaced_lease(RUNNING_LEASE, self.namespace)
            if lease.spec is None or lease.spec.holder_identity != procedure_name(pid):
                return
            lease.spec.holder_identity = None
            lease.spec.acquire_time = None
            self.coordination.replace_namespaced_lease(RUNNING_LEASE, self.namespace, lease)
        except ApiException:
            pass  # another start took it meanwhile, or it is gone: nothing to give up

    def _refuse_if_busy(self, holder: str, acquired: datetime.datetime | None, pid: int) -> None:
        try:
            other = procedure_id(holder)
        except ProcedureNotFound:  # a holder that is not a procedure name holds nothing
            return
        resource = self.read_procedure(other)
        if resource is None:
            return
        state = read_status(resource).state or ProcedureState.INITIALISING
        if state in FINAL_STATES:
            return
        asked = read_spec(resource).desired_state != DesiredState.CREATED
        if not asked and (acquired is None or _age(acquired) > START_GRACE):
            return  # its start never took effect (the replica died or its patch failed)
        shown = ProcedureState.RUNNING if state == ProcedureState.CREATED else state
        raise StateConflict(
            f"Procedure {other} is {shown.value}: only one procedure"
            f" may run at a time, so procedure {pid} was not started"
        )


def _conflicts(call: Callable[..., object], *args: Any) -> bool:
    """Run ``call(*args)``; True if the API server answered Conflict/AlreadyExists (409)."""
    try:
        call(*args)
    except ApiException as exc:
        if exc.status == 409:
            return True
        raise
    return False


def _age(moment: datetime.datetime) -> float:
    """Seconds since ``moment``."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return (datetime.datetime.now(datetime.UTC) - moment).total_seconds()


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
