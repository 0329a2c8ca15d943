"""Procedures, runner Jobs and Pods shaped like what a real API server returns.

The Job and Pod bodies follow what a v1.37 kubelet and Job controller wrote
on the test node (k8s/real-node-notes.md): an OOM-killed runner, an evicted
one, a deleted one, an image that is not on the node, a Pod nobody
schedules, a Job past its deadline. Unit tests of the operator's pure parts
feed them in instead of a cluster.
"""

import copy
import time
from typing import Any

from oet.domain import Procedure, ProcedureInput, ProcedureState
from oet.kube import ProcedureResource, to_custom_resource
from oet.kube.convert import rfc3339

S = ProcedureState
NAMESPACE = "oet"
UID = "5b0c1f7e-8a61-4f3e-9a57-2d1c0f6a9b11"
IMAGE = "localhost/oet:dev"

PATHS = {
    S.INITIALISING: [],
    S.CREATED: [S.CREATED],
    S.RUNNING: [S.CREATED, S.RUNNING],
    S.STOPPING: [S.CREATED, S.RUNNING, S.STOPPING],
    S.STOPPED: [S.CREATED, S.RUNNING, S.STOPPING, S.STOPPED],
    S.COMPLETED: [S.CREATED, S.RUNNING, S.COMPLETED],
    S.FAILED: [S.CREATED, S.RUNNING, S.FAILED],
}


def procedure(pid: int = 3, state: ProcedureState = S.RUNNING, **init: Any) -> Procedure:
    """A procedure that went the usual way to ``state``."""
    made = Procedure(pid, "file:///scripts/observe.py", ProcedureInput((), init))
    for step in PATHS[state]:
        made.move_to(step)
    return made


def resource(
    pid: int = 3,
    state: ProcedureState | None = S.RUNNING,
    desired: str | None = None,
    abort: bool = False,
    runner_job: str | None = None,
    runner_pod: str | None = None,
    generation: int = 1,
) -> ProcedureResource:
    """A Procedure resource as read back from the API server (uid, generation, times).

    ``state=None`` gives one that nothing has written a status for yet.
    """
    made = to_custom_resource(procedure(pid, state or S.INITIALISING, subarray_id=1), NAMESPACE)
    made["metadata"].update(
        uid=UID,
        generation=generation,
        resourceVersion="4711",
        creationTimestamp=rfc3339(time.time() - 5),
    )
    if desired is not None:
        made["spec"]["desiredState"] = desired
    made["spec"]["abort"] = abort
    if state is None:
        del made["status"]
    elif runner_job or runner_pod:
        made["status"]["runner"] = {
            k: v for k, v in (("job", runner_job), ("pod", runner_pod)) if v is not None
        }
    return made


def job(
    conditions: list[dict[str, Any]] | None = None,
    age: float = 5.0,
    deadline: int | None = None,
    **counts: int,
) -> dict[str, Any]:
    """A runner Job; ``conditions`` as the Job controller writes them."""
    body: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "procedure-3-runner",
            "namespace": NAMESPACE,
            "creationTimestamp": rfc3339(time.time() - age),
            "uid": "9d2a7c55-0c7e-4d4b-bb0e-61f7e2a8c0d3",
        },
        "spec": {"backoffLimit": 0, "completions": 1, "parallelism": 1},
        "status": {"startTime": rfc3339(time.time() - age), "ready": 0, "terminating": 0, **counts},
    }
    if deadline is not None:
        body["spec"]["activeDeadlineSeconds"] = deadline
    if conditions:
        body["status"]["conditions"] = conditions
    return body


def job_condition(kind: str, reason: str, message: str) -> dict[str, Any]:
    """One Job condition (Failed, FailureTarget, Complete, SuccessCriteriaMet)."""
    now = rfc3339(time.time())
    return {
        "type": kind,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastProbeTime": now,
        "lastTransitionTime": now,
    }


_POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "procedure-3-runner-x7k2p",
        "namespace": NAMESPACE,
        "labels": {"batch.kubernetes.io/job-name": "procedure-3-runner"},
    },
    "spec": {
        "restartPolicy": "Never",
        "nodeName": "oet-node",
        "containers": [
            {
                "name": "runner",
                "image": IMAGE,
                "imagePullPolicy": "Never",
                "resources": {"limits": {"memory": "64Mi"}, "requests": {"memory": "64Mi"}},
            }
        ],
    },
    "status": {"hostIP": "127.0.0.1", "podIP": "127.0.0.1", "qosClass": "Burstable"},
}


def pod(
    phase: str,
    state: dict[str, Any] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    age: float = 5.0,
    deleting: bool = False,
    **status: Any,
) -> dict[str, Any]:
    """A runner Pod in ``phase`` whose runner container is in ``state``."""
    body = copy.deepcopy(_POD)
    body["metadata"]["creationTimestamp"] = rfc3339(time.time() - age)
    if deleting:
        body["metadata"]["deletionTimestamp"] = rfc3339(time.time())
        body["metadata"]["deletionGracePeriodSeconds"] = 18
    body["status"].update(phase=phase, conditions=conditions or [], **status)
    if state is not None:
        body["status"]["containerStatuses"] = [
            {
                "name": "runner",
                "image": IMAGE,
                "imageID": "",
                "ready": "running" in state,
                "restartCount": 0,
                "started": "running" in state,
                "state": state,
                "lastState": {},
            }
        ]
    return body


def pod_condition(kind: str, status: str = "True", reason: str = "", message: str = "") -> dict:
    """One Pod condition."""
    made = {"type": kind, "status": status, "lastTransitionTime": rfc3339(time.time())}
    if reason:
        made["reason"] = reason
    if message:
        made["message"] = message
    return made


def terminated(code: int, reason: str = "Error", message: str = "") -> dict[str, Any]:
    """A container state ``terminated`` as the kubelet reports it."""
    ended: dict[str, Any] = {
        "exitCode": code,
        "reason": reason,
        "startedAt": rfc3339(time.time() - 3),
        "finishedAt": rfc3339(time.time()),
        "containerID": "containerd://4f9b0c2e",
    }
    if message:
        ended["message"] = message
    return {"terminated": ended}


def waiting(reason: str, message: str) -> dict[str, Any]:
    """A container state ``waiting``."""
    return {"waiting": {"reason": reason, "message": message}}


RUNNING_STATE = {"running": {"startedAt": rfc3339(time.time() - 2)}}
