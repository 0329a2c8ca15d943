"""`make k8s`: OET on the Kubernetes backend, on the local test cluster, until Ctrl-C.

Why this exists: to try the whole Kubernetes deployment by hand with the same pieces the
tests use. It starts the test cluster (tests/k8s/cluster.py), installs the Procedure CRD and
the RBAC in k8s/rbac/ into namespace `oet`, runs the operator (`oet-operator`) and
`oet-rest` with OET_BACKEND=kubernetes, each under its own ServiceAccount, prints how to
point kubectl and oet at them, and stops everything it started (by PID) on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.k8s.cluster import Cluster  # noqa: E402
from tests.k8s.workloads import cluster_values  # noqa: E402

NAMESPACE = "oet"
BIN = Path(sys.executable).parent


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


SCRIPTS = REPO / "scripts"
SCRIPT_DIRS = f"/scripts:{SCRIPTS}"
"""The image's scripts and this checkout's, for the API and the runners alike."""


def _runner_overrides(cluster: Cluster) -> str:
    """What runner Pods need on the test cluster, as `runner_pod_overrides`.

    Runners see this checkout's `scripts/` at its own path, and start in the directory the
    API starts in, so `file://scripts/hello_world.py` (the user docs' relative form) names
    the same file for the API, which checks it at create, and for the runner, which runs it.
    """
    values = cluster_values()
    env = {**values["env"], "KUBERNETES_SERVICE_PORT": str(cluster.ports["apiserver"]),
           "OET_SCRIPT_DIRS": SCRIPT_DIRS}  # fmt: skip
    return json.dumps({"spec": {
        "hostNetwork": values["hostNetwork"],
        "tolerations": values["tolerations"],
        "volumes": [{"name": "checkout-scripts",
                     "hostPath": {"path": str(SCRIPTS), "type": "Directory"}}],
        "containers": [{"name": "runner", "workingDir": str(REPO),
                        "env": [{"name": k, "value": v} for k, v in env.items()],
                        "volumeMounts": [{"name": "checkout-scripts", "mountPath": str(SCRIPTS),
                                          "readOnly": True}]}],
    }})  # fmt: skip


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)


def main() -> None:
    """Start everything, print how to use it, stop everything on Ctrl-C."""
    parser = argparse.ArgumentParser(prog="make k8s", description=__doc__)
    parser.add_argument("--port", type=int, default=5000, help="port of the REST API")
    port = parser.parse_args().port
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    cluster = Cluster()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        cluster.start()
        cluster.kubectl("apply", "-f", str(REPO / "crds" / "procedure.yaml"))
        cluster.kubectl("create", "namespace", NAMESPACE)
        cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                        "crd/procedures.oet.skao.int")  # fmt: skip
        for rbac in sorted((REPO / "k8s" / "rbac").glob("*.yaml")):
            cluster.kubectl("apply", "-n", NAMESPACE, "-f", str(rbac))
        base = {**cluster.env(), "OET_KUBE_NAMESPACE": NAMESPACE}
        config = cluster.service_account_kubeconfig(NAMESPACE, "oet-operator")
        env = {**base, "KUBECONFIG": str(config), "OET_RUNNER_IMAGE": cluster.image,
               "OET_RUNNER_IMAGE_PULL_POLICY": "Never",
               "OET_RUNNER_POD_OVERRIDES": _runner_overrides(cluster)}  # fmt: skip
        processes.append(_start([str(BIN / "oet-operator")], env, cluster.dir / "operator.log"))
        config = cluster.service_account_kubeconfig(NAMESPACE, "oet-api")
        env = {**base, "KUBECONFIG": str(config), "OET_BACKEND": "kubernetes",
               "OET_SCRIPT_DIRS": SCRIPT_DIRS}  # fmt: skip
        rest = [str(BIN / "oet-rest"), "--port", str(port)]
        processes.append(_start(rest, env, cluster.dir / "rest.log"))
        url = f"http://127.0.0.1:{port}/api/v1.0/procedures"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or processes[-1].poll() is not None:
                raise SystemExit(f"oet-rest did not start; see {cluster.dir / 'rest.log'}")
            time.sleep(0.2)
        print(
            f"{cluster.usage()}"
            f"OET on Kubernetes (namespace {NAMESPACE}):\n"
            f"  operator:    running (logs in {cluster.dir})\n"
            f"  REST API:    {url}  (logs in {cluster.dir})\n"
            f"  export OET_REST_URI={url}\n"
            f"  oet create file://scripts/hello_world.py\n"
            f"  oet list\n"
            f"  kubectl -n {NAMESPACE} get procedures\n",
            flush=True,
        )
        while all(p.poll() is None for p in processes):
            time.sleep(1)
        print("[k8s] a process exited; stopping", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    finally:
        print("[k8s] stopping", file=sys.stderr, flush=True)
        for process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        cluster.stop()


if __name__ == "__main__":
    main()
