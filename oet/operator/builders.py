"""The runner Job the operator makes for a Procedure, as a plain manifest.

Every field is chosen so that an observing script runs at most once, in a
locked-down container, and leaves its logs behind for a while:

* one fixed Job name per procedure, so a restarted operator that tries again
  gets AlreadyExists instead of a second runner;
* ``backoffLimit: 0``, ``restartPolicy: Never`` and a pod failure policy
  whose rules fail the Job on any non-zero exit or disruption: nothing ever
  re-runs a script behind the operator's back;
* an ownerReference to the Procedure: deleting the Procedure deletes its Job
  and Pod;
* the restricted Pod Security profile (non-root, read-only root filesystem,
  no capabilities, no privilege escalation, RuntimeDefault seccomp) with a
  writable ``/tmp``;
* ``ttlSecondsAfterFinished``, resources and the ServiceAccount from settings.

Sites add what their cluster needs (node selectors, tolerations, volumes
holding scripts) through ``runner_pod_overrides``, merged by
:func:`merge_overrides`.
"""

import copy
import math
from typing import Any

from oet.config import Settings
from oet.kube import API_VERSION, KIND, ProcedureResource, read_spec, runner_job_name
from oet.kube.names import runner_labels

RUNNER_CONTAINER = "runner"
RUNNER_COMMAND = ["python", "-m", "oet.runner", "--channel", "kubernetes"]
"""How a runner Pod starts: the runner talks to the API server, not to a pipe."""

RUNNER_UID = 1000
"""The non-root user runner containers run as (the OET image's ``oet`` user)."""

STATUS_REPORT_SECONDS = 10
"""Time a stopped runner gets, after stop and abort, to report its final state."""

Manifest = dict[str, Any]


def owner_reference(procedure: ProcedureResource) -> Manifest:
    """An ownerReference that makes ``procedure`` the controller of a child."""
    metadata = procedure["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": metadata["name"],
        "uid": metadata["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def merge_overrides(base: Any, overrides: Any) -> Any:
    """``overrides`` merged into ``base``; neither is changed.

    Objects merge key by key, and a ``null`` value removes the key. Lists whose
    items all have a ``name`` (containers, volumes, env, volumeMounts) merge
    item by item on it, new names appended. Any other value, lists included
    (tolerations, args), replaces the one in ``base``.
    """
    if isinstance(base, dict) and isinstance(overrides, dict):
        merged = dict(base)
        for key, value in overrides.items():
            if value is None:
                merged.pop(key, None)
            elif key in merged:
                merged[key] = merge_overrides(merged[key], value)
            else:
                merged[key] = copy.deepcopy(value)
        return merged
    if _named_list(base) and _named_list(overrides):
        merged_items = {item["name"]: item for item in base}
        for item in overrides:
            name = item["name"]
            merged_items[name] = merge_overrides(merged_items.get(name, {}), item)
        return list(merged_items.values())
    return copy.deepcopy(overrides)


def _named_list(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(item, dict) and "name" in item for item in value)
    )


def termination_grace(settings: Settings) -> int:
    """Seconds a deleted runner Pod gets: stop the script, send Abort, report."""
    return math.ceil(settings.stop_grace + settings.abort_timeout) + STATUS_REPORT_SECONDS


def _runner_env(procedure: ProcedureResource, settings: Settings) -> list[Manifest]:
    metadata = procedure["metadata"]
    values = {
        "OET_PROCEDURE_NAME": metadata["name"],
        "OET_PROCEDURE_NAMESPACE": metadata["namespace"],
        "OET_ABORT_FQDN_TEMPLATE": settings.abort_fqdn_template,
        "OET_ABORT_TIMEOUT": str(settings.abort_timeout),
        "OET_STOP_GRACE": str(settings.stop_grace),
        "OET_READ_VIA_PUBSUB": str(settings.read_via_pubsub).lower(),
        "HOME": "/tmp",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env: list[Manifest] = [{"name": k, "value": v} for k, v in values.items()]
    env.append({"name": "OET_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
    return env


def build_runner_pod_template(procedure: ProcedureResource, settings: Settings) -> Manifest:
    """The Pod template of a procedure's runner Job, overrides merged in."""
    pid = read_spec(procedure).id
    container: Manifest = {
        "name": RUNNER_CONTAINER,
        "image": settings.runner_image,
        "imagePullPolicy": settings.runner_image_pull_policy,
        "command": list(RUNNER_COMMAND),
        "env": _runner_env(procedure, settings),
        "resources": copy.deepcopy(settings.runner_resources),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    template: Manifest = {
        "metadata": {
            "labels": runner_labels(pid),
            "annotations": {"kubectl.kubernetes.io/default-container": RUNNER_CONTAINER},
        },
        "spec": {
            "restartPolicy": "Never",
            "serviceAccountName": settings.runner_service_account,
            "automountServiceAccountToken": True,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": termination_grace(settings),
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": RUNNER_UID,
                "runAsGroup": RUNNER_UID,
                "fsGroup": RUNNER_UID,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [container],
            "volumes": [{"name": "tmp", "emptyDir": {}}],
        },
    }
    merged: Manifest = merge_overrides(template, settings.runner_pod_overrides)
    return merged


def build_runner_job(procedure: ProcedureResource, settings: Settings) -> Manifest:
    """The runner Job for ``procedure`` (which must carry its name, namespace and uid)."""
    pid = read_spec(procedure).id
    spec: Manifest = {
        "backoffLimit": 0,
        "completions": 1,
        "parallelism": 1,
        "podReplacementPolicy": "Failed",
        "podFailurePolicy": {
            "rules": [
                {"action": "FailJob", "onPodConditions": [{"type": "DisruptionTarget"}]},
                {
                    "action": "FailJob",
                    "onExitCodes": {
                        "containerName": RUNNER_CONTAINER,
                        "operator": "NotIn",
                        "values": [0],
                    },
                },
            ]
        },
        "ttlSecondsAfterFinished": settings.runner_job_ttl,
        "template": build_runner_pod_template(procedure, settings),
    }
    if settings.runner_deadline:
        spec["activeDeadlineSeconds"] = settings.runner_deadline
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": runner_job_name(pid),
            "namespace": procedure["metadata"]["namespace"],
            "labels": runner_labels(pid),
            "ownerReferences": [owner_reference(procedure)],
        },
        "spec": spec,
    }
