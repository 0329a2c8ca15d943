"""Build, once per image set, a containerd root that already holds the node's images.

Why this exists: importing the OET image archive into a fresh containerd (unpacking it into
overlayfs snapshots) took most of a warm cluster start, on every start. Instead the images are
imported once into a template root, cached in `~/.cache/oet/node-templates/<key>/root`, and
each cluster's containerd starts on a cheap copy of it (`tests/k8s/node.py`, `RootClone`).
The key hashes what the root holds: the containerd version, the snapshotter and each image's
name (its inputs hash) and archive size.

A template is built in a `.building-*` directory next to the final one and renamed into place
only when complete, so a crash never leaves a half-built template under a real key. The newest
few templates are kept; older ones go once unused for a while (a cluster copies its template
seconds after `prepare.py` names it, so a template named within the grace period stays).

    python k8s/testenv/node_template.py   # build the template for the current images
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import build_images
from build_binaries import cache_root

# Bump when the way a template is made changes in a way the key does not show.
RECIPE = "1"
SNAPSHOTTER = "overlayfs"
# What clusters hard-link from a template (prepare.py hands them this list): content blobs,
# named by their digest, and the unpacked layers of committed snapshots (read-only lower dirs;
# a container writes only to an upper dir of its own). The rest (bolt databases) is mutable.
IMMUTABLE = (
    Path("io.containerd.content.v1.content/blobs"),
    Path(f"io.containerd.snapshotter.v1.{SNAPSHOTTER}/snapshots"),
)
# Templates kept whatever their age; older ones are deleted once unused for the grace period.
KEEP = 3
GRACE_SECONDS = 3600
# containerd plugins the template build does without (the CRI plugin included: it loads the
# images from containerd's metadata when each cluster's containerd starts).
DISABLED_PLUGINS = [
    "io.containerd.grpc.v1.cri",
    "io.containerd.internal.v1.opt",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.aufs",
]


def log(message: str) -> None:
    """Progress goes to stderr so stdout stays machine-readable."""
    print(f"[node_template {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def templates_dir() -> Path:
    """Where the templates are cached."""
    return cache_root() / "node-templates"


def containerd_version() -> str:
    """The installed containerd's version line (a different containerd gets its own template)."""
    done = subprocess.run(["containerd", "--version"], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def key_of(images: dict[str, dict[str, str]]) -> str:
    """The template's key: a hash of the containerd version, the snapshotter and the images."""
    digest = hashlib.sha256()
    for part in [RECIPE, SNAPSHOTTER, containerd_version()]:
        digest.update(part.encode() + b"\0")
    for kind in sorted(images):
        archive = Path(images[kind]["archive"])
        for part in [kind, images[kind]["name"], archive.name, str(archive.stat().st_size)]:
            digest.update(part.encode() + b"\0")
    return digest.hexdigest()[:12]


def _config(root: Path, state: Path) -> Path:
    plugins = ", ".join(f'"{name}"' for name in DISABLED_PLUGINS)
    path = state / "config.toml"
    path.write_text(f"""version = 2
root = "{root}"
state = "{state}"
disabled_plugins = [{plugins}]
[grpc]
  address = "{state}/containerd.sock"
[ttrpc]
  address = "{state}/containerd.sock.ttrpc"
[metrics]
  address = ""
""")
    return path


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the template's containerd (its own process group), SIGKILL it if it lingers."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def _import(root: Path, images: dict[str, dict[str, str]]) -> None:
    """Run a containerd on `root` just long enough to import (and unpack) every image."""
    # A short directory under /tmp: a unix socket's path is limited to 108 bytes.
    state = Path(tempfile.mkdtemp(prefix="oet-template-"))
    log_file = root.parent / "containerd.log"
    try:
        config = _config(root, state)
        with log_file.open("wb") as out:
            process = subprocess.Popen(["containerd", "--config", str(config)], stdout=out,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True)  # fmt: skip
        try:
            ctr = ["ctr", "--address", str(state / "containerd.sock"), "--namespace", "k8s.io"]
            deadline = time.monotonic() + 60
            while subprocess.run([*ctr, "version"], capture_output=True).returncode != 0:
                if process.poll() is not None or time.monotonic() > deadline:
                    sys.stderr.write(log_file.read_text(errors="replace"))
                    raise SystemExit("the template's containerd did not start")
                time.sleep(0.1)
            for image in images.values():
                build_images.run([*ctr, "images", "import", "--snapshotter", SNAPSHOTTER,
                                  image["archive"]])  # fmt: skip
            listed = build_images.run([*ctr, "images", "list", "--quiet"]).split()
            missing = [i["name"] for i in images.values() if i["name"] not in listed]
            if missing:
                raise SystemExit(f"images missing from the template after import: {missing}")
            # Clusters hard-link the snapshots' files: only committed (read-only) ones may exist.
            snapshots = build_images.run([*ctr, "snapshots", "--snapshotter", SNAPSHOTTER, "ls"])
            kinds = {line.split()[-1] for line in snapshots.splitlines()[1:] if line.strip()}
            if kinds != {"Committed"}:
                raise SystemExit(f"the template's snapshots are not all committed: {kinds}")
        finally:
            _stop(process)
    finally:
        build_images.unmount_under(state)
        build_images.unmount_under(root)
        subprocess.run(["rm", "-rf", "--one-file-system", str(state)], check=False)


def build(images: dict[str, dict[str, str]], final: Path) -> None:
    """Build the template for `images` in a temporary directory and rename it to `final`."""
    started = time.monotonic()
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".building-", dir=final.parent))
    try:
        (work / "root").mkdir(mode=0o711)
        _import(work / "root", images)
        record = {"images": images, "mutable": mutable_states(work / "root")}
        (work / "template.json").write_text(json.dumps(record, indent=2))
        try:
            work.rename(final)
        except OSError:
            if not final.is_dir():
                raise
            log(f"{final.name} was built meanwhile by another run; keeping that one")
    finally:
        build_images.remove_tree(work)
    log(f"node template {final.name} built in {time.monotonic() - started:.1f} s")


def prune(keep: Path) -> None:
    """Delete templates beyond the newest KEEP that nobody named for GRACE_SECONDS.

    Also deletes leftovers of builds that crashed (`.building-*` older than the grace period).
    """
    now = time.time()
    directory = keep.parent

    def named_at(path: Path) -> float | None:
        """When it was last named (its mtime); None if another run removed it meanwhile."""
        try:
            return path.stat().st_mtime
        except FileNotFoundError:
            return None

    found = [(p, named_at(p)) for p in directory.iterdir() if not p.name.startswith(".")]
    templates = sorted(((p, t) for p, t in found if t is not None and p.is_dir()),
                       key=lambda pair: pair[1], reverse=True)  # fmt: skip
    for old, named in templates[KEEP:]:
        if old != keep and now - named > GRACE_SECONDS:
            try:  # renamed first, so a half-deleted tree is never taken for a template
                doomed = _set_aside(old)
            except OSError:
                continue  # another run is deleting it
            build_images.remove_tree(doomed)
            log(f"deleted the unused node template {old.name}")
    for leftover in directory.glob(".*-*"):
        set_at = named_at(leftover)
        if set_at is not None and now - set_at > GRACE_SECONDS:
            build_images.remove_tree(leftover)


def _set_aside(template: Path) -> Path:
    """Rename `template` to a name of its own for deleting (no two runs pick the same)."""
    doomed = template.parent / f".deleting-{template.name}-{os.getpid()}-{time.time_ns()}"
    template.rename(doomed)
    return doomed


def mutable_states(root: Path) -> dict[str, list[int]]:
    """Size and mtime of each file a containerd writes in place (its bolt databases).

    That is every file outside the blobs and snapshot layers, which clusters hard-link; the
    list is the one prepare.py hands the clusters.
    """
    states = {}
    for directory, subdirectories, files in os.walk(root):
        if Path(directory).relative_to(root) in IMMUTABLE:
            subdirectories.clear()
            continue
        for name in sorted(files):
            info = (Path(directory) / name).lstat()
            states[str((Path(directory) / name).relative_to(root))] = [
                info.st_size,
                info.st_mtime_ns,
            ]
    return states


def intact(template: Path) -> bool:
    """True when the template is complete and no containerd has written to its databases."""
    try:
        record = json.loads((template / "template.json").read_text())
    except (OSError, ValueError):
        return False
    return bool(record.get("mutable") == mutable_states(template / "root"))


def ensure(images: dict[str, dict[str, str]]) -> Path:
    """The template directory for `images` (built when missing); its containerd root is `root`."""
    final = templates_dir() / key_of(images)
    if final.is_dir() and not intact(final):
        log(f"node template {final.name} was changed after it was built; building it again")
        with contextlib.suppress(FileNotFoundError):  # another run set it aside first
            build_images.remove_tree(_set_aside(final))
    if not final.is_dir():
        build(images, final)
    os.utime(final)  # named now: prune() keeps it
    prune(final)
    return final


if __name__ == "__main__":
    print(ensure(build_images.ensure(sys.executable)))
