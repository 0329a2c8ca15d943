"""`oet-rest` on the Kubernetes backend for tests, from a process that did its imports already.

Why this exists: the Kubernetes variant of an end-to-end test starts a fresh `oet-rest`, and
about 1 s of each start went on importing FastAPI, pydantic and the Kubernetes client. So
once such a server is up, the tests start one spare interpreter that imports
`oet.api.server` and the Kubernetes backend and then waits on its stdin, while the test runs
(mostly waiting for runner Pods). The next Kubernetes-backend server is that spare: it reads
its order (environment, working directory, log file, command-line arguments) and calls
`oet.api.server.main(argv)`, the function the `oet-rest` command runs. Everything else, the
settings, the app and the backend, starts as in a cold process, from the order's
environment, so a test sees the same server either way. Measured on two test modules
(41 Kubernetes tests): 102-114 s with spares, 134-135 s without.

Embedded-backend servers start cold: their start waits mostly for the runner zygote, not for
imports, and a spare that imported the Kubernetes client cost them more CPU than it saved.
Spares are made by the `make_server` fixture only (a bench that uses `Server` gets none).
Interpreter-start settings (``PYTHON*`` variables) cannot change once a process runs: a
server whose environment differs from the spare's in those starts cold too. A spare whose
parent dies sees its stdin close and exits; the test session stops the last one (by PID).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass
class _Spare:
    process: subprocess.Popen[bytes]
    start_up: dict[str, str]
    """Its interpreter-start settings (see `_start_up_settings`)."""


_spare: _Spare | None = None


def _on_kubernetes(env: Mapping[str, str]) -> bool:
    return env.get("OET_BACKEND") == "kubernetes"


def _start_up_settings(env: Mapping[str, str]) -> dict[str, str]:
    """The variables an interpreter reads when it starts (module search path, flags)."""
    return {k: v for k, v in env.items() if k.startswith("PYTHON")}


def _cold(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "oet.api.server", *argv]
    with log.open("ab") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)


def launch(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """An `oet-rest` with ``argv`` and ``env`` in the repo, its output appended to ``log``.

    On the Kubernetes backend the waiting spare becomes it, if there is one that can;
    otherwise a cold start.
    """
    global _spare
    if not _on_kubernetes(env):
        return _cold(argv, env, log)
    spare, _spare = _spare, None
    if spare is None:
        return _cold(argv, env, log)
    process = spare.process
    if process.poll() is not None or _start_up_settings(env) != spare.start_up:
        _stop(process)
        return _cold(argv, env, log)
    order = {"argv": argv, "env": env, "cwd": str(REPO), "log": str(log)}
    assert process.stdin is not None
    try:
        process.stdin.write(json.dumps(order).encode() + b"\n")
        process.stdin.close()
    except OSError:  # it died between poll() and now
        _stop(process)
        return _cold(argv, env, log)
    return process


def prepare(env: Mapping[str, str]) -> None:
    """After a server with ``env`` started: a spare for the next, if it is likely to want one.

    Only after a Kubernetes-backend server, and unless a spare is waiting already.
    """
    global _spare
    if not _on_kubernetes(env) or (_spare is not None and _spare.process.poll() is None):
        return
    discard()
    env = dict(os.environ)
    process = subprocess.Popen([sys.executable, "-m", "tests.warm_server"], env=env, cwd=REPO,
                               stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    _spare = _Spare(process, _start_up_settings(env))


def discard() -> None:
    """Stop the waiting spare, if any (by its PID), and wait for it."""
    global _spare
    spare, _spare = _spare, None
    if spare is not None:
        _stop(spare.process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError):
        if process.stdin is not None:
            process.stdin.close()
    if process.poll() is None:
        process.kill()
    process.wait()


def _serve_when_ordered() -> None:
    """The spare: import, wait for the order, then be that `oet-rest`."""
    try:
        import oet.api.backends.kubernetes  # the backend a test server will choose
        import oet.api.server
    except BaseException:
        failure: str | None = traceback.format_exc()
    else:
        failure = None
    line = sys.stdin.buffer.readline()
    if not line:  # discarded, or the test session is gone
        return
    order = json.loads(line)
    os.environ.clear()
    os.environ.update(order["env"])
    os.chdir(order["cwd"])
    log = os.open(order["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    for source, target in ((null, 0), (log, 1), (log, 2)):
        os.dup2(source, target)
    os.close(log)
    os.close(null)
    if failure is not None:  # in the server's log, where a cold start would have put it
        sys.stderr.write(failure)
        raise SystemExit(1)
    oet.api.server.main(order["argv"])


if __name__ == "__main__":
    _serve_when_ordered()
