"""Clean up after test clusters whose harness died without stopping them (e.g. SIGKILL).

Why this exists: components run in their own sessions so that Ctrl-C reaches only the
harness, which then stops them in order; if the harness itself is killed outright, they keep
running. Each run records the harness's PID and its components' PIDs in `pids.json`; a later
start finds runs whose harness is gone and stops what they left, checking that each PID still
belongs to that run (its command line names the run's directory) before signalling it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from tests.k8s import node


def _belongs_to(pid: int, directory: Path) -> bool:
    """True when process `pid` is still one of this run's (its argv names the run's dir)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return str(directory).encode() in argv


def reap(directory: Path) -> None:
    """Stop what an abandoned run in `directory` left, unmount it, and delete it."""
    record = directory / "pids.json"
    pids: dict[str, int] = json.loads(record.read_text()) if record.exists() else {}
    pids.pop("harness", None)
    ours = [pid for pid in pids.values() if _belongs_to(pid, directory)]
    ours += node.shim_pids(directory / "containerd" / "containerd.sock")
    for pid in ours:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(node.pid_alive(pid) for pid in ours) and time.monotonic() < deadline:
        time.sleep(0.1)
    node.remove_cgroup_root("/" + directory.name)
    if not node.unmount_all(directory):
        subprocess.run(["rm", "-rf", "--one-file-system", str(directory)], check=False)


def reap_abandoned(parent: Path) -> list[Path]:
    """Reap every run under `parent` whose harness process no longer exists; return them."""
    reaped = []
    for record in parent.glob("oet-k8s-*/pids.json"):
        try:
            harness = int(json.loads(record.read_text()).get("harness", 0))
        except (OSError, ValueError):
            continue
        if harness and not node.pid_alive(harness):
            reap(record.parent)
            reaped.append(record.parent)
    return reaped
