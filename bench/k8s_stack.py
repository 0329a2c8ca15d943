"""The whole Kubernetes stack under measurement: operator, `oet-rest`, runner Jobs in Pods.

Why this exists: the API-only phases of bench_kubernetes.py play the runner themselves, so
they say nothing about what a user waits for on a real deployment. Here a namespace gets the
CRD and the RBAC of k8s/rbac/, the operator runs as a host process under its own
ServiceAccount (tests/k8s/oet_operator.py, as the operator tests run it) and `oet-rest` runs
with OET_BACKEND=kubernetes under the API's; every procedure is a real runner Job whose Pod
runs the OET image. Measured through the REST API and `/stream` only, as a client sees it:

- create -> CREATED: from sending `POST /procedures` to its 201 answer (the API waits for
  `init`, so the answer says CREATED once the runner Pod has loaded the script);
- start -> COMPLETED: from sending `PUT {"state": "RUNNING"}` to the `complete` lifecycle
  event of that procedure on `/stream`;
- a burst of concurrent creates: every answer, the IDs (distinct, consecutive, all listed)
  and the time from the first request until every one of them is CREATED.
"""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import SCRIPTS, Server
from tests.k8s.api import API_RBAC
from tests.k8s.cluster import Cluster
from tests.k8s.oet_operator import Operator, install, runner_overrides, same_path_mounts
from tests.k8s.workloads import Namespace
from tests.sse import EventStream, Message

NOOP = f"file://{SCRIPTS}/hello_world.py"
"""init prints, run prints and publishes one event (next to nothing).

The API checks at create that the script exists in its `script_dirs`, so the checkout's
`scripts/` is what both the API (a host process) and the runners (mounted at the same path,
see `same_path_mounts` in tests/k8s/oet_operator.py) load from.
"""
CREATED = "procedure.lifecycle.created"
COMPLETE = "procedure.lifecycle.complete"


class StampedStream:
    """`/stream` read by a thread that notes each message's arrival time (perf_counter)."""

    def __init__(self, url: str) -> None:
        self._stream = EventStream(url)
        self._seen: list[tuple[float, Message]] = []
        self._changed = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._read, name="stamped-sse", daemon=True)

    def __enter__(self) -> StampedStream:
        self._stream.__enter__()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing = True
        self._stream.close()
        self._thread.join(5)

    def _read(self) -> None:
        while not self._closing:
            try:
                message = self._stream.next(0.5)
            except AssertionError as exc:
                if "no SSE message" in str(exc):
                    continue
                return  # the stream ended: waits then time out with what was seen
            with self._changed:
                self._seen.append((time.perf_counter(), message))
                self._changed.notify_all()

    def first(self, topic: str, pid: int, timeout: float) -> float:
        """When the first `topic` message of procedure `pid` arrived (waits for it)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for stamp, message in self._seen:
                    if message.topic == topic and message.procedure_id == pid:
                        return stamp
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no {topic} for procedure {pid} within {timeout} s")
                self._changed.wait(remaining)


@dataclass
class Stack:
    """A namespace with the operator and one API server in it."""

    cluster: Cluster
    name: str
    max_procedures: int
    operator: Operator | None = None
    server: Server | None = None
    logs: list[Path] = field(default_factory=list)

    def start(self, folder: Path) -> Stack:
        """Create the namespace, install CRD and RBAC, start operator and API."""
        self.cluster.kubectl("create", "namespace", self.name)
        namespace = Namespace(self.cluster, self.name)
        namespace.wait_for("serviceaccount", "default", lambda _: True, timeout=60)
        install(namespace)
        namespace.kubectl("apply", "-f", str(API_RBAC))
        limit = str(self.max_procedures)
        overrides = json.dumps(same_path_mounts(runner_overrides(namespace), {"scripts": SCRIPTS}))
        self.operator = Operator(namespace, OET_MAX_PROCEDURES=limit,
                                 OET_RUNNER_POD_OVERRIDES=overrides).start()  # fmt: skip
        config = self.cluster.service_account_kubeconfig(self.name, "oet-api")
        env = {"OET_BACKEND": "kubernetes", "OET_KUBE_NAMESPACE": self.name,
               "KUBECONFIG": str(config), "OET_MAX_PROCEDURES": limit}  # fmt: skip
        self.server = Server(folder / "stack.sqlite3", env).start()
        self.logs = [self.operator.log, self.server.log]
        return self

    def stop(self) -> None:
        """Stop the API and the operator (by PID); delete the namespace and its runner Pods.

        Waits (at most 3 min) until the namespace is gone, so that its Pods stopping never
        weigh on what is measured next.
        """
        if self.server is not None:
            self.server.stop()
        if self.operator is not None:
            self.operator.stop()
        self.cluster.kubectl("delete", "namespace", self.name, "--timeout=180s", check=False,
                             timeout=200)  # fmt: skip


def _create(client: httpx.Client) -> tuple[int, dict[str, Any]]:
    answer = client.post("/procedures", json={"script_uri": NOOP})
    return answer.status_code, answer.json()


def _pid(body: dict[str, Any]) -> int:
    return int(body["procedure"]["uri"].rsplit("/", 1)[1])


def create_and_start(stack: Stack, runs: int) -> dict[str, list[float]]:
    """`runs` cycles of create -> CREATED, then start -> COMPLETED; latencies in ms."""
    assert stack.server is not None
    created_ms: list[float] = []
    completed_ms: list[float] = []
    with stack.server.client() as client, StampedStream(f"{stack.server.api}/stream") as stream:
        for _ in range(runs):
            sent = time.perf_counter()
            status, body = _create(client)
            answered = time.perf_counter()
            state = body.get("procedure", {}).get("state")
            if status != 201 or state != "CREATED":
                raise AssertionError(f"create answered {status} {state}: {body}")
            created_ms.append((answered - sent) * 1000)
            pid = _pid(body)
            sent = time.perf_counter()
            answer = client.put(f"/procedures/{pid}", json={"state": "RUNNING"})
            if answer.status_code != 200:
                raise AssertionError(f"start answered {answer.status_code}: {answer.text}")
            completed_ms.append((stream.first(COMPLETE, pid, 120) - sent) * 1000)
    return {"created": created_ms, "completed": completed_ms}


@dataclass
class Burst:
    """What a burst of concurrent creates gave."""

    count: int
    statuses: list[int]
    ids: list[int]
    answers_s: float
    all_created_s: float | None
    listed: list[int]
    initialising_answers: int
    stages: dict[str, list[float]] = field(default_factory=dict)
    runner_cpu_s: list[float] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        """Every way the burst went wrong (empty when it did not)."""
        found = []
        if any(s != 201 for s in self.statuses):
            found.append(f"answers other than 201: {sorted(set(self.statuses))}")
        if len(set(self.ids)) != len(self.ids) or len(self.ids) != self.count:
            found.append(f"{len(self.ids)} IDs, {len(set(self.ids))} distinct")
        if self.ids and sorted(self.ids) != list(range(min(self.ids), max(self.ids) + 1)):
            found.append(f"IDs not consecutive: {sorted(self.ids)}")
        if missing := sorted(set(self.ids) - set(self.listed)):
            found.append(f"missing from GET /procedures: {missing}")
        if self.all_created_s is None:
            found.append("not all CREATED")
        return found


def burst(stack: Stack, count: int, timeout: float = 300) -> Burst:
    """`count` creates sent at once; wait until every one is CREATED (or `timeout` s)."""
    assert stack.server is not None
    gate = threading.Barrier(count + 1, timeout=120)
    url = stack.server.api

    def one() -> tuple[int, dict[str, Any], float]:
        with httpx.Client(base_url=url, timeout=timeout) as client:
            gate.wait()
            status, body = _create(client)
            return status, body, time.perf_counter()

    with StampedStream(f"{url}/stream") as stream, ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(one) for _ in range(count)]
        gate.wait()
        first, began = time.perf_counter(), time.time()
        results = [f.result() for f in futures]
        answered = max(stamp for _, _, stamp in results)
        ids = [_pid(body) for status, body, _ in results if status == 201]
        states = [body.get("procedure", {}).get("state") for _, body, _ in results]
        all_created: float | None = first
        for (status, body, stamp), state in zip(results, states, strict=True):
            if status != 201:
                continue
            if state == "CREATED":
                all_created = max(all_created or first, stamp)
                continue
            try:
                seen = stream.first(CREATED, _pid(body), max(1.0, timeout - (stamp - first)))
                all_created = max(all_created or first, seen)
            except AssertionError:
                all_created = None
                break
    listed = httpx.get(f"{url}/procedures", timeout=30).json()["procedures"]
    return Burst(
        stages=stages(stack, ids, began),
        runner_cpu_s=runner_cpu(stack.name),
        count=count,
        statuses=[status for status, _, _ in results],
        ids=ids,
        answers_s=answered - first,
        all_created_s=None if all_created is None else all_created - first,
        listed=[int(p["uri"].rsplit("/", 1)[1]) for p in listed],
        initialising_answers=sum(1 for s in states if s == "INITIALISING"),
    )


STAGES = ("Job created", "Pod created", "container started", "CREATED")
"""Where a procedure's way to CREATED goes, in order (see :func:`stages`)."""


def _when(stamp: str | None) -> float | None:
    return None if not stamp else datetime.fromisoformat(stamp).timestamp()


def stages(stack: Stack, ids: list[int], began: float) -> dict[str, list[float]]:
    """For each of STAGES, the seconds after `began` at which each procedure reached it.

    Read from the API server (Job and Pod times have 1 s resolution; CREATED is the
    runner's own time from the Procedure's status): tells whether the operator, the node or
    the runner's start is what a burst waits for.
    """
    wanted = {f"procedure-{pid}" for pid in ids}
    label = "oet.skao.int/procedure"
    found: dict[str, list[float]] = {stage: [] for stage in STAGES}
    listed = json.loads(stack.cluster.kubectl(
        "-n", stack.name, "get", "procedures,jobs,pods", "-o", "json").stdout)["items"]  # fmt: skip
    for item in listed:
        kind, meta = item["kind"], item["metadata"]
        owner = meta["name"] if kind == "Procedure" else meta.get("labels", {}).get(label)
        if owner not in wanted:
            continue
        times: list[tuple[str, float | None]] = []
        if kind == "Procedure":
            times = [
                ("CREATED", _when(item.get("status", {}).get("stateTimes", {}).get("created")))
            ]
        elif kind == "Job":
            times = [("Job created", _when(meta.get("creationTimestamp")))]
        elif kind == "Pod":
            running = [c.get("state", {}).get("running", {}).get("startedAt")
                       for c in item.get("status", {}).get("containerStatuses", [])]  # fmt: skip
            times = [("Pod created", _when(meta.get("creationTimestamp"))),
                     ("container started", _when(running[0] if running else None))]  # fmt: skip
        for stage, stamp in times:
            if stamp is not None:
                found[stage].append(stamp - began)
    return found


def runner_cpu(namespace: str) -> list[float]:
    """CPU seconds (user + system) each runner of `namespace` has used so far.

    Runner containers are processes of this host (the node is this machine), found by the
    environment the operator gives them. Read once all are CREATED and idle, it is what
    loading one runner cost: a burst needs that times its size, shared by the cores.
    """
    wanted = f"OET_PROCEDURE_NAMESPACE={namespace}".encode()
    tick = os.sysconf("SC_CLK_TCK")
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if wanted not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            if b"oet.runner" not in (entry / "cmdline").read_bytes():
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found.append((int(fields[11]) + int(fields[12])) / tick)  # utime, stime
    return found
