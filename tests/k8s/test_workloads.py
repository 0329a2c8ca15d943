"""The test cluster runs the OET image the way a production node would, limits included.

Each test runs a real Pod or Job in containerd/runc on the node and asserts what a user of
`kubectl` would see: phases, exit codes, termination reasons, logs.
"""

from __future__ import annotations

import subprocess
import time

from tests.k8s.workloads import Namespace, container, job_condition, pod_phase, terminated


def test_oet_image_runs_oet_help_and_its_logs_read_back(namespace: Namespace) -> None:
    namespace.run_pod("oet-help", container(["oet", "--help"]))

    pod = namespace.wait_pod_finished("oet-help")

    assert pod_phase(pod) == "Succeeded", terminated(pod)
    logs = namespace.logs("oet-help")
    assert "Usage: oet" in logs
    assert "describe" in logs


def test_oet_image_has_its_entry_points_scripts_and_a_non_root_user(
    namespace: Namespace,
) -> None:
    probe = (
        "import os, shutil; "
        "print('uid', os.getuid()); "
        "print('scripts', sorted(os.listdir('/scripts'))); "
        "print('commands', [bool(shutil.which(c)) for c in ('oet', 'oet-rest', 'oet-runner')])"
    )
    namespace.run_pod("entry-points", container(["python3", "-c", probe]))

    pod = namespace.wait_pod_finished("entry-points")

    assert pod_phase(pod) == "Succeeded", terminated(pod)
    logs = namespace.logs("entry-points")
    assert "uid 1000" in logs
    assert "'hello_world.py'" in logs
    assert "commands [True, True, True]" in logs


def test_job_with_no_retries_fails_with_its_containers_exit_code(namespace: Namespace) -> None:
    script = "import sys; print('giving up on purpose', flush=True); sys.exit(3)"
    namespace.run_job("exits-three", container(["python3", "-c", script]), backoff_limit=0)

    job = namespace.wait_for("job", "exits-three", lambda j: job_condition(j, "Failed") is not None)

    assert job["status"].get("failed") == 1
    pods = namespace.kubectl("get", "pods", "-l", "job-name=exits-three", "-o",
                             "jsonpath={.items[*].status.containerStatuses[0].state.terminated"
                             ".exitCode}").stdout  # fmt: skip
    assert pods.split() == ["3"]
    assert "giving up on purpose" in namespace.logs("job/exits-three")


RESTRICTED_PROBE = """
import os
try:
    open('/written-by-test', 'w')
    print('write to / allowed')
except OSError as error:
    print('write to / refused:', os.strerror(error.errno))
status = dict(line.split(':', 1) for line in open('/proc/self/status'))
print('uid', os.getuid(), 'CapEff', status['CapEff'].strip(), 'Seccomp', status['Seccomp'].strip())
"""


def test_restricted_pod_runs_and_cannot_write_to_its_root_filesystem(
    namespace: Namespace,
) -> None:
    restricted = {
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    namespace.run_pod(
        "restricted",
        container(["python3", "-c", RESTRICTED_PROBE], securityContext=restricted),
    )

    pod = namespace.wait_pod_finished("restricted")

    assert pod_phase(pod) == "Succeeded", terminated(pod)
    logs = namespace.logs("restricted")
    assert "write to / refused: Read-only file system" in logs
    # Non-root, no effective capabilities, seccomp filter mode (2) on.
    assert "uid 1000 CapEff 0000000000000000 Seccomp 2" in logs


def test_pod_over_its_memory_limit_ends_oom_killed(namespace: Namespace) -> None:
    hog = "chunks = []\nwhile True:\n    chunks.append(b'x' * (8 << 20))\n"
    limits = {"limits": {"memory": "64Mi"}, "requests": {"memory": "64Mi"}}
    namespace.run_pod("memory-hog", container(["python3", "-c", hog], resources=limits))

    pod = namespace.wait_pod_finished("memory-hog")

    assert pod_phase(pod) == "Failed"
    assert terminated(pod).get("reason") == "OOMKilled"
    assert terminated(pod).get("exitCode") == 137


SIGTERM_PROBE = """
import signal, sys, time
def stop(signum, frame):
    print('received', signal.Signals(signum).name, flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print('ready', flush=True)
while True:
    time.sleep(1)
"""


def test_deleting_a_running_pod_delivers_sigterm_to_its_process(namespace: Namespace) -> None:
    namespace.run_pod("graceful", container(["python3", "-c", SIGTERM_PROBE]),
                      terminationGracePeriodSeconds=60)  # fmt: skip
    namespace.wait_pod_running("graceful")
    follow = subprocess.Popen(
        [str(namespace.cluster.bin_dir / "kubectl"), "--kubeconfig",
         str(namespace.cluster.kubeconfig), "-n", namespace.name, "logs", "-f", "graceful"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert follow.stdout is not None
        assert follow.stdout.readline().strip() == "ready"
        started = time.monotonic()
        namespace.kubectl("delete", "pod", "graceful", "--wait=false")

        line = follow.stdout.readline().strip()

        assert line == "received SIGTERM"
        # The process exited on its own, long before the 60 s grace period could kill it.
        follow.wait(timeout=30)
        assert time.monotonic() - started < 30
    finally:
        follow.kill()
        follow.communicate()
