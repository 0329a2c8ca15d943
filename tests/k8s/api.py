"""The REST API on the Kubernetes backend, against the real test cluster: helpers.

Why this exists: the API's Kubernetes tests need a namespace with the CRD and the API's own
RBAC (`k8s/rbac/api.yaml`), `oet-rest` processes running with `OET_BACKEND=kubernetes` under
that ServiceAccount, and, until the operator and the runner's Kubernetes channel are in the
tree, something that plays the runner's part. `RunnerStandIn` does exactly what a runner does
on the cluster, through the same interface: it patches the Procedure's `/status` (with
`oet.kube.status_for`) and posts script Events (with `oet.kube.events.script_event`, the format in
docs/kubernetes.md "Script events"). It
is a stand-in for the runner, not for anything the API talks to.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kubernetes.client import ApiClient, CoreV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException
from kubernetes.config import new_client_from_config

from oet.domain import FINAL_STATES, ProcedureState
from oet.kube import GROUP, PLURAL, VERSION, from_custom_resource, procedure_name, status_for
from oet.kube.events import script_event
from oet.kube.resource import AbortOutcome, DesiredState, read_spec
from tests.conftest import SCRIPTS, Server
from tests.k8s.cluster import REPO, Cluster

CRD = REPO / "crds" / "procedure.yaml"
STAND_IN_SCRIPTS = Path(__file__).resolve().parent / "scripts"
"""Scripts the API tests create procedures from: the API checks they exist, as it does for
real runners; the stand-in never runs them (a name containing ``quick`` completes)."""
LONG = f"file://{STAND_IN_SCRIPTS}/observe.py"
QUICK = f"file://{STAND_IN_SCRIPTS}/quick.py"
API_RBAC = REPO / "k8s" / "rbac" / "api.yaml"
S = ProcedureState

_crd_installed: set[str] = set()


def install_crd(cluster: Cluster) -> None:
    """Apply the Procedure CRD once per cluster and wait until the API server serves it."""
    if cluster.id in _crd_installed:
        return
    cluster.kubectl("apply", "-f", str(CRD))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                    "crd/procedures.oet.skao.int")  # fmt: skip
    _crd_installed.add(cluster.id)


def prepare_namespace(cluster: Cluster, name: str) -> Path:
    """Create ``name`` with the API's RBAC; the kubeconfig of its ServiceAccount ``oet-api``."""
    install_crd(cluster)
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl("apply", "-n", name, "-f", str(API_RBAC))
    return cluster.service_account_kubeconfig(name, "oet-api")


_namespaces = itertools.count()


@contextlib.contextmanager
def api_namespace(cluster: Cluster, prefix: str) -> Iterator[tuple[str, Path]]:
    """A fresh namespace made by :func:`prepare_namespace`, deleted afterwards: its name and
    the kubeconfig of its ServiceAccount ``oet-api``."""
    name = f"{prefix}-{os.getpid()}-{next(_namespaces)}"
    try:
        yield name, prepare_namespace(cluster, name)
    finally:
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def start_kube_server(
    make_server: Callable[..., Server], tmp_path: Path, namespace: str, kubeconfig: Path,
    port: int | None = None, **settings: str,
) -> Server:  # fmt: skip
    """A real `oet-rest` on the Kubernetes backend, as the API's ServiceAccount."""
    env = {
        "OET_BACKEND": "kubernetes",
        "OET_KUBE_NAMESPACE": namespace,
        "KUBECONFIG": str(kubeconfig),
        "OET_CREATE_WAIT": "30",
        "OET_SCRIPT_DIRS": f"{SCRIPTS}:{STAND_IN_SCRIPTS}",
        **{f"OET_{k.upper()}": v for k, v in settings.items()},
    }
    server: Server = make_server(env=env, db_path=tmp_path / "unused.sqlite3", port=port)
    return server


class RunnerStandIn:
    """Plays the runner's part for every Procedure in a namespace (see the module docstring).

    For each Procedure: init succeeds at once (CREATED); a start makes it RUNNING and posts
    the script event ``user.script.hello`` ``{"n": <id>}``; a script whose URI contains
    ``quick`` then COMPLETES; a stop makes it STOPPING, then STOPPED (with an abort outcome
    when asked).
    """

    def __init__(self, kubeconfig: str, namespace: str) -> None:
        self.namespace = namespace
        self.client: ApiClient = new_client_from_config(kubeconfig)
        self.custom = CustomObjectsApi(self.client)
        self.core = CoreV1Api(self.client)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="runner-stand-in", daemon=True)
        self.errors: list[BaseException] = []
        self._seq = 0

    def __enter__(self) -> RunnerStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        self._thread.join(10)
        self.client.rest_client.pool_manager.clear()  # closes its sockets now, not at GC
        self.client.close()

    def _loop(self) -> None:
        while not self._stopped.is_set():
            try:
                listed: Any = self.custom.list_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, PLURAL
                )
                for item in listed["items"]:
                    self._act(item)
            except ApiException as exc:
                if exc.status != 404:  # a Procedure deleted under its feet is no error
                    self.errors.append(exc)
            except Exception as exc:
                self.errors.append(exc)
            self._stopped.wait(0.05)

    def _act(self, item: Any) -> None:
        procedure = from_custom_resource(item)
        spec = read_spec(item)
        state = procedure.state
        if state in FINAL_STATES:
            return
        if spec.desired_state == DesiredState.STOPPED:
            if state != S.STOPPING:
                self.report(item, S.STOPPING)
                return
            abort = AbortOutcome(sent=True, message="Abort sent") if spec.abort else None
            self.report(item, S.STOPPED, abort)
        elif state == S.INITIALISING:
            self.report(item, S.CREATED)
        elif state == S.CREATED and spec.desired_state == DesiredState.RUNNING:
            self.report(item, S.RUNNING)
            self.publish(item, "user.script.hello", {"n": spec.id})
            if "quick" in spec.script_uri:
                self.report(self.read(spec.id), S.COMPLETED)

    def read(self, pid: int) -> Any:
        """Procedure ``pid`` as the API server has it now."""
        found: Any = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, procedure_name(pid)
        )
        return found

    def report(self, item: Any, state: ProcedureState, abort: AbortOutcome | None = None) -> None:
        """Patch the Procedure's status to ``state``, as the runner does."""
        procedure = from_custom_resource(item)
        procedure.move_to(state)
        if state == S.STOPPED:
            procedure.history.reason = "Stopped on request"
        status = status_for(procedure, abort=abort).to_json()
        self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, self.namespace, PLURAL, item["metadata"]["name"], {"status": status}
        )

    def publish(self, item: Any, topic: str, payload: Any) -> None:
        """Post a script event as an Event on the Procedure, as the runner does."""
        self._seq += 1
        body, _ = script_event(item, topic, payload, time.time(), self._seq, "stand-in")
        self.core.create_namespaced_event(self.namespace, body)  # type: ignore[arg-type]


class StandInProcess:
    """A :class:`RunnerStandIn` in a process of its own (so its sockets are never the test's)."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.log = cluster.dir / f"stand-in-{namespace}.log"
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.k8s.api", str(cluster.kubeconfig), namespace],
                cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def stop(self) -> str:
        """Stop it (by PID) and return what it logged."""
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return self.log.read_text()


@contextlib.contextmanager
def runner_stand_in(cluster: Cluster, namespace: str) -> Iterator[StandInProcess]:
    """A runner stand-in for ``namespace`` while the block runs; it must not have failed."""
    stand_in = StandInProcess(cluster, namespace)
    try:
        yield stand_in
    finally:
        logged = stand_in.stop()
    assert "Traceback" not in logged, logged


def main() -> None:
    """``python -m tests.k8s.api KUBECONFIG NAMESPACE``: play the runner until SIGTERM."""
    kubeconfig, namespace = sys.argv[1:3]
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with RunnerStandIn(kubeconfig, namespace) as stand_in:
        stopped.wait()
    for error in stand_in.errors:
        traceback.print_exception(error)


if __name__ == "__main__":
    main()
