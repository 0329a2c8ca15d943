"""The test cluster's processes: how each is started, waited for, and stopped.

Why this exists: start order and readiness checks are where a cluster fails, and a failure
must read as the component's own error (the tail of its log), never as a vague timeout. Every
process runs in its own session, so the harness can signal its whole process group without
touching anything it did not start.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from tests.k8s import node, pki

if TYPE_CHECKING:
    from tests.k8s.cluster import Cluster

PORTS = [
    "etcd",
    "etcd-peer",
    "apiserver",
    "controller-manager",
    "scheduler",
    "kubelet",
    "kubelet-healthz",
]
SERVICE_RANGE = "10.0.0.0/24"


def free_port() -> int:
    """A free TCP port on 127.0.0.1 below the ephemeral range.

    Ports the kernel hands out for outgoing connections (the ephemeral range) can be taken by
    the API server's own connections between choosing a port and a component binding it.
    """
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    while True:
        port = random.randrange(max(1024, low - 12000), low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def kill_quietly(pid: int) -> None:
    """SIGKILL one process we own, ignoring that it may already be gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


class Process:
    """One component process, its log file, and how to stop it."""

    def __init__(self, name: str, argv: list[str], log: Path) -> None:
        self.name = name
        self.log = log
        with log.open("wb") as out:
            self.popen = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        self.pid = self.popen.pid

    def alive(self) -> bool:
        """True while the process has not exited."""
        return self.popen.poll() is None

    def tail(self, lines: int = 25) -> str:
        """The end of the component's log: its own account of what went wrong."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def terminate(self, timeout: float) -> None:
        """SIGTERM its process group, then SIGKILL it after `timeout` seconds."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.popen.wait(10)
        # Children left in the group (mount helpers, iptables) go with it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)


def _launch(cluster: Cluster, name: str, argv: list[str]) -> Process:
    process = Process(name, argv, cluster.dir / "logs" / f"{name}.log")
    cluster.processes.append(process)
    pids = {"harness": os.getpid(), **{p.name: p.pid for p in cluster.processes}}
    (cluster.dir / "pids.json").write_text(json.dumps(pids, indent=2))
    return process


def _wait(cluster: Cluster, what: str, check: Callable[[], bool], timeout: float) -> None:
    """Poll `check` until true; fail with the log of any component that died meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        for process in cluster.processes:
            if not process.alive():
                raise _error(process, f"exited with {process.popen.returncode}")
        try:
            if check():
                return
        except (OSError, ValueError, subprocess.SubprocessError):
            pass
        if time.monotonic() > deadline:
            raise _error(cluster.processes[-1], f"not ready after {timeout:.0f} s ({what})")
        time.sleep(0.1)


def _error(process: Process, what: str) -> Exception:
    from tests.k8s.cluster import ClusterError

    return ClusterError(f"{process.name} {what}; the end of its log ({process.log}):\n"
                        f"{process.tail()}")  # fmt: skip


def _https_ok(cluster: Cluster, path: str) -> bool:
    context = ssl.create_default_context(cafile=str(cluster.ca_file))
    request = urllib.request.Request(
        cluster.server + path, headers={"Authorization": f"Bearer {cluster.admin_token}"}
    )
    with urllib.request.urlopen(request, timeout=5, context=context) as response:
        return bool(response.status == 200)


def _write_credentials(cluster: Cluster) -> None:
    pki.make_pki(cluster.pki)
    pki.write_token_file(cluster.pki / "tokens.csv", cluster.identities)
    for role, identity in cluster.identities.items():
        text = pki.kubeconfig(cluster.server, cluster.ca_file, identity.user, identity.token)
        path = cluster.kubeconfig if role == "admin" else cluster.dir / f"{role}.kubeconfig"
        path.write_text(text)
        path.chmod(0o600)


def start_all(cluster: Cluster, timeout: float) -> None:
    """Start the control plane, then the node, waiting for each to be ready.

    The node's containerd root is cloned from the image template while the control plane
    starts (the clone is mostly the kernel making hard links).
    """
    (cluster.dir / "logs").mkdir(parents=True, exist_ok=True)
    template = cluster.artefacts["node_template"]
    shared = [Path(path) for path in template["shared"]]
    clone = node.RootClone(Path(template["dir"]) / "root", cluster.dir / "containerd" / "root",
                           shared)  # fmt: skip
    try:
        _write_credentials(cluster)
        start_control_plane(cluster, timeout)
    except BaseException:
        clone.abort()  # nothing may write under the run's directory once it is stopped
        raise
    clone.finish(timeout)
    start_node(cluster, timeout)


def start_control_plane(cluster: Cluster, timeout: float) -> None:
    """etcd (fresh data), then the API server, then the controllers and the scheduler."""
    bins, ports, p = Path(cluster.artefacts["bin"]["kubernetes"]), cluster.ports, cluster.pki
    etcd_url = f"http://127.0.0.1:{ports['etcd']}"
    peer_url = f"http://127.0.0.1:{ports['etcd-peer']}"
    _launch(cluster, "etcd", [
        str(Path(cluster.artefacts["bin"]["etcd"]) / "etcd"), "--name", "oet",
        "--data-dir", str(cluster.dir / "etcd"), "--unsafe-no-fsync",
        "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
        "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
        "--initial-cluster", f"oet={peer_url}", "--log-level", "warn",
    ])  # fmt: skip

    def etcd_healthy() -> bool:
        with urllib.request.urlopen(f"{etcd_url}/health", timeout=5) as response:
            return bool(json.load(response).get("health") == "true")

    _wait(cluster, "etcd /health", etcd_healthy, timeout)
    _launch(cluster, "kube-apiserver", [
        str(bins / "kube-apiserver"), f"--etcd-servers={etcd_url}",
        "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
        f"--secure-port={ports['apiserver']}", "--endpoint-reconciler-type=none",
        f"--tls-cert-file={p / 'apiserver.crt'}", f"--tls-private-key-file={p / 'apiserver.key'}",
        f"--client-ca-file={p / 'ca.crt'}", f"--token-auth-file={p / 'tokens.csv'}",
        "--authorization-mode=Node,RBAC", "--allow-privileged=true",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={p / 'sa.pub'}",
        f"--service-account-signing-key-file={p / 'sa.key'}",
        f"--service-cluster-ip-range={SERVICE_RANGE}",
        "--kubelet-preferred-address-types=Hostname", "--profiling=false",
    ])  # fmt: skip
    _wait(cluster, "kube-apiserver /readyz", lambda: _https_ok(cluster, "/readyz"), timeout)
    _launch(cluster, "kube-controller-manager", [
        str(bins / "kube-controller-manager"),
        f"--kubeconfig={cluster.dir / 'controller-manager.kubeconfig'}",
        "--bind-address=127.0.0.1", f"--secure-port={ports['controller-manager']}",
        "--leader-elect=false", f"--service-account-private-key-file={p / 'sa.key'}",
        f"--root-ca-file={p / 'ca.crt'}", f"--service-cluster-ip-range={SERVICE_RANGE}",
        "--controllers=*",
    ])  # fmt: skip
    _launch(cluster, "kube-scheduler", [
        str(bins / "kube-scheduler"), f"--kubeconfig={cluster.dir / 'scheduler.kubeconfig'}",
        "--bind-address=127.0.0.1", f"--secure-port={ports['scheduler']}",
        "--leader-elect=false",
    ])  # fmt: skip


def start_node(cluster: Cluster, timeout: float) -> None:
    """containerd (on its root cloned from the image template), then the kubelet; wait for the Node.

    The template (built by prepare.py) already holds the images, imported and unpacked, so the
    CRI plugin lists them as soon as containerd is up and `imagePullPolicy: Never` Pods run.
    """
    state = cluster.dir / "containerd"
    config = node.containerd_config(state, cluster.artefacts["images"]["pause"]["name"])
    _launch(cluster, "containerd", ["containerd", "--config", str(config)])
    ctr = ["ctr", "--address", str(cluster.containerd_socket), "--namespace", "k8s.io"]
    _wait(cluster, "containerd socket",
          lambda: subprocess.run([*ctr, "version"], capture_output=True).returncode == 0,
          timeout)  # fmt: skip
    node.make_cgroup_root(cluster.cgroup)
    kubelet_dir = cluster.dir / "kubelet"
    kubelet_dir.mkdir()
    kubelet_config = node.kubelet_config(
        kubelet_dir, cluster.containerd_socket, cluster.ports["kubelet"],
        cluster.ports["kubelet-healthz"], cluster.cgroup,
    )  # fmt: skip
    _launch(cluster, "kubelet", [
        str(Path(cluster.artefacts["bin"]["kubernetes"]) / "kubelet"),
        f"--config={kubelet_config}", f"--kubeconfig={cluster.dir / 'kubelet.kubeconfig'}",
        f"--root-dir={kubelet_dir / 'root'}", f"--cert-dir={kubelet_dir / 'pki'}",
        f"--hostname-override={cluster.node_name}",
    ])  # fmt: skip

    def node_and_account_exist() -> bool:
        nodes = cluster.kubectl("get", "node", cluster.node_name, check=False)
        account = cluster.kubectl("get", "serviceaccount", "default", "-n", "default",
                                  check=False)  # fmt: skip
        return nodes.returncode == 0 and account.returncode == 0

    _wait(cluster, "Node registered, default ServiceAccount", node_and_account_exist, timeout)
