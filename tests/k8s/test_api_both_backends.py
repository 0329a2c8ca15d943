"""The same REST requests, the same answers: the embedded and the Kubernetes backend.

`any_server` is a real `oet-rest` on either backend (the Kubernetes one on the test cluster,
with a `RunnerStandIn` playing the runner, see tests/k8s/api.py). Tests here assert literal
answers, so passing for both parameters means both backends answer alike. This is the ground
for running more of tests/e2e against both once the operator and runner are in the tree.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import SCRIPTS, Server
from tests.k8s.api import prepare_namespace, runner_stand_in, start_kube_server
from tests.k8s.cluster import Cluster
from tests.procedures import create, pid_of, start, stop

BUSY = f"file://{SCRIPTS}/busy_loop.py"
HELLO = f"file://{SCRIPTS}/hello_world.py"
_names = iter(range(1000))


@pytest.fixture(params=["embedded", "kubernetes"])
def any_server(
    request: pytest.FixtureRequest, make_server: Callable[..., Server], tmp_path: Path
) -> Iterator[Server]:
    """A fresh server on the backend the parameter names."""
    if request.param == "embedded":
        yield make_server()
        return
    cluster: Cluster = request.getfixturevalue("cluster")
    name = f"both-{os.getpid()}-{next(_names)}"
    config = prepare_namespace(cluster, name)
    try:
        with runner_stand_in(cluster, name):
            yield start_kube_server(make_server, tmp_path, name, config)
    finally:
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def api(any_server: Server) -> Iterator[httpx.Client]:
    with any_server.client() as client:
        yield client


def test_unknown_procedures_are_404_with_the_documented_body(api: httpx.Client) -> None:
    answers = [
        api.get("/procedures/999"),
        api.put("/procedures/999", json={"state": "RUNNING"}),
        api.put("/procedures/999", json={"state": "STOPPED", "abort": False}),
    ]
    for answer in answers:
        assert answer.status_code == 404
        assert answer.json() == {
            "error": "404 Not Found",
            "type": "ResourceNotFound",
            "Message": "No information available for PID=999",
        }


def test_state_conflicts_are_409_with_the_same_messages(api: httpx.Client) -> None:
    first = pid_of(create(api, BUSY, init={"kwargs": {"subarray_id": 1}}))
    second = pid_of(create(api, BUSY, init={"kwargs": {"subarray_id": 2}}))
    start(api, first)

    while_running = api.put(f"/procedures/{second}", json={"state": "RUNNING"})
    twice = api.put(f"/procedures/{first}", json={"state": "RUNNING"})
    stop(api, first)
    stopped_again = api.put(f"/procedures/{first}", json={"state": "STOPPED", "abort": False})

    assert (while_running.status_code, while_running.json()) == (409, {
        "error": "409 Conflict", "type": "StateConflict",
        "Message": f"Procedure {first} is RUNNING: only one procedure may run at a time,"
                   f" so procedure {second} was not started",
    })  # fmt: skip
    assert (twice.status_code, twice.json()["Message"]) == (
        409, f"Procedure {first} is already RUNNING")  # fmt: skip
    assert (stopped_again.status_code, stopped_again.json()["Message"]) == (
        409, f"Procedure {first} is STOPPED: its script has ended, so there is nothing to"
             " stop and nothing was aborted. Check the ID with 'oet list'")  # fmt: skip


def test_malformed_bodies_are_422_and_change_nothing(api: httpx.Client) -> None:
    before = api.get("/procedures").json()

    answer = api.post("/procedures", json={"script_uri": 5})

    assert answer.status_code == 422
    assert set(answer.json()) == {"error", "type", "Message"}
    assert api.get("/procedures").json() == before


def test_procedure_json_has_the_same_shape(api: httpx.Client, any_server: Server) -> None:
    made = create(api, HELLO, init={"args": ["hello"], "kwargs": {"subarray_id": 1}},
                  run={"args": [], "kwargs": {"duration": 60}})  # fmt: skip

    assert made["uri"] == f"{any_server.procedures}/{pid_of(made)}"
    assert made["script_uri"] == HELLO
    assert made["script_args"] == {
        "init": {"args": ["hello"], "kwargs": {"subarray_id": 1}},
        "run": {"args": [], "kwargs": {"duration": 60}},
    }
    assert made["state"] == "CREATED"
    assert set(made["history"]) == {"process_states", "stacktrace", "reason"}
    assert list(made["history"]["process_states"]) == ["INITIALISING", "CREATED"]
    assert api.get("/procedures").json() == {"procedures": [made]}


def test_discard_forgets_an_idle_procedure_and_refuses_an_executing_one(
    api: httpx.Client,
) -> None:
    idle = create(api, BUSY, init={"kwargs": {"subarray_id": 1}})
    running = pid_of(create(api, BUSY, init={"kwargs": {"subarray_id": 2}}))
    start(api, running)

    discarded = api.delete(f"/procedures/{pid_of(idle)}")
    refused = api.delete(f"/procedures/{running}")
    stopped = api.put(f"/procedures/{running}", json={"state": "STOPPED", "abort": False})

    assert (discarded.status_code, discarded.json()) == (200, {"procedure": idle})
    assert api.get(f"/procedures/{pid_of(idle)}").status_code == 404
    assert refused.status_code == 409
    assert refused.json()["Message"] == (
        f"Procedure {running} is RUNNING: its script is executing;"
        ' stop it first (PUT {"state": "STOPPED"}, oet stop), then discard it'
    )
    assert stopped.status_code == 200
    assert [pid_of(p) for p in api.get("/procedures").json()["procedures"]] == [running]
