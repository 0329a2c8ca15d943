"""Run one end-to-end test on both backends: the marker `both_backends`.

Why this exists: the REST API, the stream and the CLI must answer the same on the embedded
and on the Kubernetes backend, and the surest way to show it is to run the same test body,
with the same assertions, against both. A test (or module) marked `both_backends` that uses
a server (`server`, `api`, `make_server`) runs twice: `[embedded]`, and `[kubernetes]` on the
real test cluster with the real operator and runner Pods (tests/k8s/stack.py), marked `k8s`.

    pytestmark = [pytest.mark.e2e, pytest.mark.both_backends]

The `backend` fixture says which one a test runs on; unmarked tests run on the embedded
backend only. On Kubernetes one stack (namespace and operator) serves a module and is reset
between tests, and each test gets its own `oet-rest`, so tests see a fresh server either way.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.k8s.fixtures import CLUSTER_TEST_TIMEOUT

if TYPE_CHECKING:
    from tests.k8s.stack import KubeStack
    from tests.k8s.workloads import Namespace

BACKENDS = [
    "embedded",
    pytest.param("kubernetes", marks=[pytest.mark.k8s, pytest.mark.timeout(CLUSTER_TEST_TIMEOUT)]),
]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise `backend` for tests marked `both_backends`."""
    if metafunc.definition.get_closest_marker("both_backends") and (
        "backend" in metafunc.fixturenames
    ):
        metafunc.parametrize("backend", BACKENDS, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The backend this test's servers run on: "embedded" unless parametrised."""
    return str(getattr(request, "param", "embedded"))


@pytest.fixture(scope="module")
def kube_stack(namespace: Namespace) -> Iterator[KubeStack]:
    """OET on the Kubernetes backend in this module's namespace (operator running)."""
    from tests.k8s.stack import KubeStack

    stack = KubeStack(namespace).start()
    try:
        yield stack
    finally:
        stack.stop()
