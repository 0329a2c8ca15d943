"""Render and inspect the Helm chart `charts/oet` with the helm the repository builds.

Why this exists: the chart's tests (rendering ones anywhere, install ones on the test cluster)
share one way to find helm (built from the Go module proxy and cached by
`k8s/testenv/build_binaries.py`), to render the chart and to pick objects out of the result.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "charts" / "oet"
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))
BUILD_BINARIES = REPO / "k8s" / "testenv" / "build_binaries.py"
Manifest = dict[str, Any]


@cache
def helm_binary() -> Path:
    """helm, built once (about 2-6 minutes on a busy 2-core machine) and cached."""
    done = subprocess.run(
        [sys.executable, str(BUILD_BINARIES), "--component", "helm"],
        stdout=subprocess.PIPE,
        stderr=None,
        text=True,
        check=True,
    )
    return Path(json.loads(done.stdout)["helm"]) / "helm"


def helm(
    *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run helm; with `check`, a failure raises with helm's own output."""
    done = subprocess.run(
        [str(helm_binary()), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done


def values_args(values_file: Path | None = None, **sets: str) -> list[str]:
    """helm arguments for a values file and `--set` pairs (dots in keys are helm's)."""
    args = ["-f", str(values_file)] if values_file else []
    for key, value in sets.items():
        args += ["--set", f"{key.replace('__', '.')}={value}"]
    return args


def render(
    values_file: Path | None = None, namespace: str = "oet", release: str = "oet", **sets: str
) -> list[Manifest]:
    """The chart's objects (CRD included) as `helm template` renders them."""
    out = helm(
        "template", release, str(CHART), "--namespace", namespace, "--include-crds",
        *values_args(values_file, **sets),
    ).stdout  # fmt: skip
    return [doc for doc in yaml.safe_load_all(out) if doc]


def find(objects: list[Manifest], kind: str, component: str | None = None) -> list[Manifest]:
    """The rendered objects of one kind (and component label, when given)."""
    return [
        o
        for o in objects
        if o["kind"] == kind
        and (
            component is None
            or o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component
        )
    ]


def one(objects: list[Manifest], kind: str, component: str | None = None) -> Manifest:
    """The single rendered object of a kind (and component)."""
    found = find(objects, kind, component)
    assert len(found) == 1, f"expected one {kind} {component or ''}, found {len(found)}"
    return found[0]


def missing_components() -> list[str]:
    """What the chart's Deployments run that is not in the package yet (empty: all there)."""
    missing = []
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    if "oet-operator" not in scripts:
        missing.append("the operator (console script oet-operator)")
    if importlib.util.find_spec("oet.api.backends.kubernetes") is None:
        missing.append("the REST API's Kubernetes backend (oet.api.backends.kubernetes)")
    return missing
