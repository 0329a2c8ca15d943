"""The benchmark runs end to end and reports every figure (the values are not judged here)."""

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import REPO, Server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SMALL = [
    *("--runs", "2", "--warmup", "0", "--events", "5", "--clients", "2", "--seconds", "0.5"),
    *("--idle", "3", "--listeners", "5"),
]


def run_bench(*args: str) -> list[dict[str, Any]]:
    """Run bench/bench_embedded.py with small counts; the figures of its JSON report."""
    done = subprocess.run(
        [sys.executable, "bench/bench_embedded.py", *SMALL, "--json", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    figures: list[dict[str, Any]] = json.loads(done.stdout)["figures"]
    return figures


def test_benchmark_measures_every_target_figure_against_its_own_server() -> None:
    targets = [f for f in run_bench() if f["limit"] is not None]
    names = " | ".join(f["name"] for f in targets)
    wanted = ("create", "COMPLETED", "event", "GET /procedures", "RSS", "PSS", "SSE listener")
    for figure in (*wanted, "floor / create"):
        assert figure in names, f"{figure!r} missing from the benchmark's targets: {names}"
    for f in targets:
        assert isinstance(f["value"], float | int), f
        assert f["value"] >= 0, f
        assert f["verdict"] in ("PASS", "FAIL"), f


def test_benchmark_measures_its_floors_in_the_same_run() -> None:
    figures = {f["name"].strip(): f["value"] for f in run_bench()}
    for floor in (
        "floor: cold python -c 'import oet.runner' p50",
        "floor: loopback HTTP round trip p50",
        "floor server CPU per request",
    ):
        assert figures[floor] > 0, floor
    assert figures["floor / create (p50s)"] > 0
    assert figures["one client / floor (p50s)"] > 0


def test_benchmark_measures_a_server_that_is_already_running(server: Server) -> None:
    assert server.process is not None
    scripts = str(server.db_path.parent)  # one of the server's script_dirs
    figures = run_bench(
        "--url", server.api, "--pid", str(server.process.pid), "--script-dir", scripts
    )
    rss = [f for f in figures if "RSS" in f["name"]]
    assert rss
    assert all(f["value"] > 1 for f in rss), rss  # read from the given server process
