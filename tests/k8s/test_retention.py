"""The operator keeps the newest `max_procedures` Procedures and deletes older finished ones."""

from __future__ import annotations

import json

import pytest

from tests.k8s.oet_operator import create_procedure, install, wait, wait_state
from tests.k8s.test_operator import OET
from tests.k8s.workloads import Namespace


@pytest.fixture(scope="module")
def installed(namespace: Namespace) -> Namespace:
    install(namespace)
    return namespace


def names(namespace: Namespace) -> list[str]:
    out = namespace.kubectl("get", "procedures", "-o", "jsonpath={.items[*].metadata.name}")
    return sorted(str(out.stdout).split(), key=lambda n: int(n.rsplit("-", 1)[1]))


def finish(namespace: Namespace, name: str, second: int) -> None:
    """Record a finished procedure the way a runner would have (as the admin)."""
    times = {"initialising": f"2026-01-01T00:00:{second:02d}Z",
             "completed": f"2026-01-01T00:00:{second:02d}.5Z"}  # fmt: skip
    body = {"status": {"state": "COMPLETED", "stateTimes": times, "reason": "Completed"}}
    namespace.kubectl("patch", "procedure", name, "--subresource=status", "--type=merge",
                      "-p", json.dumps(body))  # fmt: skip


def test_operator_keeps_the_newest_ten_and_never_deletes_a_live_one(installed: Namespace) -> None:
    ns = installed
    create_procedure(ns, 1, "announce.py")  # stays live (CREATED): never deleted
    for pid in range(2, 13):
        finish(ns, create_procedure(ns, pid, "announce.py"), pid)

    oet = OET(ns)
    try:
        wait_state(ns, "procedure-1", "CREATED")
        kept = wait(lambda: len(names(ns)) == 10 and names(ns), 90, "retention",
                    oet.operator.tail)  # fmt: skip
    finally:
        oet.operator.stop()

    assert kept == ["procedure-1", *(f"procedure-{pid}" for pid in range(4, 13))]
