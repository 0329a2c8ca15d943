"""/metrics and /healthz on a real server: what a site's Prometheus and probes see."""

import sqlite3
from collections.abc import Callable

import httpx

from tests.conftest import Server, wait_for
from tests.procedures import QUICK, SLEEPER, create_id, start, stop, wait_for_state
from tests.prometheus import Samples, parse_samples
from tests.sse import EventStream

FAILS_IN_RUN = """
def run():
    raise RuntimeError("the dish is stowed")
"""


def samples(server: Server) -> Samples:
    """Every sample /metrics shows, keyed by name and sorted labels."""
    answer = httpx.get(f"{server.base}/metrics", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return parse_samples(answer.text)


def value(server: Server, name: str, **labels: str) -> float:
    return samples(server).get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_procedures_by_state_and_the_requests_that_moved_them(
    server: Server, api: httpx.Client, script: Callable[[str], str]
) -> None:
    assert value(server, "oet_procedures", state="RUNNING") == 0
    assert value(server, "oet_procedure_requests_total", action="create") == 0
    quick = create_id(api, script(QUICK))
    start(api, quick)
    wait_for_state(api, quick, "COMPLETED")
    sleeper = create_id(api, script(SLEEPER))
    start(api, sleeper, seconds=120)
    wait_for_state(api, sleeper, "RUNNING")

    assert value(server, "oet_procedures", state="COMPLETED") == 1
    assert value(server, "oet_procedures", state="RUNNING") == 1
    assert value(server, "oet_procedure_requests_total", action="create") == 2
    assert value(server, "oet_procedure_requests_total", action="start") == 2
    stop(api, sleeper)
    wait_for_state(api, sleeper, "STOPPED")
    assert value(server, "oet_procedure_requests_total", action="stop") == 1
    assert value(server, "oet_procedures", state="STOPPED") == 1
    assert value(server, "oet_procedures", state="RUNNING") == 0


def test_a_script_that_raises_is_counted_as_a_failure_with_its_reason(
    server: Server, api: httpx.Client, script: Callable[[str], str]
) -> None:
    pid = create_id(api, script(FAILS_IN_RUN))
    start(api, pid)
    wait_for_state(api, pid, "FAILED")
    assert value(server, "oet_runner_failures_total", reason="ScriptFailed") == 1
    assert value(server, "oet_procedures", state="FAILED") == 1


def test_request_latency_is_recorded_per_route_template(
    server: Server, api: httpx.Client, script: Callable[[str], str]
) -> None:
    pid = create_id(api, script(QUICK))
    api.get(f"/procedures/{pid}")
    api.get("/procedures/9999")
    count = value(
        server,
        "oet_request_duration_seconds_count",
        method="GET",
        route="/procedures/{pid}",
    )
    assert count == 2
    created = value(
        server, "oet_request_duration_seconds_count", method="POST", route="/procedures"
    )
    assert created == 1


def test_sse_clients_are_counted_while_they_follow_the_stream(server: Server) -> None:
    assert value(server, "oet_sse_clients") == 0
    with EventStream(f"{server.api}/stream"):
        wait_for(lambda: value(server, "oet_sse_clients") == 1, 10, "the stream client counted")
        with EventStream(f"{server.api}/stream"):
            wait_for(lambda: value(server, "oet_sse_clients") == 2, 10, "two stream clients")
    wait_for(lambda: value(server, "oet_sse_clients") == 0, 40, "closed streams uncounted")


def test_healthz_is_ok_while_the_procedure_database_can_be_written(server: Server) -> None:
    answer = httpx.get(f"{server.base}/healthz", timeout=10)
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok"}


def test_healthz_reports_unavailable_while_the_database_cannot_be_written(
    server: Server,
) -> None:
    # Another process holds the database's write lock, so the server cannot record anything.
    holder = sqlite3.connect(str(server.db_path), isolation_level=None, timeout=0)
    holder.execute("BEGIN IMMEDIATE")
    try:
        answer = httpx.get(f"{server.base}/healthz", timeout=30)
        assert answer.status_code == 503
        assert answer.json()["status"] == "unavailable"
        assert "cannot be written" in answer.json()["reason"]
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert httpx.get(f"{server.base}/healthz", timeout=30).status_code == 200
