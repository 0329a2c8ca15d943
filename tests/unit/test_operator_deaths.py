"""Every way a runner can die ends its procedure in a final state with a reason."""

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from oet.domain import ProcedureState
from oet.operator.deaths import (
    DISRUPTIONS,
    IMAGE_NEVER_STARTS,
    STALLED,
    RunnerDeath,
    abort_owed,
    classify_runner_death,
)
from tests.unit.kube_fixtures import (
    RUNNING_STATE,
    job,
    job_condition,
    pod,
    pod_condition,
    resource,
    terminated,
    waiting,
)

S = ProcedureState
START_TIMEOUT = 300.0
POD = "procedure-3-runner-x7k2p"
UNSCHEDULABLE = (
    "0/1 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }."
    " preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
)
NEVER_PULL = 'Container image "localhost/oet:missing" is not present with pull policy of Never'
POLICY_FAILED = (
    f"Container runner for pod oet/{POD} failed with exit code 137 matching FailJob rule at index 1"
)


def classify(
    procedure: dict[str, Any] | None = None,
    runner_job: dict[str, Any] | None = None,
    runner_pod: dict[str, Any] | None = None,
) -> RunnerDeath | None:
    return classify_runner_death(
        procedure or resource(3, S.RUNNING, runner_job="procedure-3-runner"),
        runner_job,
        runner_pod,
        now=time.time(),
        start_timeout=START_TIMEOUT,
    )


def failed_job(reason: str = "PodFailurePolicy", message: str = POLICY_FAILED) -> dict[str, Any]:
    return job(
        [job_condition("FailureTarget", reason, message), job_condition("Failed", reason, message)],
        failed=1,
    )


def test_an_oom_killed_runner_fails_the_procedure_naming_the_memory_limit() -> None:
    death = classify(
        runner_job=failed_job(), runner_pod=pod("Failed", terminated(137, "OOMKilled"))
    )
    assert death == RunnerDeath(
        S.FAILED,
        "OOMKilled",
        f"runner Pod {POD} went over its memory limit of 64Mi and was killed (exit code 137)",
    )


def test_an_evicted_runner_fails_the_procedure_as_evicted() -> None:
    evicted = pod(
        "Failed",
        terminated(143),
        [
            pod_condition(
                "DisruptionTarget", reason="EvictionByEvictionAPI", message="Eviction API: evicting"
            )
        ],
    )
    death = classify(runner_job=failed_job(), runner_pod=evicted)
    assert death is not None
    assert (death.state, death.reason) == (S.FAILED, "Evicted")
    assert death.message == f"runner Pod {POD} was evicted: Eviction API: evicting"


def test_a_node_pressure_eviction_is_an_eviction_too() -> None:
    evicted = pod("Failed", reason="Evicted", message="The node was low on resource: memory.")
    death = classify(runner_pod=evicted)
    assert death is not None
    assert (death.reason, death.message) == (
        "Evicted",
        f"runner Pod {POD} was evicted: The node was low on resource: memory.",
    )


def test_a_preempted_runner_says_so() -> None:
    preempted = pod(
        "Failed",
        terminated(137),
        [pod_condition("DisruptionTarget", reason="PreemptionByScheduler")],
    )
    death = classify(runner_pod=preempted)
    assert death is not None
    assert death.reason == "Preempted"


def test_a_runner_killed_by_a_signal_names_the_signal() -> None:
    death = classify(runner_job=failed_job(), runner_pod=pod("Failed", terminated(137)))
    assert death == RunnerDeath(
        S.FAILED, "Killed", f"runner in Pod {POD} was killed by SIGKILL (exit code 137)"
    )


def test_a_runner_that_exits_non_zero_shows_the_last_log_line() -> None:
    crashed = pod(
        "Failed",
        terminated(3, message="Traceback (most recent call last):\n  ...\nRuntimeError: no API\n"),
    )
    death = classify(runner_job=failed_job(), runner_pod=crashed)
    assert death == RunnerDeath(
        S.FAILED, "RunnerFailed", f"runner in Pod {POD} exited with code 3: RuntimeError: no API"
    )


def test_a_runner_that_exits_cleanly_without_reporting_fails_the_procedure() -> None:
    death = classify(runner_pod=pod("Succeeded", terminated(0, "Completed")))
    assert death is not None
    assert (death.state, death.reason) == (S.FAILED, "RunnerExited")


def test_a_runner_command_that_cannot_run_is_named() -> None:
    broken = pod("Failed", terminated(128, "StartError", 'exec: "python": not found'))
    death = classify(runner_pod=broken)
    assert death is not None
    assert death.reason == "RunnerCannotStart"
    assert 'exec: "python": not found' in death.message


def test_a_pod_the_kubelet_rejected_names_the_rejection() -> None:
    rejected = pod(
        "Failed",
        reason="OutOfcpu",
        message="Pod was rejected: Node didn't have enough resource: cpu, requested: 4000,"
        " used: 0, capacity: 2",
    )
    death = classify(runner_pod=rejected)
    assert death is not None
    assert (death.state, death.reason) == (S.FAILED, "RunnerRejected")
    assert death.message.startswith(
        f"runner Pod {POD} failed before its container ran (OutOfcpu: Pod was rejected:"
    )


def test_a_pod_stuck_creating_its_container_fails_as_not_started() -> None:
    procedure = resource(3, S.INITIALISING, runner_job="procedure-3-runner")
    stuck = pod("Pending", waiting("ContainerCreating", ""), age=START_TIMEOUT + 1)
    death = classify(procedure, job(active=1), stuck)
    assert death == RunnerDeath(
        S.FAILED,
        "RunnerNotStarted",
        f"runner Pod {POD} did not start within 300 s (ContainerCreating)",
        True,
    )


def test_a_deleted_runner_pod_that_lingered_past_its_grace_is_pod_deleted() -> None:
    deleted = pod("Failed", terminated(137), deleting=True)
    death = classify(runner_pod=deleted)
    assert death is not None
    assert (death.state, death.reason) == (S.FAILED, "PodDeleted")
    assert "did not stop within its grace period" in death.message


def test_a_pod_gone_from_under_a_running_procedure_is_pod_deleted() -> None:
    procedure = resource(3, S.RUNNING, runner_job="procedure-3-runner", runner_pod=POD)
    death = classify(procedure, runner_job=job(active=1), runner_pod=None)
    assert death == RunnerDeath(S.FAILED, "PodDeleted", f"runner Pod {POD} was deleted", True)


def test_a_deleted_runner_job_fails_the_procedure() -> None:
    death = classify(runner_job=None, runner_pod=None)
    assert death == RunnerDeath(
        S.FAILED, "RunnerDeleted", "runner Job procedure-3-runner was deleted"
    )


def test_a_job_that_failed_after_its_pod_was_cleaned_up_reports_the_job_failure() -> None:
    death = classify(runner_job=failed_job(), runner_pod=None)
    assert death is not None
    assert (death.state, death.reason) == (S.FAILED, "RunnerFailed")
    assert POLICY_FAILED in death.message


def test_a_job_past_its_deadline_fails_the_procedure_as_deadline_exceeded() -> None:
    expired = job(
        [
            job_condition(
                "Failed", "DeadlineExceeded", "Job was active longer than specified deadline"
            )
        ],
        deadline=7200,
        failed=1,
    )
    running = pod("Running", RUNNING_STATE, deleting=True)
    death = classify(runner_job=expired, runner_pod=running)
    assert death == RunnerDeath(
        S.FAILED,
        "DeadlineExceeded",
        "runner Job procedure-3-runner exceeded its deadline of 7200 s",
    )


def test_an_image_that_is_not_on_the_node_ends_the_procedure_at_once() -> None:
    stuck = pod("Pending", waiting("ErrImageNeverPull", NEVER_PULL), age=2)
    procedure = resource(3, S.INITIALISING, runner_job="procedure-3-runner")
    death = classify(procedure, runner_job=job(active=1), runner_pod=stuck)
    assert death is not None
    assert (death.state, death.reason, death.delete_runner) == (S.FAILED, "ImageNotPresent", True)
    assert death.message == (
        f"runner Pod {POD} cannot start image localhost/oet:dev (ErrImageNeverPull: {NEVER_PULL})"
    )


def test_an_image_pull_that_may_recover_is_given_the_start_timeout() -> None:
    procedure = resource(3, S.INITIALISING, runner_job="procedure-3-runner")
    backoff = waiting("ImagePullBackOff", 'Back-off pulling image "registry/oet:1"')
    assert classify(procedure, job(active=1), pod("Pending", backoff, age=10)) is None
    death = classify(procedure, job(active=1), pod("Pending", backoff, age=START_TIMEOUT + 1))
    assert death is not None
    assert (death.state, death.reason, death.delete_runner) == (S.FAILED, "ImagePullFailed", True)
    assert "did not start within 300 s (ImagePullBackOff: Back-off pulling image" in death.message


def test_a_missing_config_map_is_given_the_start_timeout_then_fails() -> None:
    procedure = resource(3, S.INITIALISING, runner_job="procedure-3-runner")
    config = waiting("CreateContainerConfigError", 'configmap "observing-scripts" not found')
    assert classify(procedure, job(active=1), pod("Pending", config)) is None
    death = classify(procedure, job(active=1), pod("Pending", config, age=START_TIMEOUT + 1))
    assert death is not None
    assert death.reason == "RunnerCannotStart"


def unschedulable(age: float) -> dict[str, Any]:
    return pod(
        "Pending",
        conditions=[pod_condition("PodScheduled", "False", "Unschedulable", UNSCHEDULABLE)],
        age=age,
    )


def test_a_runner_never_scheduled_fails_after_the_start_timeout() -> None:
    procedure = resource(3, S.INITIALISING, runner_job="procedure-3-runner")
    assert classify(procedure, job(active=1), unschedulable(age=60)) is None
    death = classify(procedure, job(active=1), unschedulable(age=START_TIMEOUT + 1))
    assert death is not None
    assert (death.state, death.reason) == (S.FAILED, "Unschedulable")
    assert UNSCHEDULABLE in death.message


def test_a_runner_never_scheduled_and_then_stopped_ends_stopped() -> None:
    procedure = resource(3, S.INITIALISING, desired="STOPPED", runner_job="procedure-3-runner")
    death = classify(procedure, job(active=1), unschedulable(age=5))
    assert death is not None
    assert (death.state, death.reason, death.delete_runner) == (
        S.STOPPED,
        "StoppedBeforeStart",
        True,
    )
    assert death.message.startswith(f"stopped before runner Pod {POD} started (Unschedulable: ")


def test_a_stop_before_the_job_made_any_pod_ends_stopped() -> None:
    procedure = resource(3, S.INITIALISING, desired="STOPPED", runner_job="procedure-3-runner")
    death = classify(procedure, job(), None)
    assert death == RunnerDeath(
        S.STOPPED, "StoppedBeforeStart", "stopped before Job procedure-3-runner made a Pod", True
    )


def test_a_job_that_never_makes_a_pod_fails_after_the_start_timeout() -> None:
    procedure = resource(3, S.INITIALISING, runner_job="procedure-3-runner")
    assert classify(procedure, job(age=10), None) is None
    death = classify(procedure, job(age=START_TIMEOUT + 1), None)
    assert death is not None
    assert (death.state, death.reason) == (S.FAILED, "RunnerNotStarted")
    assert "kubectl describe job procedure-3-runner" in death.message


def test_a_runner_that_dies_while_stopping_ends_stopped_with_the_cause() -> None:
    procedure = resource(3, S.STOPPING, desired="STOPPED", runner_job="procedure-3-runner")
    death = classify(procedure, failed_job(), pod("Failed", terminated(137, "OOMKilled")))
    assert death is not None
    assert (death.state, death.reason) == (S.STOPPED, "OOMKilled")


# The objects are made when the test runs, not when it is collected: their ages count
# from their creation, and a long suite runs this minutes after collecting it.
@pytest.mark.parametrize(
    "made",
    [
        lambda: (job(active=1), pod("Running", RUNNING_STATE)),
        lambda: (job(active=1), pod("Pending", waiting("ContainerCreating", ""), age=1)),
        lambda: (job(active=1), pod("Running", RUNNING_STATE, deleting=True)),
        lambda: (job(active=1), None),
    ],
    ids=["running", "starting", "being-deleted", "pod-not-made-yet"],
)
def test_a_live_or_starting_runner_is_left_to_report_for_itself(
    made: Callable[[], tuple[dict[str, Any], dict[str, Any] | None]],
) -> None:
    runner_job, runner_pod = made()
    procedure = resource(3, S.RUNNING, runner_job="procedure-3-runner")
    assert classify(procedure, runner_job, runner_pod) is None


def test_a_procedure_without_a_runner_yet_is_not_dead() -> None:
    assert classify(resource(3, None), None, None) is None


@pytest.mark.parametrize("state", [S.COMPLETED, S.FAILED, S.STOPPED])
def test_a_procedure_that_already_ended_keeps_its_ending(state: ProcedureState) -> None:
    procedure = resource(3, state, runner_job="procedure-3-runner")
    assert classify(procedure, failed_job(), pod("Failed", terminated(137, "OOMKilled"))) is None


def test_an_abort_is_owed_when_a_stop_with_abort_ended_without_an_outcome() -> None:
    stopped = resource(3, S.STOPPED, desired="STOPPED", abort=True)
    assert abort_owed(stopped)
    stopped["status"]["abort"] = {"sent": True, "message": "Abort sent to x"}
    assert not abort_owed(stopped)
    assert not abort_owed(resource(3, S.STOPPED, desired="STOPPED", abort=False))
    assert not abort_owed(resource(3, S.STOPPING, desired="STOPPED", abort=True))


DOCS = Path(__file__).resolve().parents[2] / "docs" / "kubernetes.md"
REASONS = sorted(
    {
        *DISRUPTIONS.values(),
        *IMAGE_NEVER_STARTS.values(),
        *STALLED.values(),
        *("OOMKilled", "Killed", "RunnerFailed", "RunnerExited", "RunnerCannotStart"),
        *("RunnerRejected", "PodDeleted", "RunnerDeleted", "DeadlineExceeded"),
        *("StoppedBeforeStart", "Completed", "Stopped", "Aborted", "AbortFailed"),
        *("ScriptFailed", "InitFailed"),
    }
)


@pytest.mark.parametrize("reason", REASONS)
def test_every_reason_is_explained_in_the_docs(reason: str) -> None:
    assert f"`{reason}`" in DOCS.read_text()
