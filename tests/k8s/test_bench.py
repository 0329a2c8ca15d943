"""`make bench-k8s` runs end to end on the test cluster and leaves nothing behind.

The bench runs here with its small counts (`--quick`) on the session's cluster; the figures'
values are not judged (speed targets live in bench/, never in tests), only that each one was
measured and that the burst lost or doubled no procedure.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import wait_for
from tests.k8s.cluster import REPO, Cluster

pytestmark = pytest.mark.timeout(600)


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bench_kubernetes", REPO / "bench" / "bench_kubernetes.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _processes_in(namespace_prefix: str) -> list[int]:
    """PIDs of processes whose environment names a namespace starting with the prefix."""
    wanted = f"OET_KUBE_NAMESPACE={namespace_prefix}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                environ = (entry / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(item.startswith(wanted) for item in environ):
                found.append(int(entry.name))
    return found


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_kubernetes_bench_measures_every_figure_and_leaves_nothing_running(
    cluster: Cluster,
) -> None:
    bench = _bench()
    folders_before = set(Path(tempfile.gettempdir()).glob("oet-bench-k8s-*"))
    figures: list[Any] = bench.run(cluster, bench.QUICK)

    values = {f.name: f.value for f in figures}
    for name in (
        "status change -> SSE client p50",
        "runner Event -> SSE client p50",
        "GET /procedures",
        "create -> CREATED (runner Pod) p50",
        "start -> COMPLETED event p50",
        "burst of 5: all CREATED",
    ):
        assert (values.get(name) or 0) > 0, (name, values)
    assert values["burst of 5: problems"] == 0, [f.line() for f in figures]
    targets = {f.name: f.verdict for f in figures if f.limit is not None}
    assert len(targets) == 4, targets
    assert set(targets.values()) <= {"PASS", "FAIL"}, targets

    assert _processes_in(f"bench-stack-{os.getpid()}") == []  # operator and API stopped
    assert _processes_in(f"bench-api-{os.getpid()}") == []
    spaces = json.loads(cluster.kubectl("get", "namespaces", "-o", "json").stdout)["items"]
    ours = {n["metadata"]["name"]: n["status"]["phase"] for n in spaces
            if n["metadata"]["name"].endswith(f"-{os.getpid()}")
            and n["metadata"]["name"].startswith("bench-")}  # fmt: skip
    assert f"bench-stack-{os.getpid()}" not in ours  # deleted, its runner Pods with it
    assert set(ours.values()) <= {"Terminating"}, ours
    # Its log folder went with it (a failed run keeps it, for the logs).
    assert set(Path(tempfile.gettempdir()).glob("oet-bench-k8s-*")) <= folders_before


def test_ctrl_c_during_the_kubernetes_bench_stops_its_cluster_and_everything_in_it() -> None:
    with tempfile.TemporaryFile() as out:
        bench = subprocess.Popen(
            [sys.executable, "bench/bench_kubernetes.py", "--quick"],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal's foreground job
        )  # fmt: skip

        def api_server() -> list[int]:
            assert bench.poll() is None, "the bench exited before its first server started"
            return _processes_in(f"bench-api-{bench.pid}")

        try:
            servers = wait_for(api_server, 300, "the bench to start its first oet-rest")
            assert isinstance(servers, list)
            environ = (Path("/proc") / str(servers[0]) / "environ").read_bytes().split(b"\0")
            config = next(e for e in environ if e.startswith(b"KUBECONFIG=")).decode()
            cluster_dir = str(Path(config.partition("=")[2]).parent)
        finally:
            os.killpg(bench.pid, signal.SIGINT)  # Ctrl-C
            bench.wait(180)
        out.seek(0)
        said = out.read().decode(errors="replace")

    # It says where the servers' logs were kept; they are no use to anyone after this test.
    kept = re.search(r"the servers' logs are kept in (\S+)", said)
    assert kept is not None, said
    shutil.rmtree(kept.group(1))
    assert bench.returncode != 0
    assert _processes_in(f"bench-api-{bench.pid}") == []
    assert not Path(cluster_dir).exists()
    assert _processes_mentioning(cluster_dir) == []
