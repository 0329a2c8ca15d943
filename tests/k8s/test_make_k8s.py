"""`make k8s`, the README's way to try OET on Kubernetes: the docs' first steps work against
it with `oet` and `kubectl` as it tells you to point them, and Ctrl-C leaves nothing behind.

It starts a cluster of its own (beside the session's), as a person's `make k8s` would.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.commands import OET
from tests.conftest import REPO, free_port, wait_for

pytestmark = pytest.mark.timeout(600)


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_make_k8s_serves_oet_and_kubectl_as_printed_and_ctrl_c_stops_everything() -> None:
    port = free_port()
    with tempfile.TemporaryFile() as out:
        make = subprocess.Popen(
            ["make", "-s", "k8s", f"PORT={port}"],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal's foreground job
        )

        def printed() -> str:
            out.seek(0)
            text = out.read().decode(errors="replace")
            assert make.poll() is None, f"make k8s exited early:\n{text}"
            return text if "export OET_REST_URI=" in text else ""

        try:
            text = str(wait_for(printed, 420, "make k8s to print how to use it"))
            kubeconfig = re.search(r"export KUBECONFIG=(\S+)", text)
            rest_uri = re.search(r"export OET_REST_URI=(\S+)", text)
            cluster_dir = re.search(r"\(logs in (\S+)\)", text)
            assert kubeconfig, text
            assert rest_uri, text
            assert cluster_dir, text
            env = {**os.environ, "OET_REST_URI": rest_uri[1], "KUBECONFIG": kubeconfig[1]}

            def oet(*args: str) -> str:
                done = subprocess.run([*OET, *args], env=env, capture_output=True, text=True,
                                      timeout=120)  # fmt: skip
                assert done.returncode == 0, f"oet {' '.join(args)}: {done.stderr}"
                return done.stdout

            assert "CREATED" in oet("create", "file://scripts/hello_world.py", "--subarray_id=1")
            assert "COMPLETED" in oet("start", "--wait", "Ada")
            kubectl = re.search(r"PATH=(\S+?):\$PATH", text)
            binaries = f"{kubectl[1]}{os.pathsep}" if kubectl else ""
            listed = subprocess.run(
                ["kubectl", "-n", "oet", "get", "procedures"],
                env={**env, "PATH": binaries + os.environ["PATH"]},
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            ).stdout
            assert re.search(r"procedure-1\s+1\s+file://scripts/hello_world.py\s+COMPLETED", listed)
        finally:
            os.killpg(make.pid, signal.SIGINT)  # Ctrl-C
            make.wait(180)

    assert not Path(cluster_dir[1]).exists()
    assert _processes_mentioning(cluster_dir[1]) == []
