"""``GET /metrics``: the REST server's Prometheus metrics, whatever the backend.

Why this exists: a site's Prometheus (the chart's optional ServiceMonitor)
scrapes it to see how many procedures are in which state, how often they are
created, started and stopped, how fast requests are answered, how many SSE
clients follow the stream and why procedures fail. Everything is derived from
what every backend already offers (its ``list()`` and the event bus), so the
embedded and Kubernetes backends report the same metrics. Each app has its own
registry, so several servers in one process (tests) never share counts.
"""

import time
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Receive, Scope, Send

from oet.api.backends import Backend
from oet.api.events import EventBus
from oet.domain import Event, ProcedureState, Topic

_ACTIONS = {
    Topic.REQUEST_CREATE: "create",
    Topic.REQUEST_START: "start",
    Topic.REQUEST_STOP: "stop",
}
_STREAM_SUFFIX = "/stream"


def failure_reason(payload: dict[str, Any]) -> str:
    """One low-cardinality word for why a procedure FAILED, from its lifecycle event.

    A traceback means the script raised: ``ScriptFailed`` on every backend,
    in ``init`` or ``run``. Otherwise the runner failed: a backend that knows
    how (the Kubernetes backend's ``status.reason``, e.g. ``OOMKilled``,
    ``Killed``) puts that word in ``history.reason_code``; without one the
    word is ``RunnerFailed``, as the embedded backend reports.
    """
    procedure = payload.get("procedure") or {}
    history = procedure.get("history") or {}
    if history.get("stacktrace"):
        return "ScriptFailed"
    code = history.get("reason_code")
    if isinstance(code, str) and code.isalnum() and len(code) <= 40:
        return code
    return "RunnerFailed"


class _LiveCollector(Collector):
    """Gauges read when scraped: procedures by state and SSE clients."""

    def __init__(self, backend: Backend, bus: EventBus) -> None:
        self._backend = backend
        self._bus = bus

    def collect(self) -> Iterator[Metric]:
        by_state = GaugeMetricFamily(
            "oet_procedures", "Procedures the server keeps, by state.", labels=["state"]
        )
        counts = {state.value: 0 for state in ProcedureState}
        for procedure in self._backend.list():
            counts[procedure.state.value] = counts.get(procedure.state.value, 0) + 1
        for state, count in counts.items():
            by_state.add_metric([state], count)
        yield by_state
        yield GaugeMetricFamily(
            "oet_sse_clients", "Clients following the event stream now.", value=self._bus.listeners
        )


class Metrics:
    """The registry and the metrics of one app."""

    def __init__(self, backend: Backend, bus: EventBus) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "oet_procedure_requests",
            "Create, start and stop requests received.",
            ["action"],
            registry=self.registry,
        )
        self.failures = Counter(
            "oet_runner_failures",
            "Procedures that ended FAILED, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "oet_request_duration_seconds",
            "Time to answer REST requests (event streams excluded), by route and method.",
            ["method", "route"],
            registry=self.registry,
        )
        self.registry.register(_LiveCollector(backend, bus))
        for action in _ACTIONS.values():
            self.requests.labels(action)
        bus.observe(self.count)

    def count(self, event: Event) -> None:
        """Count a request or a failure as the bus publishes it."""
        action = _ACTIONS.get(event.topic)  # type: ignore[call-overload]
        if action is not None:
            self.requests.labels(action).inc()
        elif event.topic == Topic.FAILED:
            self.failures.labels(failure_reason(event.payload)).inc()

    def exposition(self) -> bytes:
        """The metrics in Prometheus text format."""
        return generate_latest(self.registry)


class _Timing:
    """ASGI middleware timing each answered request under its route's template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            if not route.endswith(_STREAM_SUFFIX):
                self.metrics.latency.labels(scope["method"], route).observe(
                    time.perf_counter() - started
                )


def install_metrics(app: FastAPI, backend: Backend, bus: EventBus) -> Metrics:
    """Add ``/metrics`` and request timing to ``app``."""
    metrics = Metrics(backend, bus)
    app.state.metrics = metrics

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics(request: Request) -> Response:
        return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(_Timing, metrics=metrics)
    return metrics
