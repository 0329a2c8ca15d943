"""How a procedure ends when its runner cannot say so itself.

A runner reports its own final state. When it cannot (its Pod was deleted,
evicted, OOM-killed, never started), the operator reads the runner's Job and
Pod and :func:`classify_runner_death` says which final state the procedure
takes and why. It is pure: the operator feeds it what it watched, and the
same inputs always give the same answer, so a restarted operator decides the
same way. The fixtures in ``tests/unit/kube_fixtures.py`` are shaped like
what a real kubelet and Job controller write.

A stop that was asked for turns every ending into STOPPED (the procedure did
stop, only not by itself); otherwise a dead runner means FAILED.
"""

import signal
from typing import Any, NamedTuple

from oet.domain import ProcedureState
from oet.kube import DesiredState, ProcedureResource, read_spec, read_status
from oet.kube.status import RUNNER_TERMINATED
from oet.operator.runner_objects import (
    KubeObject,
    age,
    memory_limit,
    runner_image,
    runner_state,
    true_condition,
    waiting_reason,
)

S = ProcedureState


class RunnerDeath(NamedTuple):
    """The final state a procedure takes, its CamelCase reason and the sentence for people.

    ``delete_runner`` says the runner Job may still start a container and must
    be deleted so that no script code runs after the procedure ended.
    """

    state: ProcedureState
    reason: str
    message: str
    delete_runner: bool = False


IMAGE_NEVER_STARTS = {
    "ErrImageNeverPull": "ImageNotPresent",
    "InvalidImageName": "InvalidImageName",
}
"""Waiting reasons that no retry can cure: the procedure ends at once."""

IMAGE_MAY_START = {
    "ErrImagePull": "ImagePullFailed",
    "ImagePullBackOff": "ImagePullFailed",
    "CreateContainerConfigError": "RunnerCannotStart",
    "CreateContainerError": "RunnerCannotStart",
    "RunContainerError": "RunnerCannotStart",
}
"""Waiting reasons the kubelet keeps retrying: the procedure ends after the start timeout."""

STALLED = {**IMAGE_MAY_START, "Unschedulable": "Unschedulable"}
"""Why a runner Pod never started, and the reason its procedure shows after the timeout."""

DISRUPTIONS = {
    "EvictionByEvictionAPI": "Evicted",
    "TerminationByKubelet": "Evicted",
    "PreemptionByScheduler": "Preempted",
    "DeletionByTaintManager": "NodeLost",
    "DeletionByPodGC": "NodeLost",
}
"""``DisruptionTarget`` condition reasons and the reason the procedure shows."""


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(code - 128).name
    except ValueError:
        return f"signal {code - 128}"


def _last_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1][:500] if lines else ""


def _terminated(pod: KubeObject, name: str, ended: dict[str, Any]) -> tuple[str, str]:
    code = int(ended.get("exitCode", 0))
    why = ended.get("reason") or ""
    deleted = "deletionTimestamp" in pod.get("metadata", {})
    if why == "OOMKilled":
        limit = memory_limit(pod)
        what = f"went over its memory limit of {limit}" if limit else "ran out of memory"
        return "OOMKilled", f"runner Pod {name} {what} and was killed (exit code {code})"
    if why in ("ContainerCannotRun", "StartError"):
        return "RunnerCannotStart", (
            f"runner container in Pod {name} could not start: {ended.get('message') or why}"
        )
    if deleted:
        if code == 0:
            return "PodDeleted", f"runner Pod {name} was deleted; it exited before reporting"
        return "PodDeleted", (
            f"runner Pod {name} was deleted and did not stop within its grace period"
            f" (exit code {code})"
        )
    if code == 0:
        return "RunnerExited", f"runner in Pod {name} exited without reporting how the script ended"
    if code > 128 or ended.get("signal"):
        sig = _signal_name(code) if code > 128 else f"signal {ended['signal']}"
        return "Killed", f"runner in Pod {name} was killed by {sig} (exit code {code})"
    detail = _last_line(ended.get("message"))
    return "RunnerFailed", f"runner in Pod {name} exited with code {code}" + (
        f": {detail}" if detail else ""
    )


def disrupted(pod: KubeObject) -> tuple[str, str] | None:
    """(reason, message) when ``pod`` is marked for a disruption (evicted, preempted, node lost).

    The API server (Eviction API, scheduler) or the kubelet sets the Pod's
    ``DisruptionTarget`` condition before it deletes the Pod, so it is there
    while the runner is still stopping its script.
    """
    disruption = true_condition(pod, "DisruptionTarget")
    if disruption is None:
        return None
    name = pod.get("metadata", {}).get("name", "?")
    cause = disruption.get("reason", "")
    detail = disruption.get("message") or cause
    return DISRUPTIONS.get(cause, "Evicted"), f"runner Pod {name} was evicted: {detail}"


def named_disruption(
    procedure: ProcedureResource, disruption: tuple[str, str] | None
) -> tuple[str, str] | None:
    """The reason and message that replace ``RunnerTerminated`` once the disruption is known.

    A runner told to terminate stops its script and reports STOPPED with
    ``RunnerTerminated``: it cannot see why. ``disruption`` is what its Pod
    showed (:func:`disrupted`); None: nothing to change.
    """
    status = read_status(procedure)
    if disruption is None or status.state != S.STOPPED or status.reason != RUNNER_TERMINATED:
        return None
    reason, message = disruption
    return reason, f"{message}; the script was stopped"


def with_disruption(death: RunnerDeath, disruption: tuple[str, str] | None) -> RunnerDeath:
    """``death`` named for the disruption its Pod showed earlier, if the Pod is gone now.

    Judged from the Job alone, an evicted runner only looks failed (``RunnerFailed``)
    or deleted (``PodDeleted``); ``disruption`` is what the operator saw on the Pod
    before it went (:func:`disrupted`).
    """
    if disruption is None or death.reason not in ("RunnerFailed", "PodDeleted"):
        return death
    return death._replace(reason=disruption[0], message=disruption[1])


def _pod_ended(pod: KubeObject) -> tuple[str, str] | None:
    """(reason, message) if the runner Pod has ended, else None."""
    name = pod.get("metadata", {}).get("name", "?")
    status = pod.get("status", {})
    phase = status.get("phase")
    ended = runner_state(pod).get("terminated")
    if phase not in ("Failed", "Succeeded") and ended is None:
        return None
    disruption = disrupted(pod)
    if disruption is not None:
        return disruption
    if status.get("reason") == "Evicted":
        return "Evicted", f"runner Pod {name} was evicted: {status.get('message', '')}".rstrip()
    if status.get("reason") == "DeadlineExceeded":
        return "DeadlineExceeded", f"runner Pod {name} exceeded its active deadline"
    if ended is not None:
        return _terminated(pod, name, ended)
    why = ": ".join(p for p in (status.get("reason"), status.get("message")) if p)
    return "RunnerRejected", f"runner Pod {name} failed before its container ran" + (
        f" ({why})" if why else ""
    )


def _pod_not_starting(
    pod: KubeObject, now: float, start_timeout: float, stopping: bool
) -> RunnerDeath | None:
    name = pod.get("metadata", {}).get("name", "?")
    waiting = waiting_reason(pod)
    why = f" ({': '.join(p for p in waiting if p)})" if waiting else ""
    if stopping:
        return RunnerDeath(
            S.STOPPED, "StoppedBeforeStart", f"stopped before runner Pod {name} started{why}", True
        )
    if waiting and waiting[0] in IMAGE_NEVER_STARTS:
        return RunnerDeath(
            S.FAILED,
            IMAGE_NEVER_STARTS[waiting[0]],
            f"runner Pod {name} cannot start image {runner_image(pod)}{why}",
            True,
        )
    if age(pod, now) <= start_timeout:
        return None
    late = f"runner Pod {name} did not start within {start_timeout:g} s"
    if waiting is None:
        return RunnerDeath(S.FAILED, "RunnerNotStarted", late, True)
    reason = STALLED.get(waiting[0], "RunnerNotStarted")
    return RunnerDeath(S.FAILED, reason, late + why, True)


def _job_ended(job: KubeObject) -> tuple[str, str] | None:
    name = job.get("metadata", {}).get("name", "?")
    failed = true_condition(job, "Failed") or true_condition(job, "FailureTarget")
    if failed is not None:
        if failed.get("reason") == "DeadlineExceeded":
            deadline = job.get("spec", {}).get("activeDeadlineSeconds")
            return "DeadlineExceeded", f"runner Job {name} exceeded its deadline of {deadline} s"
        detail = failed.get("message") or failed.get("reason") or "no detail"
        return "RunnerFailed", f"runner Job {name} failed: {detail}"
    if true_condition(job, "Complete") or true_condition(job, "SuccessCriteriaMet"):
        return "RunnerExited", f"runner Job {name} ended without reporting how the script ended"
    return None


def classify_runner_death(
    procedure: ProcedureResource,
    job: KubeObject | None,
    pod: KubeObject | None,
    now: float,
    start_timeout: float,
) -> RunnerDeath | None:
    """How ``procedure`` ends, judging by its runner ``job`` and ``pod``; None: not ended.

    ``job``/``pod`` are None when they do not exist (not yet, or any more).
    None is also the answer while the runner is alive, or still starting
    within ``start_timeout`` seconds: the runner then reports for itself.
    """
    status = read_status(procedure)
    if status.state in (S.STOPPED, S.COMPLETED, S.FAILED):
        return None
    stopping = (
        status.state == S.STOPPING or read_spec(procedure).desired_state == DesiredState.STOPPED
    )
    ending = S.STOPPED if stopping else S.FAILED
    runner_job = status.runner.job if status.runner else None

    if job is not None:
        ended = _job_ended(job)
        if ended is not None and ended[0] == "DeadlineExceeded":
            return RunnerDeath(ending, *ended)
    if pod is not None:
        pod_ended = _pod_ended(pod)
        if pod_ended is not None:
            return RunnerDeath(ending, *pod_ended)
        if pod.get("status", {}).get("phase", "Pending") == "Pending":
            return _pod_not_starting(pod, now, start_timeout, stopping)
        return None  # running, or deleted and stopping: the runner reports
    if job is None:
        if runner_job:
            return RunnerDeath(ending, "RunnerDeleted", f"runner Job {runner_job} was deleted")
        return None  # no runner yet: the operator makes one
    ended = _job_ended(job)
    if ended is not None:
        return RunnerDeath(ending, *ended)
    counts = job.get("status", {})
    name = job.get("metadata", {}).get("name", "?")
    seen_pod = status.runner.pod if status.runner else None
    if seen_pod or counts.get("failed") or counts.get("succeeded"):
        which = seen_pod or f"of Job {name}"
        return RunnerDeath(ending, "PodDeleted", f"runner Pod {which} was deleted", True)
    if stopping:
        return RunnerDeath(
            S.STOPPED, "StoppedBeforeStart", f"stopped before Job {name} made a Pod", True
        )
    if age(job, now) > start_timeout:
        return RunnerDeath(
            S.FAILED,
            "RunnerNotStarted",
            f"runner Job {name} made no Pod within {start_timeout:g} s"
            f" (kubectl describe job {name} says why)",
            True,
        )
    return None


def abort_owed(procedure: ProcedureResource) -> bool:
    """True when a stop with abort ended the procedure but no Abort outcome is recorded.

    The operator then sends Abort itself: the runner that should have was gone.
    """
    spec, status = read_spec(procedure), read_status(procedure)
    return spec.abort and status.state == S.STOPPED and status.abort is None
