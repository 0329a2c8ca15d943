"""The REST API on the Kubernetes backend: status change -> SSE latency, GET list throughput.

    .venv/bin/python bench/bench_kubernetes.py          # starts the test cluster and a server

Starts the local test cluster (tests/k8s/cluster.py, built by `make cluster-build`), installs
the CRD and the API's RBAC in a namespace, runs `oet-rest` with OET_BACKEND=kubernetes under
the API's ServiceAccount, then measures:

1. status change -> SSE client: a Procedure's `/status` is patched (as the runner does) to
   CREATED, RUNNING and COMPLETED in turn; from just before each patch is sent until its
   lifecycle event arrives on `/stream` (the patch's own round trip included);
2. runner Event -> SSE client: a script Event is created on the Procedure, until it arrives;
3. `GET /procedures` requests per second from 16 keep-alive connections for 5 s, with the
   `--procedures` procedures in the list (served from the watch-fed cache).

A benchmark, not a test: it prints the figures and exits 0 whatever they are.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO), str(HERE)]

from bench_embedded import hammer  # noqa: E402
from kubernetes.client import CoreV1Api, CustomObjectsApi  # noqa: E402
from kubernetes.config import new_client_from_config  # noqa: E402
from wire import Endpoint  # noqa: E402

from oet.domain import Procedure, ProcedureInput, ProcedureState  # noqa: E402
from oet.kube import GROUP, PLURAL, VERSION, status_for, to_custom_resource  # noqa: E402
from oet.kube.events import script_event  # noqa: E402
from tests.conftest import Server  # noqa: E402
from tests.k8s.api import prepare_namespace  # noqa: E402
from tests.k8s.cluster import Cluster  # noqa: E402
from tests.sse import EventStream  # noqa: E402

NAMESPACE = "bench"
TOPICS = {
    ProcedureState.CREATED: "procedure.lifecycle.created",
    ProcedureState.RUNNING: "procedure.lifecycle.started",
    ProcedureState.COMPLETED: "procedure.lifecycle.complete",
}


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def measure(cluster: Cluster, server: Server, procedures: int) -> dict[str, list[float]]:
    """Latencies in ms: status change -> SSE and Event -> SSE."""
    client = new_client_from_config(str(cluster.kubeconfig))
    custom, core = CustomObjectsApi(client), CoreV1Api(client)
    status_ms: list[float] = []
    event_ms: list[float] = []
    with EventStream(f"{server.api}/stream") as stream:
        for pid in range(1000, 1000 + procedures):
            procedure = Procedure(pid, "file:///scripts/bench.py", ProcedureInput())
            body = to_custom_resource(procedure, NAMESPACE)
            body.pop("status")
            made = custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, body)
            for state in (ProcedureState.CREATED, ProcedureState.RUNNING):
                procedure.move_to(state)
                sent = time.perf_counter()
                custom.patch_namespaced_custom_object_status(
                    GROUP, VERSION, NAMESPACE, PLURAL, f"procedure-{pid}",
                    {"status": status_for(procedure).to_json()},
                )  # fmt: skip
                stream.until(lambda m, s=state, p=pid: m.topic == TOPICS[s]
                             and m.procedure_id == p, 30)  # fmt: skip
                status_ms.append((time.perf_counter() - sent) * 1000)
            note, _ = script_event(made, "bench.tick", {"n": pid}, time.time(), 1, "bench")
            sent = time.perf_counter()
            core.create_namespaced_event(NAMESPACE, note)
            stream.until(lambda m, p=pid: m.topic == "bench.tick" and m.procedure_id == p, 30)
            event_ms.append((time.perf_counter() - sent) * 1000)
            procedure.move_to(ProcedureState.COMPLETED)
            sent = time.perf_counter()
            custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, NAMESPACE, PLURAL, f"procedure-{pid}",
                {"status": status_for(procedure).to_json()},
            )  # fmt: skip
            stream.until(lambda m, p=pid: m.topic == TOPICS[ProcedureState.COMPLETED]
                         and m.procedure_id == p, 30)  # fmt: skip
            status_ms.append((time.perf_counter() - sent) * 1000)
    client.close()
    return {"status": status_ms, "event": event_ms}


def main() -> None:
    """Start the cluster and a server, measure, print, stop everything."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--procedures", type=int, default=20, help="procedures to cycle")
    args = parser.parse_args()
    cluster = Cluster()
    server: Server | None = None
    try:
        cluster.start()
        config = prepare_namespace(cluster, NAMESPACE)
        folder = Path(tempfile.mkdtemp(prefix="oet-bench-k8s-"))
        env = {"OET_BACKEND": "kubernetes", "OET_KUBE_NAMESPACE": NAMESPACE,
               "KUBECONFIG": str(config), "OET_MAX_PROCEDURES": "1000"}  # fmt: skip
        server = Server(folder / "unused.sqlite3", env).start()
        latencies = measure(cluster, server, args.procedures)
        assert server.process is not None
        load = asyncio.run(hammer(Endpoint.parse(server.api), server.process.pid, 16, 5.0))
        for name, values in (("status change -> SSE", latencies["status"]),
                             ("runner Event -> SSE", latencies["event"])):  # fmt: skip
            print(f"{name:24} p50 {statistics.median(values):6.1f} ms   "
                  f"p95 {percentile(values, 0.95):6.1f} ms   n={len(values)}")  # fmt: skip
        print(f"{'GET /procedures':24} {load.per_second():7.0f} req/s   "
              f"({load.requests} ok, {load.failed} failed, 16 connections, "
              f"{args.procedures} procedures listed)")  # fmt: skip
    finally:
        if server is not None:
            server.stop()
        cluster.stop()


if __name__ == "__main__":
    main()
