"""OET on the test cluster: the CRD, RBAC, test scripts, and the operator as a real process.

Why this exists: operator and runner tests all need the same set-up (the Procedure CRD, the
operator's and runner's ServiceAccounts and Roles from `k8s/rbac/`, scripts in a ConfigMap)
and the same way to run `oet-operator` with the operator's own ServiceAccount. The runner
Pods get the test cluster's Pod settings through the `runner_pod_overrides` setting, built
from `k8s/testenv/cluster-values.yaml` — the way a site would configure its own cluster.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import free_port
from tests.k8s.cluster import REPO
from tests.k8s.workloads import Manifest, Namespace, cluster_values
from tests.prometheus import Samples, parse_samples

SCRIPTS_DIR = "/test-scripts"
RUNNER_RESOURCES = {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}
"""Small enough that the memory hog meets its limit quickly; enough for the runner itself."""
FINAL = {"COMPLETED", "FAILED", "STOPPED"}

SCRIPTS = {
    "announce.py": """
import time
from oet import scripting

def init(subarray_id=1, **kwargs):
    scripting.publish("user.script.announce", msg="initialised", subarray=subarray_id)

def run(seconds=0.0, fail=False, big=0, **kwargs):
    scripting.publish("user.script.announce", msg="running")
    if big:
        scripting.publish("user.script.big", data="x" * big)
    if fail:
        raise ValueError("the script failed on purpose")
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.1)
    scripting.publish("user.script.announce", msg="done")
""",
    "stubborn.py": """
import time

def run(**kwargs):
    while True:  # swallows every stop: only SIGKILL ends it
        try:
            time.sleep(600)
        except BaseException:
            pass
""",
    "hog.py": """
def run():
    hoard = []
    while True:
        hoard.append(bytearray(8 * 1024 * 1024))
        for i in range(0, len(hoard[-1]), 4096):
            hoard[-1][i] = 1
""",
    "inside.py": """
import os
from oet import scripting

def run():
    status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
    try:
        open("/written-by-script", "w").close()
        root = "writable"
    except OSError as exc:
        root = exc.strerror
    tmp = open("/tmp/ok", "w").write("ok") == 2
    scripting.publish("user.script.inside", uid=os.getuid(), gid=os.getgid(), root=root, tmp=tmp,
                      cap_eff=status["CapEff"].strip(), no_new_privs=status["NoNewPrivs"].strip(),
                      seccomp=status["Seccomp"].strip())
""",
}


def runner_overrides(namespace: Namespace) -> dict[str, Any]:
    """`runner_pod_overrides` for the test cluster: cluster-values.yaml plus the scripts."""
    values = cluster_values()
    env = {**values["env"], "KUBERNETES_SERVICE_PORT": str(namespace.cluster.ports["apiserver"]),
           "OET_SCRIPT_DIRS": f"/scripts:{SCRIPTS_DIR}"}  # fmt: skip
    return {"spec": {
        "hostNetwork": values["hostNetwork"],
        "tolerations": values["tolerations"],
        "volumes": [{"name": "test-scripts", "configMap": {"name": "test-scripts"}}],
        "containers": [{
            "name": "runner",
            "imagePullPolicy": values["imagePullPolicy"],
            "env": [{"name": k, "value": v} for k, v in env.items()],
            "volumeMounts": [{"name": "test-scripts", "mountPath": SCRIPTS_DIR}],
        }],
    }}  # fmt: skip


def same_path_mounts(
    overrides: dict[str, Any], directories: dict[str, Path], read_only: bool = True
) -> dict[str, Any]:
    """``overrides`` with host ``directories`` (volume name → path) mounted at their own paths.

    Runner Pods run on this machine, so a script the API (a host process) checks at create
    is then the very file the runner loads: the same ``file://`` URI names it for both. The
    directories are added to the runner's ``OET_SCRIPT_DIRS``.
    """
    spec = overrides["spec"]
    spec["volumes"] += [
        {"name": name, "hostPath": {"path": str(path), "type": "Directory"}}
        for name, path in directories.items()
    ]
    [runner] = spec["containers"]
    runner["volumeMounts"] += [
        {"name": name, "mountPath": str(path), "readOnly": read_only}
        for name, path in directories.items()
    ]
    for variable in runner["env"]:
        if variable["name"] == "OET_SCRIPT_DIRS":
            variable["value"] = ":".join([variable["value"], *map(str, directories.values())])
    return overrides


def install(namespace: Namespace) -> None:
    """The CRD, both Roles and ServiceAccounts, and the test scripts, in `namespace`."""
    namespace.cluster.kubectl("apply", "-f", str(REPO / "crds" / "procedure.yaml"))
    namespace.cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                              "crd/procedures.oet.skao.int")  # fmt: skip
    for role in ("operator", "runner"):
        namespace.kubectl("apply", "-f", str(REPO / "k8s" / "rbac" / f"{role}.yaml"))
    namespace.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "test-scripts"},
                     "data": SCRIPTS})  # fmt: skip


class Operator:
    """`oet-operator` as a real process with the operator ServiceAccount's kubeconfig."""

    def __init__(self, namespace: Namespace, **settings: str) -> None:
        self.namespace = namespace
        self.port = free_port()
        self.metrics_port = free_port()
        self.log = namespace.cluster.dir / f"operator-{namespace.name}-{self.port}.log"
        config = namespace.service_account_kubeconfig("oet-operator")
        self.env = {
            **os.environ,
            "KUBECONFIG": str(config),
            "OET_CONFIG_FILE": os.devnull,
            "OET_KUBE_NAMESPACE": namespace.name,
            "OET_RUNNER_IMAGE": namespace.cluster.image,
            "OET_RUNNER_POD_OVERRIDES": json.dumps(runner_overrides(namespace)),
            "OET_RUNNER_RESOURCES": json.dumps(RUNNER_RESOURCES),
            "OET_STOP_GRACE": "5",
            "OET_ABORT_TIMEOUT": "5",
            "OET_OPERATOR_HEALTH_PORT": str(self.port),
            "OET_OPERATOR_METRICS_PORT": str(self.metrics_port),
            **settings,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Operator:
        """Start it and wait until its /healthz answers."""
        with self.log.open("ab") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "oet.operator.main"],
                                            env=self.env, stdout=out, stderr=out)  # fmt: skip
        wait(lambda: self.healthy(), 60, "the operator's /healthz", self.tail)
        return self

    def healthy(self) -> bool:
        """True when /healthz answers 200."""
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"the operator exited: {self.tail()}")
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def metrics(self) -> Samples:
        """Its /metrics now, parsed (waits until the metrics server answers)."""

        def scrape() -> Samples | None:
            try:
                answer = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5)
            except httpx.HTTPError:
                return None
            return parse_samples(answer.text) if answer.status_code == 200 else None

        found: Samples = wait(scrape, 60, "the operator's /metrics", self.tail)
        return found

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop it (SIGKILL: as if it crashed) and wait for it to exit."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def tail(self) -> str:
        """The end of its log."""
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


def wait(condition: Callable[[], Any], timeout: float, what: str,
         detail: Callable[[], str] = lambda: "") -> Any:  # fmt: skip
    """Poll `condition` until truthy; fail naming `what` (and `detail()`) after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{detail()}")


def create_procedure(namespace: Namespace, pid: int, script: str, **init: Any) -> str:
    """Create Procedure `pid` for a test script (as the REST API would); return its name."""
    name = f"procedure-{pid}"
    namespace.apply({
        "apiVersion": "oet.skao.int/v1alpha1", "kind": "Procedure", "metadata": {"name": name},
        "spec": {"id": pid, "scriptUri": f"file://{SCRIPTS_DIR}/{script}",
                 "init": {"args": [], "kwargs": init}},
    })  # fmt: skip
    return name


def set_desired(namespace: Namespace, name: str, state: str, abort: bool = False,
                **run: Any) -> None:  # fmt: skip
    """Ask for RUNNING (with run kwargs) or STOPPED (with abort), as the REST API would."""
    spec: dict[str, Any] = {"desiredState": state}
    if state == "RUNNING":
        spec["run"] = {"args": [], "kwargs": run}
    if abort:
        spec["abort"] = True
    namespace.kubectl("patch", "procedure", name, "--type=merge", "-p",
                      json.dumps({"spec": spec}))  # fmt: skip


def procedure(namespace: Namespace, name: str) -> Manifest:
    """The Procedure now."""
    return namespace.get("procedure", name)


def wait_state(namespace: Namespace, name: str, states: set[str] | str,
               timeout: float = 120) -> Manifest:  # fmt: skip
    """Wait until the Procedure's status.state is one of `states`; return it."""
    wanted = {states} if isinstance(states, str) else states
    return namespace.wait_for(
        "procedure", name, lambda p: p.get("status", {}).get("state") in wanted, timeout
    )


def runner_pod(namespace: Namespace, name: str) -> Manifest | None:
    """The runner Pod of Procedure `name`, if one exists."""
    pods = json.loads(namespace.kubectl("get", "pods", "-l", f"oet.skao.int/procedure={name}",
                                        "-o", "json").stdout)["items"]  # fmt: skip
    return pods[-1] if pods else None


def jobs_of(namespace: Namespace, name: str) -> list[str]:
    """Names of the runner Jobs of Procedure `name`."""
    out = namespace.kubectl("get", "jobs", "-l", f"oet.skao.int/procedure={name}",
                            "-o", "jsonpath={.items[*].metadata.name}").stdout  # fmt: skip
    return str(out).split()


def script_events(namespace: Namespace, name: str) -> list[Manifest]:
    """The script Events of Procedure `name`, as the API server stores them."""
    found = json.loads(namespace.kubectl("get", "events", "-l", f"oet.skao.int/procedure={name}",
                                         "-o", "json").stdout)["items"]  # fmt: skip
    return list(found)


def runner_pids(namespace: Namespace, name: str) -> list[int]:
    """Host PIDs of the runner process of Procedure `name` (found by its environment)."""
    wanted = {f"OET_PROCEDURE_NAME={name}".encode(),
              f"OET_PROCEDURE_NAMESPACE={namespace.name}".encode()}  # fmt: skip
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = set((entry / "environ").read_bytes().split(b"\0"))
        except OSError:
            continue
        if b"oet.runner" in cmdline and wanted <= environ:
            pids.append(int(entry.name))
    return pids
