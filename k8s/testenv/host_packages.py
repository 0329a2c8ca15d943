"""Install the Debian packages the test cluster runs on, when (and only when) they are missing.

Why this exists: containerd, runc, the CNI plugins and the image tools (buildah, debootstrap)
come from Debian rather than from a download, and a fresh CI machine has none of them.
The list lives in versions.json next to this file. `apt-get update` runs once, only if
something has to be installed. Needs root (CI runs as root).

    python k8s/testenv/host_packages.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def wanted() -> list[str]:
    """The Debian packages the harness needs, from versions.json."""
    packages: list[str] = json.loads((HERE / "versions.json").read_text())["debian_packages"]
    return packages


def missing(packages: list[str]) -> list[str]:
    """The packages of `packages` that dpkg does not report as installed."""
    absent = []
    for package in packages:
        query = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True
        )
        if query.returncode != 0 or "install ok installed" not in query.stdout:
            absent.append(package)
    return absent


def ensure() -> list[str]:
    """Install whatever is missing; return what was installed."""
    absent = missing(wanted())
    if not absent:
        return []
    if os.geteuid() != 0:
        raise SystemExit(
            "the test cluster needs these Debian packages, and installing them needs root: "
            + " ".join(absent)
        )
    print(f"[host_packages] installing {' '.join(absent)}", file=sys.stderr, flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=sys.stderr)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", *absent], check=True, env=env, stdout=sys.stderr
    )
    return absent


if __name__ == "__main__":
    ensure()
