"""The server under test as a local process: starting one, and reading its /proc figures."""

import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclasses.dataclass(frozen=True)
class LocalServer:
    """A server process this benchmark started."""

    url: str
    log: Path
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    def exited(self) -> bool:
        return self.process.poll() is not None


@contextlib.contextmanager
def own_server(workdir: Path, source: Path, profile: Path | None) -> Iterator[LocalServer]:
    """Run ``python -m oet.api.server`` from ``source`` on a free loopback port.

    The server gets a fresh database in ``workdir``; with ``profile`` it runs
    under cProfile, which writes its statistics there when the server exits.
    Stops it afterwards: SIGTERM (SIGINT when profiled), then SIGKILL.
    """
    if not (source / "oet" / "__init__.py").is_file():
        raise ValueError(f"{source} holds no oet package to run the server from")
    port = free_port()
    log = workdir / "server.log"
    env = {
        **os.environ,
        "OET_DB_PATH": str(workdir / "oet.sqlite3"),
        "OET_SCRIPT_DIRS": tempfile.gettempdir(),  # the benchmark writes its scripts there
    }
    profiler = ["-m", "cProfile", "-o", str(profile.resolve())] if profile else []
    command = [sys.executable, *profiler, "-m", "oet.api.server", "--port", str(port)]
    with log.open("wb") as out:
        server = subprocess.Popen(
            [*command, "--log-level", "warning"],
            cwd=source,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield LocalServer(f"http://127.0.0.1:{port}/api/v1.0", log, server)
    finally:
        # uvicorn re-raises the signal once shut down: SIGINT lets cProfile write its file
        server.send_signal(signal.SIGINT if profile else signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def proc_status(pid: int) -> dict[str, str]:
    """``/proc/<pid>/status`` as a mapping."""
    text = Path(f"/proc/{pid}/status").read_text()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (its runners)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def memory_of(pid: int) -> dict[str, float]:
    """The server's and its runners' memory, in MB."""
    status = proc_status(pid)
    runner_rss = 0.0
    runners = children(pid)
    for child in runners:
        with contextlib.suppress(OSError, KeyError):
            runner_rss += int(proc_status(child)["VmRSS"].split()[0]) / 1024
    return {
        "rss": int(status["VmRSS"].split()[0]) / 1024,
        "hwm": int(status["VmHWM"].split()[0]) / 1024,
        "threads": float(status["Threads"]),
        "runners": float(len(runners)),
        "runner_rss": runner_rss,
    }


def _rollup(pid: int) -> dict[str, float]:
    """``/proc/<pid>/smaps_rollup`` in MB: Rss and Pss (pages shared with others split)."""
    found = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        field, _, value = line.partition(":")
        if field in ("Rss", "Pss"):
            found[field.lower()] = int(value.split()[0]) / 1024
    return found


def runner_memory(pid: int) -> dict[str, list[float]]:
    """RSS and PSS (MB) of the server's loaded runners, its idle spares and its zygote.

    A runner names itself ``oet-runner-<id>`` once it has loaded a procedure;
    the zygote the spares are forked from is ``oet-zygote``.
    """
    found: dict[str, list[float]] = {
        "rss": [], "pss": [], "spare_rss": [], "spare_pss": [], "zygote_rss": [], "zygote_pss": []
    }  # fmt: skip
    for child in children(pid):
        with contextlib.suppress(OSError, KeyError):
            comm = Path(f"/proc/{child}/comm").read_text().strip()
            memory = _rollup(child)
            kinds = {"oet-zygote": "zygote_"}
            prefix = "" if comm.startswith("oet-runner-") else kinds.get(comm, "spare_")
            found[prefix + "rss"].append(memory["rss"])
            found[prefix + "pss"].append(memory["pss"])
    return found
