"""OET on the Kubernetes backend: the figures of issue 10, against the real test cluster.

    .venv/bin/python bench/bench_kubernetes.py           # make bench-k8s
    .venv/bin/python bench/bench_kubernetes.py --quick   # small counts, to see that it works

Starts the local test cluster (tests/k8s/cluster.py, built by `make cluster-build`) and
measures in two namespaces, each deleted afterwards:

- the API alone (`oet-rest` with OET_BACKEND=kubernetes, no operator; the bench plays the
  runner): status change -> SSE client, a Procedure's `/status` patched (as the runner does)
  to CREATED, RUNNING and COMPLETED in turn, from just before each patch until its lifecycle
  event arrives on `/stream`; runner Event -> SSE client, the same for a script Event; and
  `GET /procedures` requests per second from 16 keep-alive connections for 5 s, served from
  the watch-fed cache;
- the whole stack (operator, API, runner Jobs in real Pods of the OET image, see
  bench/k8s_stack.py): create -> CREATED, start -> COMPLETED, and a burst of concurrent
  creates (every answer 201, distinct consecutive IDs, all listed, all CREATED in time).

A benchmark, not a test: it prints each figure beside its target and exits 0 whatever they
are (1 with `--strict` if a target is missed). Everything it starts is stopped by PID, on
Ctrl-C and SIGTERM too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO), str(HERE)]

from bench_embedded import hammer  # noqa: E402
from k8s_stack import Stack, burst, create_and_start  # noqa: E402
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

TOPICS = {
    ProcedureState.CREATED: "procedure.lifecycle.created",
    ProcedureState.RUNNING: "procedure.lifecycle.started",
    ProcedureState.COMPLETED: "procedure.lifecycle.complete",
}


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def measure(
    cluster: Cluster, server: Server, procedures: int, namespace: str
) -> dict[str, list[float]]:
    """Latencies in ms: status change -> SSE and Event -> SSE (the bench plays the runner)."""
    client = new_client_from_config(str(cluster.kubeconfig))
    custom, core = CustomObjectsApi(client), CoreV1Api(client)
    status_ms: list[float] = []
    event_ms: list[float] = []
    with EventStream(f"{server.api}/stream") as stream:
        for pid in range(1000, 1000 + procedures):
            procedure = Procedure(pid, "file:///scripts/bench.py", ProcedureInput())
            body = to_custom_resource(procedure, namespace)
            body.pop("status")
            made = custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
            for state in (ProcedureState.CREATED, ProcedureState.RUNNING):
                procedure.move_to(state)
                sent = time.perf_counter()
                custom.patch_namespaced_custom_object_status(
                    GROUP, VERSION, namespace, PLURAL, f"procedure-{pid}",
                    {"status": status_for(procedure).to_json()},
                )  # fmt: skip
                stream.until(lambda m, s=state, p=pid: m.topic == TOPICS[s]
                             and m.procedure_id == p, 30)  # fmt: skip
                status_ms.append((time.perf_counter() - sent) * 1000)
            note, _ = script_event(made, "bench.tick", {"n": pid}, time.time(), 1, "bench")
            sent = time.perf_counter()
            core.create_namespaced_event(namespace, note)
            stream.until(lambda m, p=pid: m.topic == "bench.tick" and m.procedure_id == p, 30)
            event_ms.append((time.perf_counter() - sent) * 1000)
            procedure.move_to(ProcedureState.COMPLETED)
            sent = time.perf_counter()
            custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, PLURAL, f"procedure-{pid}",
                {"status": status_for(procedure).to_json()},
            )  # fmt: skip
            stream.until(lambda m, p=pid: m.topic == TOPICS[ProcedureState.COMPLETED]
                         and m.procedure_id == p, 30)  # fmt: skip
            status_ms.append((time.perf_counter() - sent) * 1000)
    client.close()
    return {"status": status_ms, "event": event_ms}


@dataclass
class Figure:
    """One measured figure, with its target when the issue sets one."""

    name: str
    value: float | None
    unit: str
    limit: float | None = None
    above: bool = False  # the target is "more than limit" (else "less than")
    detail: str = ""

    @property
    def verdict(self) -> str:
        """PASS or FAIL against the target; "" without one."""
        if self.limit is None:
            return ""
        if self.value is None:
            return "FAIL"
        good = self.value > self.limit if self.above else self.value < self.limit
        return "PASS" if good else "FAIL"

    def line(self) -> str:
        """The figure as one line of the report."""
        value = "   n/a" if self.value is None else f"{self.value:8.1f}"
        target = ""
        if self.limit is not None:
            sign = ">" if self.above else "<"
            target = f"target {sign} {self.limit:g} {self.unit}  {self.verdict}"
        line = f"{self.name:34} {value} {self.unit:6} {target}"
        return f"{line}\n{'':36}{self.detail}" if self.detail else line


@dataclass
class Options:
    """What to measure, and how much of it."""

    procedures: int = 20
    runs: int = 10
    burst: int = 50
    seconds: float = 5.0
    clients: int = 16


QUICK = Options(procedures=3, runs=2, burst=5, seconds=1.0, clients=4)


def spread(name: str, values: list[float], limit: float | None = None) -> list[Figure]:
    """p50 (against `limit`) and p90 of latencies in ms."""
    detail = f"p90 {percentile(values, 0.9):.1f} ms, max {max(values):.1f} ms, n={len(values)}"
    return [Figure(f"{name} p50", statistics.median(values), "ms", limit, detail=detail)]


def api_only(cluster: Cluster, options: Options, folder: Path) -> list[Figure]:
    """The API with the bench playing the runner: status/Event -> SSE, GET throughput."""
    namespace = f"bench-api-{os.getpid()}"
    server: Server | None = None
    try:
        config = prepare_namespace(cluster, namespace)
        env = {"OET_BACKEND": "kubernetes", "OET_KUBE_NAMESPACE": namespace,
               "KUBECONFIG": str(config), "OET_MAX_PROCEDURES": "1000"}  # fmt: skip
        server = Server(folder / "api-only.sqlite3", env).start()
        latencies = measure(cluster, server, options.procedures, namespace)
        assert server.process is not None
        load = asyncio.run(hammer(Endpoint.parse(server.api), server.process.pid,
                                  options.clients, options.seconds))  # fmt: skip
    finally:
        if server is not None:
            server.stop()
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    return [
        *spread("status change -> SSE client", latencies["status"], 20),
        *spread("runner Event -> SSE client", latencies["event"]),
        Figure("GET /procedures", load.per_second(), "req/s", 1500, above=True,
               detail=f"{load.requests} ok, {load.failed} failed, {options.clients} "
                      f"connections, {options.procedures} procedures listed"),
    ]  # fmt: skip


def whole_stack(cluster: Cluster, options: Options, folder: Path) -> list[Figure]:
    """Operator, API and runner Pods: create, start, burst."""
    kept = options.runs + options.burst + 10  # retention never drops one of ours
    stack = Stack(cluster, f"bench-stack-{os.getpid()}", kept)
    try:
        stack.start(folder)
        cycles = create_and_start(stack, options.runs)
        made = burst(stack, options.burst)
    finally:
        stack.stop()
    problems = made.problems
    detail = (f"{made.count} creates at once: answers within {made.answers_s:.1f} s "
              f"({made.initialising_answers} still INITIALISING); "
              f"{'; '.join(problems) if problems else 'all 201, IDs distinct, consecutive, listed'}"
              f"; max_procedures={kept}")  # fmt: skip
    return [
        *spread("create -> CREATED (runner Pod)", cycles["created"]),
        *spread("start -> COMPLETED event", cycles["completed"]),
        Figure(f"burst of {made.count}: all CREATED", made.all_created_s, "s", 60, detail=detail),
        Figure(f"burst of {made.count}: problems", float(len(problems)), "", 1),
        *(Figure(f"  burst: last {stage}", max(times), "s",
                 detail=f"median {statistics.median(times):.1f} s, n={len(times)}")
          for stage, times in made.stages.items() if times),
        *([Figure("  burst: CPU of one runner to CREATED", statistics.median(cpu), "s",
                  detail=f"max {max(cpu):.2f} s, sum {sum(cpu):.1f} s over {len(cpu)} runners,"
                         f" {os.cpu_count()} cores")]
          if (cpu := made.runner_cpu_s) else []),
    ]  # fmt: skip


def run(cluster: Cluster, options: Options) -> list[Figure]:
    """Every figure, on a started cluster (namespaces of its own, deleted afterwards).

    The servers' logs go to a temporary folder, deleted after a run that measured
    everything and kept (its path printed) after one that failed or was interrupted.
    """
    folder = Path(tempfile.mkdtemp(prefix="oet-bench-k8s-"))
    try:
        figures = [*api_only(cluster, options, folder), *whole_stack(cluster, options, folder)]
    except BaseException:
        print(f"[bench] the servers' logs are kept in {folder}", file=sys.stderr)
        raise
    shutil.rmtree(folder, ignore_errors=True)
    return figures


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> None:
    """Start the cluster, measure, print, stop everything."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts (a smoke run)")
    parser.add_argument("--procedures", type=int, help="procedures cycled by the API-only phase")
    parser.add_argument("--runs", type=int, help="create/start cycles on the whole stack")
    parser.add_argument("--burst", type=int, help="concurrent creates in the burst")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args()
    options = QUICK if args.quick else Options()
    for name in ("procedures", "runs", "burst"):
        if getattr(args, name) is not None:
            setattr(options, name, getattr(args, name))
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    cluster = Cluster()
    try:
        cluster.start()
        figures = run(cluster, options)
    except KeyboardInterrupt:
        print("[bench] interrupted: stopping", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        cluster.stop()
    if args.json:
        print(json.dumps({"figures": [{**asdict(f), "verdict": f.verdict} for f in figures]}))
    else:
        for figure in figures:
            print(figure.line())
    if args.strict and any(f.verdict == "FAIL" for f in figures):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
