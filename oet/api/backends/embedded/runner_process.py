"""Supervises one runner subprocess (``python -m oet.runner``) for the server.

Commands go to the runner's stdin and reports come back from its stdout as
JSON lines; the runner's stderr (and whatever the script prints) goes to the
server's own stderr, tagged by nothing but its order, as a terminal would.
"""

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from oet.domain import RunnerError

MessageHandler = Callable[[dict[str, Any]], None]
ExitHandler = Callable[[int], Awaitable[None]]

_LINE_LIMIT = 16 * 1024 * 1024


class RunnerProcess:
    """A running ``oet.runner`` child and the task that reads its reports."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self._reader: asyncio.Task[None] | None = None
        self.killed = False

    @classmethod
    async def spawn(
        cls, load: dict[str, Any], on_message: MessageHandler, on_exit: ExitHandler
    ) -> "RunnerProcess":
        """Start a runner, hand it ``load``, and route its reports to the handlers."""
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "oet.runner",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                env=env,
                limit=_LINE_LIMIT,
            )
        except OSError as exc:
            raise RunnerError(f"Could not start a runner process: {exc}") from exc
        runner = cls(process)
        runner.send({"cmd": "load", **load})
        runner._reader = asyncio.create_task(runner._read(on_message, on_exit))
        return runner

    @property
    def pid(self) -> int:
        """The operating-system process ID."""
        return self._process.pid

    def send(self, command: dict[str, Any]) -> None:
        """Write one command; a runner that has already gone is ignored."""
        stdin = self._process.stdin
        if stdin is None or stdin.is_closing():
            return
        with contextlib.suppress(ConnectionError, RuntimeError):
            stdin.write(json.dumps(command).encode() + b"\n")

    def kill(self) -> None:
        """Kill the runner at once (SIGKILL)."""
        if self._process.returncode is None:
            self.killed = True
            with contextlib.suppress(ProcessLookupError):
                self._process.send_signal(signal.SIGKILL)

    async def wait(self) -> int:
        """Wait for the runner to exit and for its last reports to be handled."""
        if self._reader is not None:
            await asyncio.shield(self._reader)
        return await self._process.wait()

    async def _read(self, on_message: MessageHandler, on_exit: ExitHandler) -> None:
        stdout = self._process.stdout
        assert stdout is not None
        while True:
            try:
                line = await stdout.readline()
            except ValueError:  # a line over the limit: skip to the next one
                continue
            if not line:
                break
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict):
                on_message(message)
        if self._process.stdin is not None:
            self._process.stdin.close()
        await on_exit(await self._process.wait())
