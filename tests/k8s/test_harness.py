"""The harness itself: `make cluster` starts a usable cluster and Ctrl-C leaves nothing behind.

A second, short-lived cluster runs beside the session's one (own ports, directory, containerd
and cgroup root), with a Pod running when it is interrupted; afterwards none of its processes,
container processes, shims, mounts, cgroups or files may remain. Both clusters' containerd
roots are cloned from the same cached template (`k8s/testenv/node_template.py`), which must
come out of this unchanged even though the Pod writes over a file of the OET image.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.k8s import node, reaper
from tests.k8s.cluster import REPO, Cluster, ClusterError
from tests.k8s.workloads import cluster_values


def _read_until(pattern: str, process: subprocess.Popen[str]) -> re.Match[str]:
    assert process.stdout is not None
    seen = []
    for line in iter(process.stdout.readline, ""):
        seen.append(line)
        if match := re.search(pattern, line):
            return match
    raise AssertionError(f"`make cluster` ended without {pattern!r}; it said:\n{''.join(seen)}")


@pytest.mark.timeout(600)
def test_interrupted_cluster_stops_everything_it_started_and_unmounts_all(
    cluster: Cluster,
) -> None:
    template = Path(cluster.artefacts["node_template"]["dir"])
    template_before = node.file_states(template)
    command = [sys.executable, "-m", "tests.k8s.cluster"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        kubeconfig = Path(_read_until(r"kubeconfig:\s+(\S+)", process).group(1))
        directory = kubeconfig.parent
        env = {**cluster.env(), "KUBECONFIG": str(kubeconfig)}
        nodes = subprocess.run(["kubectl", "get", "nodes", "-o", "name"], env=env,
                               capture_output=True, text=True, check=True)  # fmt: skip
        assert nodes.stdout.strip() == "node/localhost"
        values = cluster_values()
        pod = {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sleeper"},
            "spec": {"hostNetwork": True, "tolerations": values["tolerations"],
                     "containers": [{"name": "main", "image": cluster.image,
                                     "imagePullPolicy": "Never",
                                     "securityContext": {"runAsUser": 0},
                                     # Overwrites a file of the image's lower layers.
                                     "command": ["sh", "-c", "echo changed >> /etc/os-release"
                                                 " && exec sleep 3600"]}]},
        }  # fmt: skip
        subprocess.run(["kubectl", "apply", "-f", "-"], input=json.dumps(pod), env=env,
                       check=True, capture_output=True, text=True)  # fmt: skip
        subprocess.run(["kubectl", "wait", "--for=jsonpath={.status.phase}=Running",
                        "pod/sleeper", "--timeout=120s"], env=env, check=True,
                       capture_output=True)  # fmt: skip
        seen = subprocess.run(["kubectl", "exec", "sleeper", "--", "cat", "/etc/os-release"],
                              env=env, check=True, capture_output=True, text=True)  # fmt: skip
        assert seen.stdout.endswith("changed\n")
        pids = json.loads((directory / "pids.json").read_text())
        cgroup = "/" + directory.name
        assert node.cgroup_pids(cgroup), "the running Pod's processes are in the node's cgroup"
        assert node.mounts_under(directory), "the running Pod has mounts under the cluster dir"

        process.send_signal(signal.SIGINT)
        process.wait(timeout=180)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()

    assert process.returncode == 0
    assert [name for name, pid in pids.items() if node.pid_alive(pid)] == []
    assert node.shim_pids(directory / "containerd" / "containerd.sock") == []
    assert node.cgroup_pids(cgroup) == set()
    assert not any((hierarchy / directory.name).exists() for hierarchy in node.hierarchies())
    assert node.mounts_under(directory) == []
    assert not directory.exists()
    assert node.file_states(template) == template_before


def test_readme_names_the_cluster_commands_and_make_cluster_runs_this_harness() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Trying OET on Kubernetes\n", 1)[1].split("\n## ", 1)[0]
    commands = [line.split("#")[0].strip() for line in section.splitlines() if line[:2] == "$ "]
    assert commands == ["$ make cluster", "$ make test-k8s", "$ make k8s"]

    dry_run = subprocess.run(["make", "-n", "cluster", "test-k8s", "k8s"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout  # fmt: skip

    assert "-m tests.k8s.cluster" in dry_run
    assert "k8s/testenv/prepare.py" in dry_run
    assert "pytest -m k8s tests/k8s" in dry_run
    assert "tools/k8s_session.py" in dry_run  # run by test_make_k8s.py


def test_cluster_that_cannot_start_fails_with_the_components_own_error() -> None:
    broken = Cluster()
    with socket.socket() as squatter:
        # Something else already listens on the API server's port.
        squatter.bind(("127.0.0.1", broken.ports["apiserver"]))
        squatter.listen()

        with pytest.raises(ClusterError) as failure:
            broken.start()

    message = str(failure.value)
    assert message.startswith("kube-apiserver exited with")
    assert "address already in use" in message
    assert broken.leftovers() == {"processes": [], "mounts": []}
    assert not broken.dir.exists()


@pytest.mark.timeout(600)
def test_next_start_cleans_up_after_a_harness_killed_outright(cluster: Cluster) -> None:
    command = [sys.executable, "-m", "tests.k8s.cluster"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        directory = Path(_read_until(r"kubeconfig:\s+(\S+)", process).group(1)).parent
        pids = json.loads((directory / "pids.json").read_text())
        process.kill()  # no chance to clean up: its components keep running
        process.wait()
        assert all(node.pid_alive(pid) for name, pid in pids.items() if name != "harness")
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()

    assert reaper.reap_abandoned(directory.parent) == [directory]

    assert [name for name, pid in pids.items() if node.pid_alive(pid)] == []
    assert node.shim_pids(directory / "containerd" / "containerd.sock") == []
    assert not any((hierarchy / directory.name).exists() for hierarchy in node.hierarchies())
    assert node.mounts_under(directory) == []
    assert not directory.exists()
