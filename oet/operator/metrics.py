"""The operator's Prometheus metrics, served at ``/metrics`` on ``operator_metrics_port``.

Why this exists: the API's ``/metrics`` (:mod:`oet.api.metrics`) sees what
clients ask for, but only the operator sees what it decides on its own: the
runner Jobs it creates, the runner deaths it classifies (``OOMKilled``,
``Killed``, ``ImageNotPresent``, ...), the Aborts it sends and the finished
Procedures retention deletes. The counters are incremented where the
reconciler has just carried out such a decision; the procedures-by-state gauge
is read from the operator's in-memory index when scraped, so a scrape costs no
API-server call. kopf's liveness server takes no extra routes, so
prometheus-client serves this registry on a port of its own.
"""

from collections.abc import Callable, Iterable, Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from oet.domain import ProcedureState
from oet.kube import ProcedureResource, read_status

ProcedureSource = Callable[[], Iterable[ProcedureResource]]


def count_by_state(procedures: Iterable[ProcedureResource]) -> dict[str, int]:
    """How many of ``procedures`` are in each state (every state present, maybe 0).

    A Procedure nothing has written a status for yet counts as INITIALISING.
    """
    counts = {state.value: 0 for state in ProcedureState}
    for procedure in procedures:
        state = read_status(procedure).state or ProcedureState.INITIALISING
        counts[state.value] += 1
    return counts


class _ProcedureGauge(Collector):
    """``oet_operator_procedures{state}``, counted from the index when scraped."""

    def __init__(self, source: ProcedureSource) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "oet_operator_procedures",
            "Procedures the operator knows in its namespace, by state.",
            labels=["state"],
        )
        for state, count in count_by_state(self.source()).items():
            gauge.add_metric([state], count)
        yield gauge


def _nothing() -> list[ProcedureResource]:
    return []


class OperatorMetrics:
    """The operator's registry and counters (one per Reconciler, so tests never share counts)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.jobs_created = Counter(
            "oet_operator_runner_jobs_created",
            "Runner Jobs the operator created.",
            registry=self.registry,
        )
        self.runner_deaths = Counter(
            "oet_operator_runner_deaths",
            "Procedures the operator ended because their runner died or never started, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.aborts = Counter(
            "oet_operator_aborts",
            "Aborts the operator sent for stopped procedures whose runner was gone, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.retention_deletions = Counter(
            "oet_operator_retention_deletions",
            "Finished Procedures the operator deleted to keep max_procedures.",
            registry=self.registry,
        )
        for outcome in ("sent", "failed"):
            self.aborts.labels(outcome)
        self._gauge = _ProcedureGauge(_nothing)
        self.registry.register(self._gauge)

    def watch_procedures(self, source: ProcedureSource) -> None:
        """Count procedures by state from ``source`` (called at each scrape)."""
        self._gauge.source = source

    def serve(self, port: int, addr: str = "0.0.0.0") -> WSGIServer | None:
        """Serve ``/metrics`` on ``port`` in a daemon thread (0: do not serve).

        Stop it with :func:`stop_serving`.
        """
        if port == 0:
            return None
        server, _thread = start_http_server(port, addr, registry=self.registry)
        return server


def stop_serving(server: WSGIServer | None) -> None:
    """Stop a server :meth:`OperatorMetrics.serve` started and close its socket."""
    if server is not None:
        server.shutdown()
        server.server_close()
