"""The test node's configuration (containerd, kubelet) and the clean-up of what it leaves.

Why this exists: the node is where a test cluster touches the host (cgroups, mounts,
container processes), so the settings this host needs and the way to undo everything live
together here. Each cluster gets its own containerd (own root, state and socket under the
cluster's directory) and its own cgroup root, so two clusters on one machine never see, or
clean up, each other's Pods.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

CGROUP_V1 = Path("/sys/fs/cgroup")


class RootClone:
    """One node's own containerd root, cloned from a template root in the background.

    The immutable files are hard-linked (cheap, and nothing ever writes them in place), the
    rest is copied; every directory is the clone's own, so whatever the node's containerd
    creates, renames or deletes leaves the template and other clones as they were. The
    hard-linking runs while the control plane starts; `finish()` completes the clone.
    """

    def __init__(self, template: Path, root: Path, shared: Iterable[Path]) -> None:
        """Start cloning ``template`` into ``root`` (new); ``shared``: directories (relative)
        whose files are never written in place, so may be hard-linked (from prepare.py)."""
        if root.exists():
            raise FileExistsError(f"{root} exists: a containerd root is cloned into a new path")
        self.template = template
        self.root = root
        self.shared = frozenset(shared)
        root.parent.mkdir(parents=True, exist_ok=True)
        # Hard links need one filesystem; across two (OET_CACHE_DIR elsewhere) copy it all.
        self.linked = template.stat().st_dev == root.parent.stat().st_dev
        self.process = subprocess.Popen(
            ["cp", "-a", *(["--link"] if self.linked else []), str(template), str(root)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip

    def abort(self) -> None:
        """Stop cloning (the start failed or was interrupted) and wait until `cp` has exited."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate()

    def finish(self, timeout: float) -> None:
        """Wait for the hard links, then give the clone real copies of the mutable files."""
        try:
            _, stderr = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
            raise
        if self.process.returncode != 0:
            raise OSError(f"cloning {self.template} failed: {stderr.decode(errors='replace')}")
        if not self.linked:
            return  # copied whole: every file is the clone's own already
        for directory, subdirectories, files in os.walk(self.root):
            relative = Path(directory).relative_to(self.root)
            if relative in self.shared:
                subdirectories.clear()
                continue
            for name in files:
                # Unlink first: copying onto the hard link would write into the template's file.
                (self.root / relative / name).unlink()
                shutil.copy2(self.template / relative / name, self.root / relative / name)


def file_states(root: Path) -> dict[str, tuple[int, int, int]]:
    """Each file's (size, mtime in ns, mode) under `root`: what writing into the tree changes."""
    states = {}
    for directory, _, files in os.walk(root):
        for name in files:
            info = (Path(directory) / name).lstat()
            relative = str((Path(directory) / name).relative_to(root))
            states[relative] = (info.st_size, info.st_mtime_ns, info.st_mode)
    return states


def containerd_config(directory: Path, pause_image: str) -> Path:
    """Write containerd's config for this node; return its path.

    `restrict_oom_score_adj` is needed because root here lacks CAP_SYS_RESOURCE (else every
    sandbox fails with "can't get final child's PID from pipe"); there is no CNI config on
    purpose, Pods use the host's network.
    """
    (directory / "net.d").mkdir(parents=True, exist_ok=True)
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    text = f"""version = 2
root = "{directory}/root"
state = "{directory}/state"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "{directory}/containerd.sock"
[ttrpc]
  address = "{directory}/containerd.sock.ttrpc"
[metrics]
  address = ""
[{cri}]
  sandbox_image = "{pause_image}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_apparmor = true
[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
[{cri}.cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "{directory}/net.d"
"""
    path = directory / "config.toml"
    path.write_text(text)
    return path


def kubelet_config(
    directory: Path, socket: Path, port: int, healthz_port: int, cgroup: str
) -> Path:
    """Write the kubelet's config file for this host; return its path."""
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": "127.0.0.1",
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        # Logs and exec from the API server, without a kubelet client certificate: test only.
        "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
        "authorization": {"mode": "AlwaysAllow"},
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": cgroup,
        "failCgroupV1": False,
        "failSwapOn": False,
        "containerRuntimeEndpoint": f"unix://{socket}",
        "podLogsDir": str(directory / "pod-logs"),
        "resolvConf": "/etc/resolv.conf",
        # Images cannot be pulled back here: never garbage-collect them, never evict for disk.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "1Mi",
            "nodefs.available": "1%",
            "nodefs.inodesFree": "1%",
            "imagefs.available": "1%",
        },
        "serializeImagePulls": False,
    }
    path = directory / "kubelet-config.json"
    path.write_text(json.dumps(config, indent=2))
    return path


def hierarchies() -> list[Path]:
    """The cgroup hierarchy mounts (cpu, memory, ..., unified), or the one cgroup v2 root."""
    if (CGROUP_V1 / "cgroup.controllers").exists():
        return [CGROUP_V1]
    return sorted(p for p in CGROUP_V1.iterdir() if p.is_dir())


def make_cgroup_root(name: str) -> None:
    """Create the node's own cgroup root in every v1 hierarchy (the kubelet insists it exists)."""
    for hierarchy in hierarchies():
        if hierarchy.name == "unified":
            continue
        group = hierarchy / name.lstrip("/")
        if group.parent != hierarchy:
            raise ValueError(f"a cgroup root is one level below a hierarchy, not {name!r}")
        group.mkdir(exist_ok=True)
        if hierarchy.name == "cpuset":
            for knob in ("cpuset.cpus", "cpuset.mems"):
                (group / knob).write_text((hierarchy / knob).read_text())


def cgroup_pids(name: str) -> set[int]:
    """Every process in the node's cgroup subtree: what the node's Pods still run."""
    pids: set[int] = set()
    for hierarchy in hierarchies():
        root = hierarchy / name.lstrip("/")
        # os.walk, unlike Path.rglob, carries on when a Pod's cgroup vanishes mid-walk.
        for directory, _, files in os.walk(root):
            if "cgroup.procs" in files:
                try:
                    text = (Path(directory) / "cgroup.procs").read_text()
                except OSError:
                    continue
                pids.update(int(p) for p in text.split())
    return pids


def remove_cgroup_root(name: str, timeout: float = 10.0) -> None:
    """Kill what is left in the node's cgroups, then remove them, deepest first."""
    deadline = time.monotonic() + timeout
    while (pids := cgroup_pids(name)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    for hierarchy in hierarchies():
        root = hierarchy / name.lstrip("/")
        if not root.exists():
            continue
        groups = [Path(directory) for directory, _, _ in os.walk(root)]
        for group in sorted(groups, key=lambda p: -len(p.parts)):
            _rmdir_retrying(group, deadline)
        _rmdir_retrying(root, deadline)


def _rmdir_retrying(group: Path, deadline: float) -> None:
    while True:
        try:
            group.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                return
            time.sleep(0.1)


def pid_alive(pid: int) -> bool:
    """True while process `pid` exists and is not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def shim_pids(socket: Path) -> list[int]:
    """containerd shims serving this node's containerd (they outlive it, reparented to init)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and b"containerd-shim" in argv[0] and str(socket).encode() in argv:
            found.append(int(proc.name))
    return found


def mounts_under(directory: Path) -> list[str]:
    """Mount points at or below `directory`, deepest first."""
    prefix = str(directory.resolve())
    points = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        point = line.split()[1].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return sorted(points, key=len, reverse=True)


def unmount_all(directory: Path) -> list[str]:
    """Unmount all below `directory` (volumes, shm, netns, rootfs); return what stays mounted."""
    for _ in range(3):
        points = mounts_under(directory)
        if not points:
            return []
        for point in points:
            done = subprocess.run(["umount", point], capture_output=True)
            if done.returncode != 0:
                subprocess.run(["umount", "-l", point], capture_output=True)
    return mounts_under(directory)
