"""Run one end-to-end test on both backends: the marker `both_backends`.

Why this exists: the REST API, the stream and the CLI must answer the same on the embedded
and on the Kubernetes backend, and the surest way to show it is to run the same test body,
with the same assertions, against both. A test (or module) marked `both_backends` that uses
a server (`server`, `api`, `make_server`) runs twice: `[embedded]`, and `[kubernetes]` on the
real test cluster with the real operator and runner Pods (tests/k8s/stack.py), marked `k8s`.

    pytestmark = [pytest.mark.e2e, pytest.mark.both_backends]

    @pytest.mark.embedded_only("runner processes are Pods on Kubernetes")
    def test_a_killed_runner_process_...

A test in such a module marked `embedded_only(why)` keeps only its embedded run: what it
checks does not exist on Kubernetes (an embedded-only setting, the runner as a child
process, SQLite). The reason is required, so every exception says why. On one case of a
parametrised test (`first_also_on_kubernetes`) it keeps that case off Kubernetes, when
the cases differ only in what the REST layer or the CLI parses.

The `backend` fixture says which one a test runs on; unmarked tests run on the embedded
backend only. On Kubernetes one stack (namespace and operator) serves a module and is reset
between tests, and each test gets its own `oet-rest`, so tests see a fresh server either way.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

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
    definition = metafunc.definition
    if not definition.get_closest_marker("both_backends") or "backend" not in metafunc.fixturenames:
        return
    embedded_only = definition.get_closest_marker("embedded_only")
    if embedded_only is not None:
        assert embedded_only.args, f"{definition.nodeid}: say why it is embedded_only(...)"
        return
    metafunc.parametrize("backend", BACKENDS, indirect=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the Kubernetes runs of parameters marked `embedded_only` (pytest.param)."""
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_kubernetes = callspec is not None and callspec.params.get("backend") == "kubernetes"
        if on_kubernetes and item.get_closest_marker("embedded_only"):
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


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


def first_also_on_kubernetes(cases: list[Any], why: str) -> list[Any]:
    """Cases for `pytest.mark.parametrize` of which only the first runs on Kubernetes too.

    For cases that differ only in what the REST layer or the CLI parses, before any
    backend is involved: one is enough to show the backend answers alike.
    """
    rest = [
        pytest.param(*(case if isinstance(case, tuple) else (case,)),
                     marks=pytest.mark.embedded_only(why))
        for case in cases[1:]
    ]  # fmt: skip
    return [cases[0], *rest]
