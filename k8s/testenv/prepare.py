"""Make everything the test cluster needs exist: Debian packages, binaries, images.

Why this exists: one entry point for `make cluster-build` and for the harness, so a cold
build happens before a test session starts (pytest's per-test timeout is far shorter than a
cold build) and a warm one costs only a few hash checks. Prints, as JSON on stdout, the bin
directories, the image names/archives and the node template (a containerd root holding the
images, and which of its directories clusters may hard-link: see `node_template.py`);
progress and timings go to stderr.

    nice -n 10 python k8s/testenv/prepare.py
"""

from __future__ import annotations

import json
import sys
import time

import build_binaries
import build_images
import host_packages
import node_template


def main() -> None:
    """Install, build, and print where everything is."""
    timings: dict[str, float] = {}
    started = time.monotonic()
    host_packages.ensure()
    timings["debian packages"] = time.monotonic() - started
    bins: dict[str, str] = {}
    for component in build_binaries.BUILDERS:
        step = time.monotonic()
        bins[component] = str(build_binaries.ensure(component))
        timings[component] = time.monotonic() - step
    step = time.monotonic()
    images = build_images.ensure(sys.executable)
    timings["images"] = time.monotonic() - step
    step = time.monotonic()
    template = node_template.ensure(images)
    timings["node template"] = time.monotonic() - step
    summary = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in timings.items())
    print(f"[prepare] ready: {summary}", file=sys.stderr, flush=True)
    node = {"dir": str(template), "shared": [str(path) for path in node_template.IMMUTABLE]}
    print(json.dumps({"bin": bins, "images": images, "node_template": node}))


if __name__ == "__main__":
    main()
