"""Two `oet-rest` replicas on the Kubernetes backend, and a replica killed and restarted.

Both replicas serve one namespace under the API's ServiceAccount; a `StandInProcess` plays the
runner's part (see tests/k8s/api.py).
"""

from __future__ import annotations

import concurrent.futures
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

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
from tests.procedures import create, pid_of, start, wait_for_state
from tests.sse import EventStream, Message


@pytest.fixture
def namespace_and_config(cluster: Cluster) -> Iterator[tuple[str, Path]]:
    with api_namespace(cluster, "replicas") as space:
        yield space


@pytest.fixture
def runner(cluster: Cluster, namespace_and_config: tuple[str, Path]) -> Iterator[StandInProcess]:
    with runner_stand_in(cluster, namespace_and_config[0]) as stand_in:
        yield stand_in


@pytest.fixture
def replicas(
    make_server: Callable[..., Server], tmp_path: Path, namespace_and_config: tuple[str, Path]
) -> tuple[Server, Server]:
    name, config = namespace_and_config
    first = start_kube_server(make_server, tmp_path / "a", name, config)
    second = start_kube_server(make_server, tmp_path / "b", name, config)
    return first, second


@pytest.fixture(autouse=True)
def _dirs(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()


def _ids(server: Server) -> list[int]:
    return [pid_of(p) for p in httpx.get(server.procedures, timeout=30).json()["procedures"]]


def _agrees(server: Server, ids: list[int]) -> Callable[[], bool]:
    return lambda: sorted(_ids(server)) == ids


def test_concurrent_creates_on_two_replicas_get_distinct_ids(
    replicas: tuple[Server, Server], runner: StandInProcess
) -> None:
    targets = [replicas[i % 2] for i in range(8)]

    def make(server: Server) -> int:
        with server.client() as api:
            return pid_of(create(api, LONG))

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        made = list(pool.map(make, targets))

    assert len(set(made)) == 8
    for server in replicas:
        wait_for(_agrees(server, sorted(made)), 30, "both caches to agree")


def test_concurrent_starts_on_two_replicas_let_exactly_one_procedure_run(
    replicas: tuple[Server, Server], runner: StandInProcess
) -> None:
    with replicas[0].client() as api:
        first, second = pid_of(create(api, LONG)), pid_of(create(api, LONG))
    for server in replicas:
        wait_for(_agrees(server, [first, second]), 30, "both caches to have both")
    barrier = threading.Barrier(2)

    def start_on(server: Server, pid: int) -> httpx.Response:
        barrier.wait()
        return httpx.put(f"{server.procedures}/{pid}", json={"state": "RUNNING"}, timeout=60)

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(start_on, replicas, (first, second)))

    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
    with replicas[0].client() as api:
        states = {p["state"] for p in api.get("/procedures").json()["procedures"]}
    assert states == {"RUNNING", "CREATED"}


def test_sse_client_moved_to_the_other_replica_misses_nothing(
    replicas: tuple[Server, Server], runner: StandInProcess
) -> None:
    first, second = replicas
    with EventStream(f"{first.api}/stream") as on_first:
        with first.client() as api:
            create(api, LONG)
        last = on_first.until(lambda m: m.topic == "procedure.lifecycle.created", 30)[-1].id
    # The client is gone; meanwhile things happen, requested through the other replica.
    with EventStream(f"{second.api}/stream") as on_second:
        with second.client() as api:
            start(api, pid_of(create(api, QUICK)))
        whole = on_second.until(lambda m: m.topic == "procedure.lifecycle.complete", 30)

    with EventStream(f"{second.api}/stream", last_event_id=last) as moved:
        caught_up = moved.until(lambda m: m.topic == "procedure.lifecycle.complete", 30)

    def cluster_events(messages: list[Message]) -> list[tuple[str | None, str]]:
        return [(m.id, m.topic) for m in messages if not m.topic.startswith("request.")]

    assert cluster_events(caught_up) == cluster_events(whole)
    assert [topic for _, topic in cluster_events(caught_up)] == [
        "procedure.lifecycle.created",
        "procedure.lifecycle.started",
        "user.script.hello",
        "procedure.lifecycle.complete",
    ]


def test_replica_killed_and_restarted_keeps_the_list_and_resumes_the_stream(
    make_server: Callable[..., Server],
    tmp_path: Path,
    namespace_and_config: tuple[str, Path],
    runner: StandInProcess,
) -> None:
    name, config = namespace_and_config
    server = start_kube_server(make_server, tmp_path / "a", name, config)
    with server.client() as api:
        done = pid_of(create(api, QUICK))
        with EventStream(f"{server.api}/stream") as events:
            start(api, done)
            last = events.until(lambda m: m.topic == "procedure.lifecycle.complete", 30)[-1]
        idle = pid_of(create(api, LONG))
        before = api.get("/procedures").json()
    with EventStream(f"{server.api}/stream", last_event_id=last.id) as tail:
        created_idle = tail.until(lambda m: m.topic == "procedure.lifecycle.created", 30)[-1]

    server.stop(signal.SIGKILL)
    again = start_kube_server(make_server, tmp_path / "a", name, config, port=server.port)

    with again.client() as api:
        assert api.get("/procedures").json() == before
        with EventStream(f"{again.api}/stream", last_event_id=created_idle.id) as resumed:
            start(api, idle)
            after = resumed.until(lambda m: m.topic == "procedure.lifecycle.started", 30)
        topics = [m.topic for m in after if not m.topic.startswith("request.")]
        assert topics == ["procedure.lifecycle.started"]
        wait_for_state(api, idle, "RUNNING")
