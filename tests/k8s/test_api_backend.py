"""The REST API with OET_BACKEND=kubernetes on the real test cluster, one replica.

`oet-rest` runs as a process under the API's ServiceAccount (k8s/rbac/api.yaml); a
`StandInProcess` plays the runner's part through the Procedure's status and Events.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server, wait_for
from tests.k8s.api import (
    LONG,
    QUICK,
    StandInProcess,
    api_namespace,
    runner_stand_in,
    start_kube_server,
)
from tests.k8s.cluster import Cluster
from tests.procedures import create, get, pid_of, start, stop
from tests.prometheus import parse_samples
from tests.sse import EventStream


class Space:
    """A fresh namespace set up for the API, with its ServiceAccount kubeconfig."""

    def __init__(self, cluster: Cluster, name: str, kubeconfig: Path) -> None:
        self.cluster, self.name, self.kubeconfig = cluster, name, kubeconfig

    def kubectl_json(self, *args: str) -> Any:
        done = self.cluster.kubectl("-n", self.name, *args, "-o", "json")
        return json.loads(done.stdout)


@pytest.fixture
def space(cluster: Cluster) -> Iterator[Space]:
    with api_namespace(cluster, "api") as (name, kubeconfig):
        yield Space(cluster, name, kubeconfig)


@pytest.fixture
def runner(cluster: Cluster, space: Space) -> Iterator[StandInProcess]:
    with runner_stand_in(cluster, space.name) as stand_in:
        yield stand_in


@pytest.fixture
def kube_server(make_server: Callable[..., Server], tmp_path: Path, space: Space) -> Server:
    return start_kube_server(make_server, tmp_path, space.name, space.kubeconfig)


@pytest.fixture
def api(kube_server: Server) -> Iterator[httpx.Client]:
    with kube_server.client() as client:
        yield client


def test_create_waits_for_init_and_the_procedure_is_a_resource(
    api: httpx.Client, space: Space, runner: StandInProcess
) -> None:
    procedure = create(api, LONG, init={"args": [1], "kwargs": {"subarray_id": 3}})

    assert procedure["state"] == "CREATED"
    pid = pid_of(procedure)
    resource = space.kubectl_json("get", "procedure", f"procedure-{pid}")
    assert resource["spec"]["scriptUri"] == LONG
    assert resource["spec"]["init"] == {"args": [1], "kwargs": {"subarray_id": 3}}
    assert procedure["script_args"]["init"] == {"args": [1], "kwargs": {"subarray_id": 3}}
    assert set(procedure) == {"uri", "script_uri", "script_args", "history", "state"}


def test_list_and_get_show_the_same_procedures_as_the_cluster(
    api: httpx.Client, space: Space, runner: StandInProcess
) -> None:
    first, second = create(api, LONG), create(api, QUICK)

    listed = api.get("/procedures").json()["procedures"]

    assert [p["uri"] for p in listed] == [first["uri"], second["uri"]]
    assert get(api, pid_of(first)) == listed[0]
    names = {i["metadata"]["name"] for i in space.kubectl_json("get", "procedures")["items"]}
    assert names == {f"procedure-{pid_of(first)}", f"procedure-{pid_of(second)}"}


def test_start_and_stop_patch_the_spec_and_follow_the_runner(
    api: httpx.Client, space: Space, runner: StandInProcess
) -> None:
    pid = pid_of(create(api, LONG))

    started = start(api, pid, 5, speed="fast")

    assert started["state"] == "RUNNING"
    assert started["script_args"]["run"] == {"args": [5], "kwargs": {"speed": "fast"}}
    spec = space.kubectl_json("get", "procedure", f"procedure-{pid}")["spec"]
    assert spec["desiredState"] == "RUNNING"
    assert stop(api, pid, abort=True) == (
        f"Successfully stopped script with ID {pid} and aborted subarray activity"
    )
    assert get(api, pid)["state"] == "STOPPED"
    assert space.kubectl_json("get", "procedure", f"procedure-{pid}")["spec"]["abort"] is True


def test_conflicts_and_unknown_ids_answer_like_the_embedded_backend(
    api: httpx.Client, runner: StandInProcess
) -> None:
    running = pid_of(create(api, LONG))
    waiting = pid_of(create(api, LONG))
    start(api, running)

    second = api.put(f"/procedures/{waiting}", json={"state": "RUNNING"})
    missing = api.get("/procedures/999")
    bad = api.put(f"/procedures/{running}", json={"state": "SIDEWAYS"})

    assert second.status_code == 409
    assert second.json()["type"] == "StateConflict"
    assert "only one procedure may run at a time" in second.json()["Message"]
    assert missing.status_code == 404
    assert missing.json()["Message"] == "No information available for PID=999"
    assert bad.status_code == 422  # as with the embedded backend: the body is invalid
    stop(api, running)
    again = api.put(f"/procedures/{running}", json={"state": "STOPPED", "abort": False})
    assert again.status_code == 409
    assert "nothing to stop" in again.json()["Message"]
    assert get(api, waiting)["state"] == "CREATED"


def test_sse_has_lifecycle_and_script_events_in_order_and_replays_them(
    kube_server: Server, api: httpx.Client, runner: StandInProcess
) -> None:
    with EventStream(f"{kube_server.api}/stream") as events:
        pid = pid_of(create(api, QUICK))
        start(api, pid)
        seen = events.until(lambda m: m.topic == "procedure.lifecycle.complete", 30)
    topics = [m.topic for m in seen if not m.topic.startswith("request.")]
    assert topics == [
        "procedure.lifecycle.created",
        "procedure.lifecycle.started",
        "user.script.hello",
        "procedure.lifecycle.complete",
    ]
    script = next(m for m in seen if m.topic == "user.script.hello")
    assert script.body["payload"] == {"n": pid}
    assert script.body["source"] == "script"
    assert script.body["procedure_id"] == pid
    created = next(m for m in seen if m.topic == "procedure.lifecycle.created")
    assert created.body["payload"]["procedure"]["state"] == "CREATED"
    ids = [int(m.id or 0) for m in seen]
    assert ids == sorted(ids)

    with EventStream(f"{kube_server.api}/stream", last_event_id=created.id) as replay:
        again = replay.until(lambda m: m.topic == "procedure.lifecycle.complete", 30)
    later = [m for m in seen if int(m.id or 0) > int(created.id or 0)]
    assert [(m.id, m.topic) for m in again] == [(m.id, m.topic) for m in later]


def test_create_with_a_uri_the_crd_refuses_is_a_bad_request(api: httpx.Client) -> None:
    response = api.post("/procedures", json={"script_uri": "no-scheme.py"})

    assert response.status_code == 400
    assert set(response.json()) == {"error", "type", "Message"}
    assert api.get("/procedures").json() == {"procedures": []}


def test_discard_deletes_the_resource(
    api: httpx.Client, space: Space, runner: StandInProcess
) -> None:
    pid = pid_of(create(api, LONG))

    answer = api.delete(f"/procedures/{pid}")

    assert answer.status_code == 200
    assert api.get(f"/procedures/{pid}").status_code == 404
    gone = space.cluster.kubectl("-n", space.name, "get", "procedure", f"procedure-{pid}",
                                 check=False)  # fmt: skip
    assert gone.returncode != 0
    assert "NotFound" in gone.stderr
    assert pid_of(create(api, LONG)) == pid + 1  # an ID is never handed out twice


def test_stopping_a_created_procedure_is_409_and_changes_nothing(
    api: httpx.Client, space: Space, runner: StandInProcess
) -> None:
    pid = pid_of(create(api, LONG))

    answer = api.put(f"/procedures/{pid}", json={"state": "STOPPED", "abort": True})

    assert answer.status_code == 409
    assert "its script is not running" in answer.json()["Message"]
    spec = space.kubectl_json("get", "procedure", f"procedure-{pid}")["spec"]
    assert (spec["desiredState"], spec["abort"]) == ("CREATED", False)


def test_a_runner_failure_is_counted_under_the_reason_the_cluster_gives(
    api: httpx.Client, kube_server: Server, space: Space, runner: StandInProcess
) -> None:
    pid = pid_of(create(api, LONG))
    # What the operator writes when a runner goes over its memory limit.
    failed = {"status": {"state": "FAILED", "reason": "OOMKilled",
                         "message": "runner Pod x went over its memory limit of 256Mi",
                         "stateTimes": {"failed": "2026-01-01T00:00:00.000000Z"}}}  # fmt: skip
    patch = ("patch", "procedure", f"procedure-{pid}", "--subresource=status", "--type=merge")
    space.cluster.kubectl("-n", space.name, *patch, "-p", json.dumps(failed))
    wait_for(lambda: get(api, pid)["state"] == "FAILED", timeout=30)

    metrics = parse_samples(httpx.get(f"{kube_server.base}/metrics", timeout=10).text)

    assert metrics[("oet_runner_failures_total", (("reason", "OOMKilled"),))] == 1
    assert ("oet_runner_failures_total", (("reason", "RunnerFailed"),)) not in metrics
