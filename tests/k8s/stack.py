"""OET whole on the Kubernetes backend, for end-to-end tests that run on both backends.

Why this exists: the end-to-end tests in tests/e2e talk to `oet-rest` over HTTP, with curl
and with the `oet` command. Their Kubernetes variants need the real thing behind that same
server: the Procedure CRD and the RBAC of k8s/rbac/ in a namespace, the real operator
(`oet-operator`, a host process under its own ServiceAccount), runner Jobs in real Pods of the
OET image, and `oet-rest` with OET_BACKEND=kubernetes under the API's ServiceAccount.

Scripts: the tests name scripts by `file://` URIs of files on this machine (the repo's
`scripts/` and files they write). Runner Pods use the host network on this same machine, so
`runner_pod_overrides` mounts those directories into the runner container with hostPath
volumes at the same absolute paths, and `script_dirs` allows them in the runner and the API
alike: the same URI names the same file on both backends.

Runner containers run as uid 1000 (never weakened here), and pytest's own temporary
directories are private to root (mode 0700). So the files tests write for the Kubernetes
variant live under `script_root`, a directory of this stack owned by uid 1000: the runner can
read the scripts, and write beside them as the user docs' example scripts do; the tests run
as root and read and write there too.

Settings a deployment gives the API and the operator alike (`max_procedures`, the abort and
stop settings) follow the test's server: `make_server(env=...)` calls `configure()`, which
restarts the operator with them when they change, so its runners abort where the test says.

One stack (namespace, operator) serves a test module; `reset()` makes it as good as new
between tests (no procedures, runners, events, ID counter or running Lease), so each test
still gets a fresh `oet-rest` whose first procedure is number 1, as on the embedded backend.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from kubernetes.client import (
    ApiClient,
    BatchV1Api,
    CoordinationV1Api,
    CoreV1Api,
    CustomObjectsApi,
)
from kubernetes.client.exceptions import ApiException

from oet.api.backends.kubernetes.cluster import ID_COUNTER, RUNNING_LEASE
from oet.kube.client import api_client, client_configuration
from oet.kube.names import GROUP, PLURAL, VERSION, procedure_id, runner_labels
from oet.operator.builders import RUNNER_UID
from tests.conftest import SCRIPTS, wait_for
from tests.k8s.api import API_RBAC
from tests.k8s.cluster import REPO
from tests.k8s.oet_operator import Operator, install, runner_overrides, same_path_mounts
from tests.k8s.workloads import Namespace
from tests.procedures import pod_runners

SCRIPT_ROOT_PARENT = Path(tempfile.gettempdir())
"""Where script roots go: /tmp, readable by everyone (pytest's basetemp is not)."""
OPERATOR_SETTINGS = frozenset(
    {"OET_MAX_PROCEDURES", "OET_ABORT_FQDN_TEMPLATE", "OET_ABORT_TIMEOUT", "OET_STOP_GRACE"}
)
"""Settings a deployment gives the API and the operator alike (one ConfigMap in the chart):
the operator keeps `max_procedures` and hands the abort and stop settings to the runners."""


class KubeStack:
    """CRD, RBAC, operator and script directories in one namespace; `oet-rest` settings."""

    def __init__(self, namespace: Namespace) -> None:
        self.namespace = namespace
        self.script_root = Path(
            tempfile.mkdtemp(prefix=f"oet-e2e-{namespace.name}-", dir=SCRIPT_ROOT_PARENT)
        )
        self.script_root.chmod(0o755)
        os.chown(self.script_root, RUNNER_UID, RUNNER_UID)
        self.operator: Operator | None = None
        self.operator_settings: dict[str, str] = {}
        self.api_kubeconfig: Path | None = None
        self._dirty = False
        self._dirs = 0
        self._api_client: ApiClient | None = None

    @property
    def script_dirs(self) -> str:
        """`script_dirs` for the runner and the API: the repo's scripts and `script_root`."""
        return f"{SCRIPTS}:{self.script_root}"

    def start(self) -> KubeStack:
        """Install everything and start the operator; stops what it started if that fails."""
        try:
            install(self.namespace)
            self.namespace.kubectl("apply", "-f", str(API_RBAC))
            self.api_kubeconfig = self.namespace.service_account_kubeconfig("oet-api")
            self.configure({})
        except BaseException:
            self.stop()
            raise
        return self

    def runner_overrides(self) -> dict[str, Any]:
        """The test cluster's runner Pod settings plus same-path hostPath script mounts."""
        overrides = same_path_mounts(runner_overrides(self.namespace), {"repo-scripts": SCRIPTS})
        same_path_mounts(overrides, {"e2e-scripts": self.script_root}, read_only=False)
        # The API starts in the repo (tests.conftest.Server): relative `file://scripts/x.py`
        # URIs, the user docs' form, must name the same file for the runner.
        [runner] = overrides["spec"]["containers"]
        runner["workingDir"] = str(REPO)
        return overrides

    def configure(self, settings: dict[str, str]) -> None:
        """Give the operator (and so its runners) the `OPERATOR_SETTINGS` among `settings`.

        As a deployment's one configuration would: a test that starts its server with, say,
        `OET_MAX_PROCEDURES=3` or an abort FQDN template gets an operator with the same. The
        operator is restarted (by PID) only when these differ from what it runs with.
        """
        wanted = {k: v for k, v in settings.items() if k in OPERATOR_SETTINGS}
        if wanted == self.operator_settings and self.operator is not None:
            return
        if self.operator is not None:
            self.operator.stop()
        overrides = json.dumps(self.runner_overrides())
        self.operator = Operator(
            self.namespace, OET_RUNNER_POD_OVERRIDES=overrides, **wanted
        ).start()
        self.operator_settings = wanted

    def server_env(self) -> dict[str, str]:
        """The environment of an `oet-rest` on this stack (marks the stack as used)."""
        assert self.api_kubeconfig is not None, "start() the stack first"
        self._dirty = True
        return {
            "OET_BACKEND": "kubernetes",
            "OET_KUBE_NAMESPACE": self.namespace.name,
            "KUBECONFIG": str(self.api_kubeconfig),
            "OET_SCRIPT_DIRS": self.script_dirs,
        }

    def new_script_dir(self) -> Path:
        """A fresh directory under `script_root` the runner (uid 1000) may read and write."""
        self._dirs += 1
        path = self.script_root / f"test-{self._dirs}"
        path.mkdir(mode=0o755)
        os.chown(path, RUNNER_UID, RUNNER_UID)
        return path

    def live_runners(self) -> set[int]:
        """IDs of the procedures whose runner process is alive (runner Pods run on this host)."""
        names = pod_runners(self.namespace.name).values()
        return {procedure_id(name) for name in names if name.startswith("procedure-")}

    def runner_log(self, pid: int) -> str:
        """What the runner of procedure ``pid`` logged (its Pod's log)."""
        selector = ",".join(f"{k}={v}" for k, v in runner_labels(pid).items())
        return str(self.namespace.kubectl("logs", "-l", selector, "--tail=-1").stdout)

    def reset(self) -> None:
        """Remove every procedure, runner, script event, the ID counter and the Lease.

        Waits until no runner Pod is left and no runner process of this namespace lives, so
        that nothing of an earlier test still runs or can be mistaken for a new procedure's
        runner (Job names are per procedure ID). Collections are deleted in one request
        each: kubectl deletes objects one by one, which cost seconds per test for events.
        Runner Pods whose container runs or has ended are deleted at once, without a grace
        period (the runners of the last test need no graceful stop; a runner whose Procedure
        is gone ends by itself), and then their runner processes are waited for. A Pod still
        Pending may have its container being created, with no process to wait for yet: it
        is deleted with a grace period, so that it is gone only once the kubelet has stopped
        it, and a runner started late cannot adopt the next test's procedure of its name.
        """
        if not self._dirty:
            return
        api, name = self._client(), self.namespace.name
        core = CoreV1Api(api)
        CustomObjectsApi(api).delete_collection_namespaced_custom_object(GROUP, VERSION, name,
                                                                         PLURAL)  # fmt: skip
        BatchV1Api(api).delete_collection_namespaced_job(name, propagation_policy="Background")
        for pod in core.list_namespaced_pod(name).items:
            pending = (pod.status.phase if pod.status else None) in (None, "Pending")
            with contextlib.suppress(ApiException):  # gone already
                core.delete_namespaced_pod(str(pod.metadata and pod.metadata.name), name,
                                           grace_period_seconds=1 if pending else 0)  # fmt: skip

        def all_gone() -> bool:
            return not (core.list_namespaced_pod(name, limit=1).items or self.live_runners())

        wait_for(all_gone, 120, f"the runner Pods and processes of {name} to be gone")
        core.delete_collection_namespaced_event(name)
        for delete, what in (
            (core.delete_namespaced_config_map, ID_COUNTER),
            (CoordinationV1Api(api).delete_namespaced_lease, RUNNING_LEASE),
        ):
            try:
                delete(what, name)
            except ApiException as error:
                if error.status != 404:
                    raise
        self._dirty = False

    def _client(self) -> ApiClient:
        """A Kubernetes API client with the cluster's admin credentials (made once)."""
        if self._api_client is None:
            kubeconfig = str(self.namespace.cluster.kubeconfig)
            # environ={}: the admin kubeconfig even if this runs in a Pod of another cluster
            self._api_client = api_client(client_configuration(kubeconfig, environ={}))
        return self._api_client

    def stop(self) -> None:
        """Remove every runner, stop the operator (by PID) and delete the script files."""
        with contextlib.suppress(Exception):
            self.reset()
        try:
            if self.operator is not None:
                self.operator.stop()
        finally:
            if self._api_client is not None:
                self._api_client.close()
                self._api_client = None
        shutil.rmtree(self.script_root, ignore_errors=True)
