"""The OET operator and runner on the real test cluster: every way a procedure can end.

The operator runs as a real process with its own ServiceAccount (k8s/rbac/operator.yaml);
runner Jobs run in real Pods of the OET image with the runner's ServiceAccount. Each test
asserts the Procedure's final state and the reason a user would read in `kubectl get
procedures -o wide`.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from oet.kube.events import MAX_EVENT_MESSAGE, read_script_event
from tests.k8s.oet_operator import (
    FINAL,
    Operator,
    create_procedure,
    install,
    jobs_of,
    procedure,
    runner_overrides,
    runner_pids,
    runner_pod,
    script_events,
    set_desired,
    wait,
    wait_state,
)
from tests.k8s.workloads import Namespace
from tests.prometheus import Samples


class OET:
    """The namespace with OET installed and its operator running."""

    def __init__(self, namespace: Namespace, **settings: str) -> None:
        self.namespace = namespace
        self.settings = settings
        self.operator = Operator(namespace, **settings).start()

    def restart(self, sig: int = signal.SIGTERM, **settings: str) -> None:
        """Stop the operator (SIGKILL: crash) and start a new one (other settings if given)."""
        self.operator.stop(sig)
        self.operator = Operator(self.namespace, **{**self.settings, **settings}).start()


@pytest.fixture(scope="module")
def oet(namespace: Namespace) -> Iterator[OET]:
    """OET installed in the module's namespace, with a running operator."""
    install(namespace)
    running = OET(namespace)
    yield running
    running.operator.stop()


def status(resource: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = resource.get("status", {})
    return found


def in_order(times: dict[str, str], *states: str) -> bool:
    """Whether the procedure entered `states` in this order (RFC 3339 times, read as times)."""
    seen = [datetime.datetime.fromisoformat(times[s]) for s in states]
    return seen == sorted(seen)


def ended(oet: OET, name: str, timeout: float = 150) -> dict[str, Any]:
    """Wait for a final state; fail with the operator's log if it never comes."""
    try:
        return wait_state(oet.namespace, name, FINAL, timeout)
    except AssertionError as error:
        raise AssertionError(f"{error}\noperator log:\n{oet.operator.tail()}") from None


def running_pid(oet: OET, name: str) -> int:
    """Wait until the runner of `name` runs the script; return its host PID."""
    wait_state(oet.namespace, name, "RUNNING")
    pids = wait(lambda: runner_pids(oet.namespace, name), 60, f"the runner process of {name}")
    return int(pids[0])


def test_procedure_is_loaded_run_and_completed_with_its_script_events(oet: OET) -> None:
    ns = oet.namespace
    name = create_procedure(ns, 1, "announce.py", subarray_id=3)

    created = wait_state(ns, name, "CREATED")
    set_desired(ns, name, "RUNNING", seconds=0.5, big=MAX_EVENT_MESSAGE * 2)
    done = ended(oet, name)

    assert status(done)["state"] == "COMPLETED"
    assert status(done)["reason"] == "Completed"
    assert in_order(status(done)["stateTimes"], "initialising", "created", "running", "completed")
    assert status(created)["runner"]["job"] == "procedure-1-runner"
    assert status(done)["runner"]["pod"].startswith("procedure-1-runner-")
    assert [c["status"] for c in status(done)["conditions"] if c["type"] == "Finished"] == ["True"]
    events = sorted(
        (e for e in map(read_script_event, script_events(ns, name)) if e is not None),
        key=lambda e: e.seq,
    )
    assert [(e.topic, e.payload.get("msg")) for e in events] == [
        ("user.script.announce", "initialised"),
        ("user.script.announce", "running"),
        ("user.script.big", None),
        ("user.script.announce", "done"),
    ]
    assert events[0].payload["subarray"] == 3
    big = events[2]
    assert big.truncated == {"bytes": len(json.dumps({"data": "x" * MAX_EVENT_MESSAGE * 2},
                                                     separators=(",", ":"))),
                             "limit": MAX_EVENT_MESSAGE}  # fmt: skip
    assert big.payload["head"].startswith('{"data":"xxx')
    assert "was cut" in ns.logs(f"job/{name}-runner")
    assert jobs_of(ns, name) == ["procedure-1-runner"]


def test_kubectl_shows_procedures_their_reason_and_script_events(oet: OET) -> None:
    ns = oet.namespace
    name = create_procedure(ns, 2, "announce.py", subarray_id=2)
    wait_state(ns, name, "CREATED")
    set_desired(ns, name, "RUNNING")
    ended(oet, name)

    table = ns.kubectl("get", "procedures").stdout
    wide = ns.kubectl("get", "proc", "-o", "wide").stdout
    described = ns.kubectl("describe", "procedure", name).stdout

    assert table.split("\n")[0].split() == ["NAME", "ID", "SCRIPT", "STATE", "SUBARRAY", "AGE"]
    row = next(line for line in table.splitlines() if line.startswith(f"{name} "))
    assert row.split()[1:5] == ["2", "file:///test-scripts/announce.py", "COMPLETED", "2"]
    wide_row = next(line for line in wide.splitlines() if line.startswith(f"{name} "))
    assert f"{name}-runner-" in wide_row
    assert wide_row.split()[-1] == "Completed"
    assert "user.script.announce" in described
    assert '"msg":"done"' in described


def test_failing_script_ends_failed_with_its_stack_trace(oet: OET) -> None:
    ns = oet.namespace
    name = create_procedure(ns, 3, "announce.py")
    wait_state(ns, name, "CREATED")
    set_desired(ns, name, "RUNNING", fail=True)

    done = ended(oet, name)

    assert status(done)["state"] == "FAILED"
    assert status(done)["reason"] == "ScriptFailed"
    assert "ValueError: the script failed on purpose" in status(done)["stacktrace"]
    assert "announce.py" in status(done)["stacktrace"]
    assert status(done)["message"] == "ValueError: the script failed on purpose"


def test_stop_interrupts_a_running_script(oet: OET) -> None:
    ns = oet.namespace
    name = create_procedure(ns, 4, "announce.py")
    wait_state(ns, name, "CREATED")
    set_desired(ns, name, "RUNNING", seconds=600)
    wait_state(ns, name, "RUNNING")

    set_desired(ns, name, "STOPPED")
    done = ended(oet, name, timeout=60)

    assert status(done)["state"] == "STOPPED"
    assert status(done)["reason"] == "Stopped"
    assert "stopping" in status(done)["stateTimes"]
    assert "abort" not in status(done)


def test_deleted_runner_pod_stops_its_script_and_says_why(oet: OET) -> None:
    ns = oet.namespace
    name = create_procedure(ns, 5, "announce.py")
    wait_state(ns, name, "CREATED")
    set_desired(ns, name, "RUNNING", seconds=600)
    wait_state(ns, name, "RUNNING")
    pod = runner_pod(ns, name)
    assert pod is not None

    ns.kubectl("delete", "pod", pod["metadata"]["name"], "--wait=false")
    done = ended(oet, name, timeout=90)

    assert status(done)["state"] == "STOPPED"
    assert status(done)["reason"] == "RunnerTerminated"
    assert pod["metadata"]["name"] in status(done)["message"]


def counted(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when the operator has not counted it yet."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_killed_runner_ends_its_procedure_failed_killed(oet: OET) -> None:
    ns = oet.namespace
    before = oet.operator.metrics()
    name = create_procedure(ns, 6, "announce.py")
    wait_state(ns, name, "CREATED")
    set_desired(ns, name, "RUNNING", seconds=600)
    pid = running_pid(oet, name)

    os.kill(pid, signal.SIGKILL)
    done = ended(oet, name, timeout=90)

    assert status(done)["state"] == "FAILED"
    assert status(done)["reason"] == "Killed"
    assert "SIGKILL" in status(done)["message"]
    after = oet.operator.metrics()  # the operator's /metrics saw the Job and the death
    jobs = "oet_operator_runner_jobs_created_total"
    assert counted(after, jobs) == counted(before, jobs) + 1
    deaths = "oet_operator_runner_deaths_total"
    assert counted(after, deaths, reason="Killed") == counted(before, deaths, reason="Killed") + 1
    gauge = "oet_operator_procedures"
    wait(lambda: counted(oet.operator.metrics(), gauge, state="FAILED") >= 1, 30,
         "the FAILED procedure in the operator's by-state gauge")  # fmt: skip


def test_runner_over_its_memory_limit_ends_failed_oomkilled(oet: OET) -> None:
    ns = oet.namespace
    before = oet.operator.metrics()
    name = create_procedure(ns, 7, "hog.py")
    wait_state(ns, name, "CREATED")
    set_desired(ns, name, "RUNNING")

    done = ended(oet, name, timeout=120)

    assert status(done)["state"] == "FAILED"
    assert status(done)["reason"] == "OOMKilled"
    assert "256Mi" in status(done)["message"]
    deaths = "oet_operator_runner_deaths_total"
    oom = counted(oet.operator.metrics(), deaths, reason="OOMKilled")
    assert oom == counted(before, deaths, reason="OOMKilled") + 1


def test_runner_pod_is_locked_down_as_the_restricted_profile_asks(oet: OET) -> None:
    ns = oet.namespace
    name = create_procedure(ns, 8, "inside.py")
    wait_state(ns, name, "CREATED")
    set_desired(ns, name, "RUNNING")
    done = ended(oet, name)
    assert status(done)["state"] == "COMPLETED", status(done)

    inside = next(e for e in map(read_script_event, script_events(ns, name))
                  if e is not None and e.topic == "user.script.inside")  # fmt: skip

    assert inside.payload["uid"] == 1000
    assert inside.payload["gid"] == 1000
    assert inside.payload["root"] == "Read-only file system"
    assert inside.payload["tmp"] is True
    assert int(inside.payload["cap_eff"], 16) == 0
    assert inside.payload["no_new_privs"] == "1"
    assert inside.payload["seccomp"] == "2"


def test_operator_killed_mid_run_picks_up_and_makes_no_second_runner(oet: OET) -> None:
    ns = oet.namespace
    name = create_procedure(ns, 9, "announce.py")
    wait_state(ns, name, "CREATED")
    oet.operator.stop(signal.SIGKILL)
    set_desired(ns, name, "RUNNING", seconds=3)
    wait_state(ns, name, "RUNNING")

    oet.restart()
    done = ended(oet, name)

    assert status(done)["state"] == "COMPLETED"
    assert status(done)["reason"] == "Completed"
    assert jobs_of(ns, name) == ["procedure-9-runner"]


def test_runner_that_died_while_the_operator_was_down_is_reported_on_restart(oet: OET) -> None:
    ns = oet.namespace
    name = create_procedure(ns, 10, "announce.py")
    wait_state(ns, name, "CREATED")
    set_desired(ns, name, "RUNNING", seconds=600)
    pid = running_pid(oet, name)
    oet.operator.stop(signal.SIGKILL)

    os.kill(pid, signal.SIGKILL)
    wait(lambda: (runner_pod(ns, name) or {}).get("status", {}).get("phase") == "Failed", 60,
         "the runner Pod to fail")  # fmt: skip
    assert status(procedure(ns, name))["state"] == "RUNNING"
    oet.restart()
    done = ended(oet, name)

    assert status(done)["state"] == "FAILED"
    assert status(done)["reason"] == "Killed"


def test_stop_before_the_runner_started_ends_stopped_without_running_the_script(
    oet: OET,
) -> None:
    ns = oet.namespace
    oet.operator.stop()
    name = create_procedure(ns, 11, "announce.py")
    set_desired(ns, name, "STOPPED")

    oet.restart()
    done = ended(oet, name, timeout=60)

    assert status(done)["state"] == "STOPPED"
    assert status(done)["reason"] == "StoppedBeforeStart"
    assert "running" not in status(done)["stateTimes"]
    assert jobs_of(ns, name) == []
    assert [e for e in script_events(ns, name)] == []


def test_image_that_cannot_start_ends_failed_and_its_job_is_removed(oet: OET) -> None:
    ns = oet.namespace
    oet.restart(OET_RUNNER_IMAGE="localhost/oet-not-on-this-node:none")
    try:
        name = create_procedure(ns, 12, "announce.py")
        done = ended(oet, name, timeout=120)
    finally:
        oet.restart(OET_RUNNER_IMAGE=oet.namespace.cluster.image)

    assert status(done)["state"] == "FAILED"
    assert status(done)["reason"] == "ImageNotPresent"
    assert "oet-not-on-this-node" in status(done)["message"]
    wait(lambda: jobs_of(ns, name) == [], 60, "the runner Job to be deleted")


def test_stop_while_the_runner_pod_waits_to_start_ends_stopped_and_removes_the_job(
    oet: OET,
) -> None:
    ns = oet.namespace
    nowhere = runner_overrides(ns)
    nowhere["spec"]["nodeSelector"] = {"oet.skao.int/no-such-node": "true"}
    oet.restart(OET_RUNNER_POD_OVERRIDES=json.dumps(nowhere))
    try:
        name = create_procedure(ns, 13, "announce.py")
        wait(lambda: (runner_pod(ns, name) or {}).get("status", {}).get("phase") == "Pending",
             60, "a Pending runner Pod")  # fmt: skip
        set_desired(ns, name, "STOPPED")
        done = ended(oet, name, timeout=60)
    finally:
        oet.restart(OET_RUNNER_POD_OVERRIDES=json.dumps(runner_overrides(ns)))

    assert status(done)["state"] == "STOPPED"
    assert status(done)["reason"] == "StoppedBeforeStart"
    assert "running" not in status(done)["stateTimes"]
    wait(lambda: jobs_of(ns, name) == [], 60, "the runner Job to be deleted")


def test_start_asked_before_init_returned_runs_the_script_after_init(oet: OET) -> None:
    ns = oet.namespace
    name = create_procedure(ns, 14, "announce.py")
    set_desired(ns, name, "RUNNING", seconds=0.2)

    done = ended(oet, name)

    assert status(done)["state"] == "COMPLETED"
    assert status(done)["reason"] == "Completed"
    assert in_order(status(done)["stateTimes"], "initialising", "created", "running", "completed")
