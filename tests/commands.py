"""Commands run as a user runs them: the installed ``oet`` and stream followers."""

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import REPO, wait_for

_INSTALLED = Path(sys.executable).parent / "oet"
OET = [str(_INSTALLED)] if _INSTALLED.exists() else [sys.executable, "-m", "oet.cli.main"]
"""The ``oet`` console script of this environment, as a command line."""


def run_installed(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``oet`` with ``args`` (``env`` added to ours) until it exits."""
    return subprocess.run(
        [*OET, *args],
        env={**os.environ, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Follower:
    """A command that follows a stream (``oet listen``, ``curl -N``) as a subprocess.

    Its output is collected by a thread as it arrives, so tests wait on it
    with a deadline; :meth:`interrupt` is Ctrl-C.
    """

    def __init__(self, command: list[str], env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env={**os.environ, **(env or {})},
        )
        self._lines: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)

    def output(self) -> str:
        """Everything printed so far."""
        while not self._lines.empty():
            self._seen.append(self._lines.get())
        return "".join(self._seen)

    def wait_for_text(self, text: str, poke: Callable[[], object] | None = None) -> str:
        """Wait until ``text`` is printed, calling ``poke`` meanwhile to make things happen."""

        def printed() -> bool:
            if poke is not None:
                poke()
            assert self.process.poll() is None, f"exited early: {self.stderr()}"
            return text in self.output()

        wait_for(printed, 30, f"{text!r} to be printed")
        return self.output()

    def interrupt(self) -> int:
        """Send Ctrl-C (SIGINT) and return the exit code."""
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(10)

    def stderr(self) -> str:
        if self.process.poll() is None or self.process.stderr is None:
            return ""
        return self.process.stderr.read()

    def __enter__(self) -> "Follower":
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


def data_of(output: str) -> list[dict[str, Any]]:
    """The JSON of every ``data:`` line ``oet listen`` printed."""
    return [json.loads(line[6:]) for line in output.splitlines() if line.startswith("data: ")]
