"""The operator's /metrics: what the counters and the by-state gauge show a scrape."""

import httpx

from oet.domain import ProcedureState
from oet.operator.metrics import OperatorMetrics, count_by_state, stop_serving
from tests.conftest import free_port
from tests.prometheus import parse_samples
from tests.unit.kube_fixtures import resource

S = ProcedureState


def test_procedures_are_counted_by_state_with_every_state_present() -> None:
    counts = count_by_state([resource(1, S.RUNNING), resource(2, S.RUNNING), resource(3, None)])
    assert counts[S.RUNNING.value] == 2
    assert counts[S.INITIALISING.value] == 1  # no status written yet
    assert counts[S.FAILED.value] == 0
    assert set(counts) == {state.value for state in S}


def test_a_scrape_shows_the_decisions_counted_and_the_procedures_watched() -> None:
    metrics = OperatorMetrics()
    metrics.watch_procedures(lambda: [resource(1, S.COMPLETED), resource(2, S.CREATED)])
    metrics.jobs_created.inc()
    metrics.runner_deaths.labels("OOMKilled").inc()
    metrics.runner_deaths.labels("OOMKilled").inc()
    metrics.aborts.labels("sent").inc()
    metrics.retention_deletions.inc()
    server = metrics.serve(free_port(), "127.0.0.1")
    assert server is not None
    try:
        answer = httpx.get(f"http://127.0.0.1:{server.server_port}/metrics", timeout=10)
    finally:
        stop_serving(server)
    assert answer.status_code == 200
    seen = parse_samples(answer.text)
    assert seen[("oet_operator_runner_jobs_created_total", ())] == 1
    assert seen[("oet_operator_runner_deaths_total", (("reason", "OOMKilled"),))] == 2
    assert seen[("oet_operator_aborts_total", (("outcome", "sent"),))] == 1
    assert seen[("oet_operator_aborts_total", (("outcome", "failed"),))] == 0
    assert seen[("oet_operator_retention_deletions_total", ())] == 1
    assert seen[("oet_operator_procedures", (("state", "COMPLETED"),))] == 1
    assert seen[("oet_operator_procedures", (("state", "CREATED"),))] == 1
    assert seen[("oet_operator_procedures", (("state", "RUNNING"),))] == 0


def test_two_operators_in_one_process_never_share_counts() -> None:
    first, second = OperatorMetrics(), OperatorMetrics()
    first.jobs_created.inc()
    assert second.jobs_created._value.get() == 0


def test_port_0_serves_nothing() -> None:
    assert OperatorMetrics().serve(0) is None
