"""Every test under tests/k8s runs on the real single-node test cluster (marker `k8s`).

The `cluster` and `namespace` fixtures themselves live in tests/k8s/fixtures.py, a plugin
registered from tests/conftest.py, so the Kubernetes variants in tests/e2e can use them too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.k8s.fixtures import CLUSTER_TEST_TIMEOUT

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/k8s is a `k8s` test, with time for the cluster to start or stop.

    The first test that uses the cluster pays for its start (and the last for its stop)
    within its own timeout, on a machine that may be busy.
    """
    for item in items:
        if Path(item.path).is_relative_to(HERE):
            item.add_marker(pytest.mark.k8s)
            if item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(CLUSTER_TEST_TIMEOUT))
