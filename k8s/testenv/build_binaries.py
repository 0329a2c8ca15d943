"""Build the test cluster's Go binaries from the Go module proxy, once, into a cache.

Why this exists: no image registry or release download is reachable on our machines, but the Go
module proxy is. Kubernetes' own module cannot be `go install`ed (its go.mod has `replace`
directives for its staging modules), so we build from a throwaway module that requires it and
pins each staging module to the matching v0.x release. etcd gets its own throwaway module so
its dependency versions never bend Kubernetes' ones.

Binaries land in `~/.cache/oet/<component>-v<version>-<inputs hash>/bin/` (override the root
with OET_CACHE_DIR); the private Go build and module caches used for the build are deleted
afterwards. Prints the bin directories as JSON on stdout; progress goes to stderr.

    python k8s/testenv/build_binaries.py            # build what is missing, print paths
    python k8s/testenv/build_binaries.py --check    # print paths, exit 1 if anything is missing
    python k8s/testenv/build_binaries.py --component helm   # only helm (for `make chart`)
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VERSIONS = json.loads((HERE / "versions.json").read_text())

# Bump when the way binaries are built changes (flags, module trick), to invalidate the cache.
RECIPE = "1"
# A component's own recipe revision, appended to RECIPE so others' caches stay valid.
COMPONENT_RECIPES = {"helm": ".h2"}

KUBE_COMMANDS = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kubectl",
]


def cache_root() -> Path:
    """The directory under which every built artefact of the test cluster is cached."""
    return Path(os.environ.get("OET_CACHE_DIR", Path.home() / ".cache" / "oet"))


def log(message: str) -> None:
    """Progress goes to stderr so stdout stays machine-readable."""
    print(f"[build_binaries {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def go_version() -> str:
    """The Go toolchain version: part of the inputs, since it changes the binaries."""
    if shutil.which("go") is None:
        raise SystemExit("building the test cluster needs Go >= 1.26 on PATH (`go` not found)")
    return subprocess.run(
        ["go", "env", "GOVERSION"], check=True, capture_output=True, text=True
    ).stdout.strip()


def inputs_hash(component: str, version: str) -> str:
    """A short hash of everything that decides a component's binaries."""
    digest = hashlib.sha256()
    recipe = RECIPE + COMPONENT_RECIPES.get(component, "")
    digest.update(f"{component}\n{version}\n{go_version()}\n{recipe}\n".encode())
    return digest.hexdigest()[:12]


def component_dir(component: str, version: str) -> Path:
    """Where a component's binaries are cached, keyed by version and inputs."""
    return cache_root() / f"{component}-v{version}-{inputs_hash(component, version)}"


def run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run a build step, failing with its own output when it fails."""
    log("$ " + " ".join(args))
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"build step failed ({done.returncode}): {' '.join(args)}")
    return done.stdout


def go_env(work: Path) -> dict[str, str]:
    """A Go environment with private caches, so cleaning them touches nobody else's."""
    env = dict(os.environ)
    env.update(
        GOCACHE=str(work / "gocache"),
        GOMODCACHE=str(work / "gomodcache"),
        GOFLAGS="-buildvcs=false -modcacherw",
        CGO_ENABLED="0",
        GOTOOLCHAIN="local",
    )
    return env


def version_ldflags(version: str) -> str:
    """Link-time values so `--version` reports the real release instead of v0.0.0-master."""
    major, minor, _ = version.split(".")
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    values = {
        "gitVersion": f"v{version}",
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "buildDate": now,
    }
    flags = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {package}.{key}={value}" for key, value in values.items()]
    return " ".join(flags)


def staging_modules(gomod: str) -> list[str]:
    """The `k8s.io/X v0.0.0` requirements of k8s.io/kubernetes (its staging modules)."""
    pattern = r"^\s*(k8s\.io/[\w.\-/]+) v0\.0\.0(?:\s*//.*)?$"
    return sorted(set(re.findall(pattern, gomod, re.MULTILINE)))


def build_kubernetes(version: str, target: Path, work: Path) -> None:
    """Build the control plane, the kubelet and kubectl from one throwaway module."""
    env = go_env(work)
    module = work / "kube"
    module.mkdir()
    run(["go", "mod", "init", "oet.local/kubebuild"], module, env)
    info = json.loads(
        run(["go", "mod", "download", "-json", f"k8s.io/kubernetes@v{version}"], module, env)
    )
    upstream = Path(info["GoMod"]).read_text()
    replaces = [f"\t{m} => {m} v0.{version.split('.', 1)[1]}" for m in staging_modules(upstream)]
    log(f"{len(replaces)} staging modules pinned")
    gomod = (module / "go.mod").read_text()
    gomod += (
        f"\nrequire k8s.io/kubernetes v{version}\n\nreplace (\n" + "\n".join(replaces) + "\n)\n"
    )
    (module / "go.mod").write_text(gomod)
    imports = "\n".join(f'\t_ "k8s.io/kubernetes/cmd/{c}"' for c in KUBE_COMMANDS)
    (module / "tools.go").write_text(
        f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n"
    )
    run(["go", "mod", "tidy"], module, env)
    (target / "bin").mkdir(parents=True, exist_ok=True)
    packages = [f"k8s.io/kubernetes/cmd/{c}" for c in KUBE_COMMANDS]
    ldflags = version_ldflags(version)
    run(
        ["go", "build", "-trimpath", "-ldflags", ldflags, "-o", str(target / "bin"), *packages],
        module,
        env,
    )


def build_etcd(version: str, target: Path, work: Path) -> None:
    """Build etcd from its server module, which has a main package."""
    env = go_env(work)
    module = work / "etcd"
    module.mkdir()
    run(["go", "mod", "init", "oet.local/etcdbuild"], module, env)
    (module / "tools.go").write_text(
        '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n'
    )
    run(["go", "get", f"go.etcd.io/etcd/server/v3@v{version}"], module, env)
    run(["go", "mod", "tidy"], module, env)
    (target / "bin").mkdir(parents=True, exist_ok=True)
    run(
        [
            "go",
            "build",
            "-trimpath",
            "-ldflags",
            "-s -w",
            "-o",
            str(target / "bin" / "etcd"),
            "go.etcd.io/etcd/server/v3",
        ],
        module,
        env,
    )


def helm_ldflags(version: str, gomod: str) -> str:
    """Link-time values helm's own release build sets: its version, and the Kubernetes
    version of its client libraries, which `helm template` and `helm lint` assume when no
    cluster is asked (left unset, they assume v1.20 and refuse charts needing newer)."""
    found = re.search(r"^\s*k8s\.io/client-go v0\.(\d+)\.\d+", gomod, re.MULTILINE)
    if found is None:
        raise SystemExit(f"helm v{version}'s go.mod names no k8s.io/client-go version")
    flags = ["-s", "-w", f"-X helm.sh/helm/v3/internal/version.version=v{version}"]
    for package in ("helm.sh/helm/v3/pkg/lint/rules", "helm.sh/helm/v3/pkg/chartutil"):
        flags += [f"-X {package}.k8sVersionMajor=1", f"-X {package}.k8sVersionMinor={found[1]}"]
    return " ".join(flags)


def build_helm(version: str, target: Path, work: Path) -> None:
    """Build helm with a plain `go install` (its module has no replace directives)."""
    env = go_env(work)
    env["GOBIN"] = str(target / "bin")
    module = f"helm.sh/helm/v3@v{version}"
    info = json.loads(run(["go", "mod", "download", "-json", module], work, env))
    ldflags = helm_ldflags(version, Path(info["GoMod"]).read_text())
    (target / "bin").mkdir(parents=True, exist_ok=True)
    run(["go", "install", "-trimpath", "-ldflags", ldflags, f"helm.sh/helm/v3/cmd/helm@v{version}"],
        work, env)  # fmt: skip


BUILDERS = {"etcd": build_etcd, "kubernetes": build_kubernetes, "helm": build_helm}
EXPECTED = {"kubernetes": KUBE_COMMANDS, "etcd": ["etcd"], "helm": ["helm"]}


def complete(directory: Path, component: str) -> bool:
    """True when a cached component has all its binaries and finished building."""
    return (directory / "done.json").exists() and all(
        (directory / "bin" / name).exists() for name in EXPECTED[component]
    )


def ensure(component: str) -> Path:
    """Build one component unless its cache entry is complete; return its bin directory."""
    version = VERSIONS[component]
    target = component_dir(component, version)
    if complete(target, component):
        return target / "bin"
    log(f"building {component} v{version} into {target} (cold: many minutes on 2 cores)")
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"oet-build-{component}-") as tmp:
        work = Path(tmp)
        try:
            BUILDERS[component](version, partial, work)
        finally:
            # The private caches are large (the module cache is read-only files); go clean
            # knows how to remove both.
            subprocess.run(
                ["go", "clean", "-cache", "-modcache"],
                env=go_env(work),
                capture_output=True,
                check=False,
            )
    seconds = round(time.monotonic() - started, 1)
    (partial / "done.json").write_text(
        json.dumps({"version": version, "go": go_version(), "build_seconds": seconds}) + "\n"
    )
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    log(f"{component} built in {seconds} s")
    return target / "bin"


def main() -> None:
    """Build (or only check) every component and print their bin directories as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="do not build; exit 1 if missing")
    parser.add_argument(
        "--component", action="append", choices=sorted(BUILDERS), help="only these components"
    )
    args = parser.parse_args()
    paths: dict[str, str] = {}
    missing = False
    for component in args.component or BUILDERS:
        target = component_dir(component, VERSIONS[component])
        if args.check:
            missing = missing or not complete(target, component)
            paths[component] = str(target / "bin")
        else:
            paths[component] = str(ensure(component))
    print(json.dumps(paths))
    if missing:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
