"""Start and stop a real single-node Kubernetes cluster on 127.0.0.1, for tests and for trying.

Why this exists: the Kubernetes half of OET must be tested against the real thing, and this
module is the one owner of that cluster's life: etcd, kube-apiserver, controller-manager,
scheduler, containerd and kubelet, started in order on free ports in a fresh directory, and
stopped in reverse order with everything they left (container processes, cgroups, mounts),
also when a test fails or the run is interrupted. It only ever signals processes it started
(recorded by PID) and shims of its own containerd.

Binaries and images come from `k8s/testenv/prepare.py` (built once, cached in ~/.cache/oet).

    python -m tests.k8s.cluster      # start, print how to use kubectl, stop on Ctrl-C
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.k8s import components, node, pki, reaper

REPO = Path(__file__).resolve().parents[2]
PREPARE = REPO / "k8s" / "testenv" / "prepare.py"


class ClusterError(RuntimeError):
    """The cluster could not start; the message carries the failing component's own words."""


def prepare(python: str = sys.executable) -> dict[str, Any]:
    """Build or find the binaries and images; return their locations."""
    done = subprocess.run(
        [python, str(PREPARE)], cwd=PREPARE.parent, stdout=subprocess.PIPE, stderr=None, text=True
    )
    if done.returncode != 0:
        raise ClusterError(f"preparing the test cluster failed (exit {done.returncode})")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


class Cluster:
    """One running test cluster: its directory, credentials, endpoints and processes."""

    def __init__(self, parent: Path | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="oet-k8s-", dir=parent or "/tmp"))
        self.id = self.dir.name
        self.ports = {name: components.free_port() for name in components.PORTS}
        self.server = f"https://127.0.0.1:{self.ports['apiserver']}"
        self.pki = self.dir / "pki"
        self.ca_file = self.pki / "ca.crt"
        self.kubeconfig = self.dir / "admin.kubeconfig"
        self.identities = pki.make_identities()
        self.admin_token = self.identities["admin"].token
        self.node_name = pki.NODE_NAME
        self.cgroup = f"/{self.id}"
        self.containerd_socket = self.dir / "containerd" / "containerd.sock"
        self.processes: list[components.Process] = []
        self.artefacts: dict[str, Any] = {}
        self._stopped = False

    # -- what tests use ---------------------------------------------------------------
    @property
    def image(self) -> str:
        """The OET image's name on the node (pull policy Never: it exists only there)."""
        return str(self.artefacts["images"]["oet"]["name"])

    @property
    def bin_dir(self) -> Path:
        """Where kubectl and the Kubernetes binaries are."""
        return Path(self.artefacts["bin"]["kubernetes"])

    def env(self) -> dict[str, str]:
        """An environment with this cluster's kubectl first on PATH and its admin KUBECONFIG."""
        path = f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
        return {**os.environ, "PATH": path, "KUBECONFIG": str(self.kubeconfig)}

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = 120,
        kubeconfig: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run this cluster's kubectl (as the admin unless another kubeconfig is given).

        Raises with kubectl's stderr if it fails and `check` is true.
        """
        config = kubeconfig or self.kubeconfig
        done = subprocess.run(
            [str(self.bin_dir / "kubectl"), "--kubeconfig", str(config), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
        return done

    def service_account_kubeconfig(self, namespace: str, name: str) -> Path:
        """A kubeconfig for ServiceAccount `name` (created if missing), with a 1 h token."""
        if self.kubectl("get", "serviceaccount", name, "-n", namespace, check=False).returncode:
            self.kubectl("create", "serviceaccount", name, "-n", namespace)
        token = self.kubectl("create", "token", name, "-n", namespace, "--duration=1h").stdout
        path = self.dir / f"sa-{namespace}-{name}.kubeconfig"
        user = f"system:serviceaccount:{namespace}:{name}"
        path.write_text(pki.kubeconfig(self.server, self.ca_file, user, token.strip(), namespace))
        return path

    # -- life -------------------------------------------------------------------------
    def start(self, timeout: float = 120.0) -> Cluster:
        """Start every component in order and wait until Pods can be created; return self."""
        atexit.register(self.stop)
        for abandoned in reaper.reap_abandoned(self.dir.parent):
            print(f"[cluster] cleaned up abandoned run {abandoned}", file=sys.stderr)
        try:
            self.artefacts = prepare()
            components.start_all(self, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop everything this cluster started, in reverse order; unmount; delete its dir.

        Every step runs even if an earlier one fails; the first failure is raised at the end.
        """
        if self._stopped:
            return
        self._stopped = True
        by_name = {p.name: p for p in self.processes}

        def terminate(name: str, timeout: float) -> None:
            if name in by_name:
                by_name[name].terminate(timeout)

        def kill_shims() -> None:
            for pid in node.shim_pids(self.containerd_socket):
                components.kill_quietly(pid)

        left: list[str] = []
        steps: list[Callable[[], None]] = [
            lambda: terminate("kube-controller-manager", 15),
            lambda: terminate("kube-scheduler", 15),
            lambda: terminate("kubelet", 15),
            lambda: node.remove_cgroup_root(self.cgroup),  # kills what the Pods still ran
            lambda: terminate("containerd", 10),
            kill_shims,
            lambda: left.extend(node.unmount_all(self.dir)),
            lambda: terminate("kube-apiserver", 30),  # before etcd, or it hangs
            lambda: terminate("etcd", 30),
        ]
        errors: list[Exception] = []
        for step in steps:
            try:
                step()
            except Exception as error:
                errors.append(error)
        if left:
            print(f"[cluster] could not unmount: {left}", file=sys.stderr)
        elif os.environ.get("OET_K8S_KEEP"):
            (self.dir / "pids.json").unlink(missing_ok=True)  # stopped: nothing to reap
        else:
            subprocess.run(["rm", "-rf", "--one-file-system", str(self.dir)], check=False)
        atexit.unregister(self.stop)
        if errors:
            raise errors[0]

    def leftovers(self) -> dict[str, list[str]]:
        """What of this cluster still exists after stop: processes, shims, mounts, cgroups."""
        alive = [p.name for p in self.processes if p.alive()]
        shims = [str(pid) for pid in node.shim_pids(self.containerd_socket)]
        pods = [str(pid) for pid in node.cgroup_pids(self.cgroup)]
        return {
            "processes": alive + shims + pods,
            "mounts": node.mounts_under(self.dir) if self.dir.exists() else [],
        }

    def usage(self) -> str:
        """How to use this cluster with kubectl from a shell."""
        kubectl = self.bin_dir / "kubectl"
        return (
            f"Test cluster {self.id} is running (Ctrl-C stops it).\n"
            f"  API server:  {self.server}\n"
            f"  kubeconfig:  {self.kubeconfig}\n"
            f"  OET image:   {self.image}\n"
            f"Use it from another shell:\n"
            f"  export KUBECONFIG={self.kubeconfig} PATH={kubectl.parent}:$PATH\n"
            f"  kubectl get nodes\n"
            f"Pods need hostNetwork, imagePullPolicy Never and the not-ready toleration; see\n"
            f"  k8s/testenv/cluster-values.yaml\n"
        )


def _raise_keyboard_interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> None:
    """`make cluster`: start a cluster, print how to use it, stop it on Ctrl-C or SIGTERM."""
    # Ctrl-C works even when started from a shell that ignores SIGINT for background jobs.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_keyboard_interrupt)
    cluster = Cluster()
    status = 0
    try:
        started = time.monotonic()
        cluster.start()
        print(f"(started in {time.monotonic() - started:.1f} s)\n" + cluster.usage(), flush=True)
        while all(p.alive() for p in cluster.processes):
            time.sleep(1)
        dead = [p for p in cluster.processes if not p.alive()]
        print(f"[cluster] {dead[0].name} exited:\n{dead[0].tail()}", file=sys.stderr)
        status = 1
    except ClusterError as error:
        print(f"[cluster] {error}", file=sys.stderr)
        status = 1
    except KeyboardInterrupt:
        pass
    finally:
        print("[cluster] stopping", file=sys.stderr, flush=True)
        cluster.stop()
    raise SystemExit(status)


if __name__ == "__main__":
    main()
