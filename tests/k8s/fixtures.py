"""The `cluster` and `namespace` fixtures, as a plugin every test directory can use.

Why this exists: tests/k8s needs the real test cluster, and so do the Kubernetes variants of
the end-to-end tests in tests/e2e (see tests/backends.py). The fixtures live here, registered
from tests/conftest.py, rather than in tests/k8s/conftest.py, which only tests/k8s would see.

One cluster per test session (started on first use, stopped at the end of the session, on
Ctrl-C and on SIGTERM), one namespace per test module. A cluster that cannot start fails the
tests that need it with the failing component's own error; it is never a skip, and under CI
(CI=true) the whole run stops at the first such failure.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from types import FrameType

import pytest

from tests.k8s.cluster import Cluster, ClusterError
from tests.k8s.workloads import Namespace

CLUSTER_TEST_TIMEOUT = 300
"""Seconds a test on the cluster may take: the first pays for the cluster's start."""


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    # pytest unwinds a KeyboardInterrupt through its fixtures' finalizers: the cluster stops.
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """The running test cluster, with its kubectl first on PATH while the session lasts."""
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    instance = Cluster()
    try:
        instance.start()
    except ClusterError as error:
        instance.stop()
        if os.environ.get("CI"):
            pytest.exit(f"the test cluster could not start: {error}", returncode=1)
        pytest.fail(f"the test cluster could not start: {error}", pytrace=False)
    saved_path = os.environ.get("PATH", "")
    os.environ["PATH"] = f"{instance.bin_dir}{os.pathsep}{saved_path}"
    try:
        yield instance
    finally:
        os.environ["PATH"] = saved_path
        instance.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    # The session's own cluster leaves nothing behind either.
    assert instance.leftovers() == {"processes": [], "mounts": []}


@pytest.fixture(scope="module")
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[Namespace]:
    """A fresh namespace for one test module, deleted afterwards."""
    name = re.sub(r"[^a-z0-9-]", "-", request.module.__name__.rsplit(".", 1)[-1].lower())[:50]
    name = f"{name.strip('-')}-{os.getpid()}"
    cluster.kubectl("create", "namespace", name)
    space = Namespace(cluster, name)
    # Pods can be created once the namespace's default ServiceAccount exists.
    space.wait_for("serviceaccount", "default", lambda _: True, timeout=60)
    yield space
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
