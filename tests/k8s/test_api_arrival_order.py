"""What a replica tells clients when the cluster's news reaches it in an awkward order.

The Kubernetes backend runs in this process, against the real test cluster and as the API's
ServiceAccount; `RunnerStandIn`'s report and publish play the runner, step by step, so each
awkward order is made on purpose rather than hoped for:

* The runner creates its last script Events and then writes the final state, but a replica
  learns of the two through two watches, and the Events watch may lag. Here it is held back:
  what it delivers is kept, and handed over only when the test says.
* A start's answer is the runner's first reaction (RUNNING), even when the watch brings
  RUNNING and a quick script's COMPLETED before the API server has answered the start's patch.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from kubernetes.client import CustomObjectsApi

from oet.api.backends.kubernetes.backend import KubernetesBackend
from oet.api.backends.kubernetes.bus import ClusterEventBus
from oet.api.events import Subscription
from oet.config import Settings
from oet.domain import Event, Procedure, ProcedureInput, ProcedureState
from oet.kube import GROUP, PLURAL, VERSION, to_custom_resource
from tests.k8s.api import QUICK, RunnerStandIn, api_namespace
from tests.k8s.cluster import Cluster

S = ProcedureState
WAIT = 30.0


class Stage:
    """A namespace for the API, the runner's part, and the backend to run in this process."""

    def __init__(self, namespace: str, runner: RunnerStandIn) -> None:
        self.namespace = namespace
        self.runner = runner
        self.admin = CustomObjectsApi(runner.client)
        self.settings = Settings(backend="kubernetes", kube_namespace=namespace)

    def create(self, pid: int) -> None:
        """A Procedure as the API makes it, taken to CREATED as its runner would."""
        procedure = Procedure(pid, QUICK, ProcedureInput(), ProcedureInput())
        body = to_custom_resource(procedure, self.namespace)
        body.pop("status", None)
        self.admin.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, dict(body)
        )
        self.report(pid, S.CREATED)

    def report(self, pid: int, state: ProcedureState) -> None:
        """The runner writes ``state``."""
        self.runner.report(self.runner.read(pid), state)

    @contextlib.asynccontextmanager
    async def backend(self, bus: ClusterEventBus) -> AsyncIterator[KubernetesBackend]:
        """The Kubernetes backend, started (as the API's ServiceAccount) until the block ends."""
        backend = KubernetesBackend(self.settings, bus)
        await backend.startup()
        try:
            yield backend
        finally:
            await backend.shutdown()
            backend.cluster.client.rest_client.pool_manager.clear()  # its watches end now


@pytest.fixture
def stage(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stage]:
    with api_namespace(cluster, "order") as (namespace, kubeconfig):
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        runner = RunnerStandIn(str(cluster.kubeconfig), namespace)
        try:
            yield Stage(namespace, runner)
        finally:
            runner.client.close()


class HeldBackWatch:
    """Keeps what the backend's Events watch delivers until :meth:`release`."""

    def __init__(self, backend: KubernetesBackend) -> None:
        self.follower = backend._followers[1]  # the Events watch (see KubernetesBackend)
        assert self.follower.name == "events"
        self.deliver = self.follower.on_change
        self.kept: list[tuple[str, dict[str, Any]]] = []
        self.follower.on_change = lambda kind, item: self.kept.append((kind, item))

    def release(self) -> None:
        self.follower.on_change = self.deliver
        for kind, item in self.kept:
            self.deliver(kind, item)


async def _until(condition: Any, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def _events_until(subscription: Subscription, topic: str) -> list[Event]:
    got: list[Event] = []
    while not got or got[-1].topic != topic:
        event = await asyncio.wait_for(subscription.queue.get(), WAIT)
        assert event is not None, f"the stream ended before {topic}: {got}"
        got.append(event)
    return got


def test_the_final_state_follows_script_events_the_events_watch_has_not_delivered_yet(
    stage: Stage,
) -> None:
    async def scenario() -> tuple[list[Event], list[Event | None]]:
        bus = ClusterEventBus()
        async with stage.backend(bus) as backend:
            watch = HeldBackWatch(backend)
            subscription = bus.subscribe()
            stage.create(1)
            stage.report(1, S.RUNNING)
            for step in range(3):
                stage.runner.publish(stage.runner.read(1), "user.script.step", {"step": step})
            stage.report(1, S.COMPLETED)
            streamed = await _events_until(subscription, "procedure.lifecycle.complete")
            await _until(lambda: len(watch.kept) == 3, "the held-back watch to get the 3 Events")
            watch.release()  # the late watch delivers the same Events again (at once)
            again: list[Event | None] = []
            while not subscription.queue.empty():
                again.append(subscription.queue.get_nowait())
            return streamed, again

    streamed, again = asyncio.run(scenario())

    assert [e.topic for e in streamed] == [
        "procedure.lifecycle.created",
        "procedure.lifecycle.started",
        "user.script.step",
        "user.script.step",
        "user.script.step",
        "procedure.lifecycle.complete",
    ]
    assert [e.payload.get("step") for e in streamed[2:5]] == [0, 1, 2]
    assert all(e.procedure_id == 1 for e in streamed)
    ids = [e.id for e in streamed]
    assert ids == sorted(set(ids)), ids
    assert again == [], "the late watch's Events were streamed a second time"


def test_a_start_answers_running_when_the_script_completed_before_the_patch_was_answered(
    stage: Stage,
) -> None:
    async def scenario() -> tuple[Procedure, ProcedureState]:
        async with stage.backend(ClusterEventBus()) as backend:
            stage.create(1)
            await _until(lambda: backend.list() and backend.get(1).state == S.CREATED, "CREATED")
            patch_spec = backend.cluster.patch_spec

            def patch_answered_late(pid: int, patch: list[dict[str, Any]]) -> Any:
                answer = patch_spec(pid, patch)
                stage.report(pid, S.RUNNING)  # the runner reacts at once ...
                stage.report(pid, S.COMPLETED)  # ... and the script is quick
                deadline = time.monotonic() + WAIT
                while backend.get(pid).state != S.COMPLETED:  # the watch brought both first
                    assert time.monotonic() < deadline, "the watch never brought COMPLETED"
                    time.sleep(0.01)
                return answer

            backend.cluster.patch_spec = patch_answered_late  # type: ignore[method-assign]
            answer = await asyncio.wait_for(backend.start(1, None), WAIT)
            return answer, backend.get(1).state

    answer, now = asyncio.run(scenario())

    assert answer.state == S.RUNNING
    assert now == S.COMPLETED
