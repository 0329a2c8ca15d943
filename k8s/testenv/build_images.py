"""Build the test node's container images here, daemonless, into a cache of OCI archives.

Why this exists: no registry can be reached, so every image the node runs is made on this
machine: a pause (sandbox) image from a tiny Go program, a Debian Python base made with
debootstrap, and the OET image from the repository's Dockerfile with buildah on that base.
Each is keyed by a hash of its inputs, so it is rebuilt only when they change; the archives
live in `~/.cache/oet/images/` (root: OET_CACHE_DIR), buildah's own storage in
`~/.cache/oet/buildah/`. The node imports the archives into its containerd at start.

    python k8s/testenv/build_images.py    # build what is missing, print names/archives as JSON
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from build_binaries import cache_root, go_version

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SUITE = json.loads((HERE / "versions.json").read_text())["debian_suite"]
BASE_PACKAGES = ["python3", "python3-venv"]
# Bump when a recipe below changes in a way the hashed inputs do not show.
RECIPE = "1"
# What goes into the OET image: changing any of these rebuilds it.
OET_INPUTS = ["Dockerfile", "pyproject.toml", "oet", "scripts"]


def log(message: str) -> None:
    """Progress goes to stderr so stdout stays machine-readable."""
    print(f"[build_images {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(args: list[str], **kwargs: object) -> str:
    """Run a build step, failing with its own output when it fails."""
    log("$ " + " ".join(args))
    done = subprocess.run(args, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"build step failed ({done.returncode}): {' '.join(args)}")
    return str(done.stdout)


def buildah(*args: str) -> str:
    """Run buildah on the harness's own storage, never the machine's default one."""
    storage = cache_root() / "buildah"
    return run(
        [
            "buildah",
            "--root",
            str(storage / "root"),
            "--runroot",
            str(storage / "run"),
            "--storage-driver",
            "overlay",
            *args,
        ]
    )


def image_exists(name: str) -> bool:
    """True when buildah's storage holds an image called `name`."""
    storage = cache_root() / "buildah"
    probe = subprocess.run(
        [
            "buildah",
            "--root",
            str(storage / "root"),
            "--runroot",
            str(storage / "run"),
            "--storage-driver",
            "overlay",
            "inspect",
            "--type",
            "image",
            name,
        ],
        capture_output=True,
    )
    return probe.returncode == 0


def digest_of(*parts: str | Path) -> str:
    """A short hash of strings and of files or directory trees (names and contents)."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            files = sorted(p for p in part.rglob("*") if p.is_file()) if part.is_dir() else [part]
            for file in files:
                if "__pycache__" in file.parts:
                    continue
                digest.update(str(file.relative_to(REPO)).encode() + b"\0")
                digest.update(file.read_bytes())
        else:
            digest.update(part.encode() + b"\0")
    return digest.hexdigest()[:12]


def debian_mirror() -> str:
    """The Debian mirror the machine's apt uses (debootstrap must use a reachable one)."""
    if os.environ.get("OET_DEBIAN_MIRROR"):
        return os.environ["OET_DEBIAN_MIRROR"]
    texts = [p.read_text() for p in sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))]
    for text in texts:
        for stanza in text.split("\n\n"):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.MULTILINE)
            suites = re.search(r"^Suites:(.*)$", stanza, re.MULTILINE)
            if uris and suites and SUITE in suites.group(1).split():
                return uris.group(1)
    sources = Path("/etc/apt/sources.list")
    if sources.exists():
        line = re.search(rf"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+{SUITE}\s", sources.read_text(), re.M)
        if line:
            return line.group(1)
    return "http://deb.debian.org/debian"


def unmount_under(root: Path) -> None:
    """Unmount anything mounted under `root` (debootstrap mounts /proc and /sys in its target)."""
    prefix = str(root.resolve()) + "/"
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for point in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False)


def remove_tree(root: Path) -> None:
    """Delete a build tree without ever following a mount into the host."""
    unmount_under(root)
    subprocess.run(["rm", "-rf", "--one-file-system", str(root)], check=False)


def ensure_base() -> str:
    """The Debian Python base image (debootstrap, then into buildah); return its name."""
    mirror = debian_mirror()
    name = f"localhost/oet-python-base:{SUITE}-{digest_of(SUITE, mirror, *BASE_PACKAGES, RECIPE)}"
    if image_exists(name):
        return name
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="oet-base-", dir=cache_root()))
    rootfs = work / "rootfs"
    try:
        run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                SUITE,
                str(rootfs),
                mirror,
            ]
        )
        unmount_under(rootfs)
        for junk in ["var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc"]:
            for item in (rootfs / junk).glob("*"):
                subprocess.run(["rm", "-rf", "--one-file-system", str(item)], check=True)
        for junk in ["etc/resolv.conf", "etc/hostname"]:
            (rootfs / junk).unlink(missing_ok=True)
        container = buildah("from", "scratch").strip()
        mount = Path(buildah("mount", container).strip())
        # Copy with owners and modes kept (buildah copy would make every file root's).
        subprocess.run(
            f"tar -C {rootfs} -cp --numeric-owner . | tar -C {mount} -xp --numeric-owner",
            shell=True,
            check=True,
        )
        buildah("umount", container)
        buildah(
            "config",
            "--env",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "--env",
            "LANG=C.UTF-8",
            "--cmd",
            "python3",
            container,
        )
        buildah("commit", "--rm", container, name)
    finally:
        remove_tree(work)
    log(f"base {name} built in {time.monotonic() - started:.1f} s")
    return name


def export(name: str, archive: Path) -> None:
    """Write an image to an OCI archive containerd can import, then drop it from buildah."""
    partial = archive.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    buildah("push", name, f"oci-archive:{partial}:{name}")
    partial.rename(archive)
    buildah("rmi", name)


# Archives of other source trees are kept this long: several worktrees (or CI jobs) share the
# cache, and deleting another tree's image between its build and its import breaks its run.
PRUNE_AFTER_SECONDS = 24 * 3600


def prune(kind: str, keep: Path) -> None:
    """Delete archives of one kind unused for a day, so the cache does not grow forever."""
    now = time.time()
    for old in keep.parent.glob(f"{kind}-*.tar"):
        if old != keep and now - old.stat().st_mtime > PRUNE_AFTER_SECONDS:
            old.unlink(missing_ok=True)


def ensure_pause() -> dict[str, str]:
    """The sandbox image: a static Go program that sleeps until it is signalled."""
    source = HERE / "pause"
    tag = digest_of(source, go_version(), RECIPE)
    name = f"localhost/oet-pause:{tag}"
    archive = cache_root() / "images" / f"pause-{tag}.tar"
    if not archive.exists():
        started = time.monotonic()
        archive.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="oet-pause-") as tmp:
            env = dict(os.environ, CGO_ENABLED="0", GOCACHE=f"{tmp}/gocache", GOFLAGS="")
            binary = f"{tmp}/pause"
            run(["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", binary, "."],
                cwd=source, env=env)  # fmt: skip
            container = buildah("from", "scratch").strip()
            buildah("copy", container, binary, "/pause")
            buildah("config", "--entrypoint", '["/pause"]', container)
            buildah("commit", "--rm", container, name)
        export(name, archive)
        prune("pause", archive)
        log(f"pause image built in {time.monotonic() - started:.1f} s")
    return {"name": name, "archive": str(archive)}


def ensure_oet(python: str) -> dict[str, str]:
    """The OET image from the repository's Dockerfile, on the Debian base."""
    base = ensure_base()
    tag = digest_of(*(REPO / p for p in OET_INPUTS), base, RECIPE)
    name = f"localhost/oet:{tag}"
    archive = cache_root() / "images" / f"oet-{tag}.tar"
    if not archive.exists():
        started = time.monotonic()
        archive.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="oet-image-") as tmp:
            context = Path(tmp)
            # Build the wheel from a copy, so no stale build/ tree in the checkout leaks in.
            source = context / "source"
            source.mkdir()
            for item in ["pyproject.toml", "README.md", "oet"]:
                run(["cp", "-r", str(REPO / item), str(source / item)])
            run([python, "-m", "pip", "wheel", "-q", "--wheel-dir", str(context / "wheels"),
                 str(source)])  # fmt: skip
            run(["cp", "-r", str(REPO / "scripts"), str(context / "scripts")])
            buildah(
                "bud",
                "--isolation",
                "chroot",
                "--build-arg",
                f"BASE={base}",
                "-f",
                str(REPO / "Dockerfile"),
                "-t",
                name,
                str(context),
            )
        export(name, archive)
        prune("oet", archive)
        log(f"OET image built in {time.monotonic() - started:.1f} s")
    os.utime(archive)  # used now: prune() keeps it for a day
    return {"name": name, "archive": str(archive), "base": base}


def ensure(python: str = sys.executable) -> dict[str, dict[str, str]]:
    """Build whatever image is missing; return each image's name and archive."""
    return {"pause": ensure_pause(), "oet": ensure_oet(python)}


if __name__ == "__main__":
    print(json.dumps(ensure()))
