"""A runner stopped by SIGTERM is named for what its Pod shows: evicted, preempted, node lost.

The runner only knows it was told to terminate (``RunnerTerminated``); the operator reads the
Pod's ``DisruptionTarget`` condition, set before the Pod is deleted, and names the cause.
"""

from typing import Any

import pytest

from oet.domain import ProcedureState
from oet.kube.status import RUNNER_TERMINATED
from oet.operator.deaths import RunnerDeath, disrupted, named_disruption, with_disruption
from tests.unit.kube_fixtures import RUNNING_STATE, pod, pod_condition, resource

S = ProcedureState
POD = "procedure-3-runner-x7k2p"


def evicting(reason: str = "EvictionByEvictionAPI", message: str = "") -> dict[str, Any]:
    """A runner Pod the API server has marked for disruption and is deleting."""
    condition = pod_condition("DisruptionTarget", reason=reason, message=message)
    return pod("Running", RUNNING_STATE, [condition], deleting=True)


def stopped_by_sigterm(reason: str = RUNNER_TERMINATED) -> dict[str, Any]:
    stopped = resource(3, S.STOPPED, runner_job="procedure-3-runner", runner_pod=POD)
    stopped["status"]["reason"] = reason
    return stopped


def test_an_evicted_runner_that_stopped_its_script_is_named_evicted() -> None:
    disruption = disrupted(evicting(message="Eviction API: evicting"))

    named = named_disruption(stopped_by_sigterm(), disruption)

    assert named == (
        "Evicted",
        f"runner Pod {POD} was evicted: Eviction API: evicting; the script was stopped",
    )


@pytest.mark.parametrize(
    ("cause", "reason"),
    [("PreemptionByScheduler", "Preempted"), ("DeletionByTaintManager", "NodeLost"),
     ("TerminationByKubelet", "Evicted"), ("SomethingNew", "Evicted")],
)  # fmt: skip
def test_each_disruption_cause_gives_its_reason(cause: str, reason: str) -> None:
    named = named_disruption(stopped_by_sigterm(), disrupted(evicting(cause)))
    assert named is not None
    assert named[0] == reason
    assert named[1].startswith(f"runner Pod {POD} was evicted: {cause}")


def test_a_pod_without_a_disruption_leaves_runner_terminated() -> None:
    assert disrupted(pod("Running", RUNNING_STATE, deleting=True)) is None
    assert named_disruption(stopped_by_sigterm(), None) is None


def test_a_disruption_is_false_when_its_condition_is_false() -> None:
    condition = pod_condition("DisruptionTarget", status="False", reason="EvictionByEvictionAPI")
    assert disrupted(pod("Running", RUNNING_STATE, [condition])) is None


@pytest.mark.parametrize("reason", ["Stopped", "Aborted", "Evicted"])
def test_a_procedure_that_did_not_end_by_sigterm_keeps_its_reason(reason: str) -> None:
    assert named_disruption(stopped_by_sigterm(reason), disrupted(evicting())) is None


@pytest.mark.parametrize("state", [S.RUNNING, S.STOPPING, S.FAILED])
def test_only_a_stopped_procedure_is_renamed(state: ProcedureState) -> None:
    procedure = resource(3, state, runner_job="procedure-3-runner", runner_pod=POD)
    procedure["status"]["reason"] = RUNNER_TERMINATED
    assert named_disruption(procedure, disrupted(evicting())) is None


def test_a_runner_judged_from_its_job_alone_is_named_for_the_disruption_seen_before() -> None:
    seen = disrupted(evicting(message="Eviction API: evicting"))
    failed = RunnerDeath(S.FAILED, "RunnerFailed", "runner Job procedure-3-runner failed: ...")

    named = with_disruption(failed, seen)

    assert named == RunnerDeath(
        S.FAILED, "Evicted", f"runner Pod {POD} was evicted: Eviction API: evicting"
    )
    deleted = RunnerDeath(S.STOPPED, "PodDeleted", "runner Pod x was deleted", True)
    assert with_disruption(deleted, seen) == deleted._replace(
        reason="Evicted", message=named.message
    )


def test_a_death_with_its_own_cause_or_no_disruption_seen_keeps_its_reason() -> None:
    oom = RunnerDeath(S.FAILED, "OOMKilled", "runner Pod x went over its memory limit")
    assert with_disruption(oom, disrupted(evicting())) == oom
    failed = RunnerDeath(S.FAILED, "RunnerFailed", "runner in Pod x exited with code 1")
    assert with_disruption(failed, None) == failed
