"""Supervises one runner subprocess (``python -m oet.runner``) for the server.

Commands go to the runner's stdin and reports come back from its stdout as
JSON lines. The runner's stderr (and whatever the script prints) is copied
to the server's own stderr, but only up to ``output_limit`` bytes per minute
per runner: a script that prints without end cannot fill the server's disk.
What is cut is counted and said in the log.

Killing a runner kills every process its script started too
(:func:`oet.process_tree.kill_tree`), detached ones included.
"""

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from oet.api.backends.embedded import adopted
from oet.api.backends.embedded.zygote import ForkedProcess, Zygote
from oet.domain import RunnerError
from oet.process_tree import kill_tree

log = logging.getLogger(__name__)

MessageHandler = Callable[[dict[str, Any]], None]
ExitHandler = Callable[[int], Awaitable[None]]

_LINE_LIMIT = 16 * 1024 * 1024


class RunnerProcess:
    """A running ``oet.runner`` child and the task that reads its reports."""

    def __init__(self, process: asyncio.subprocess.Process | ForkedProcess, name: str) -> None:
        self._process = process
        self._name = name
        self._reader: asyncio.Task[None] | None = None
        self._output: asyncio.Task[None] | None = None
        self._released = False
        self.killed = False
        self.load: dict[str, Any] | None = None
        """The load command it was handed, if any."""
        self.loaded = False
        """True once the runner has read its load command (and before it runs any script)."""

    @classmethod
    async def start_idle(cls) -> "RunnerProcess":
        """Start a runner that imports what it needs and waits for its load command."""
        try:
            with adopted.starting():
                process = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "oet.runner",
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    env=runner_environment(),
                    limit=_LINE_LIMIT,
                )
                adopted.own(process.pid)
        except OSError as exc:
            log.error("could not start a runner process: %s", exc)
            raise RunnerError("Could not start a runner process") from exc
        return cls(process, "spare runner")

    @classmethod
    async def fork_idle(cls, zygote: Zygote) -> "RunnerProcess":
        """Fork a runner from ``zygote``: it has the imports already and waits for its load."""
        return cls(await zygote.fork(_LINE_LIMIT), "spare runner")

    def hand(
        self,
        load: dict[str, Any],
        on_message: MessageHandler,
        on_exit: ExitHandler,
        output_limit: int = 1_048_576,
    ) -> None:
        """Give an idle runner its procedure, and route its reports to the handlers.

        The load command carries the environment and working directory a runner
        started now would get, so a spare started earlier runs with today's.
        """
        self._name = f"procedure {load.get('procedure_id')}"
        self.load = load
        self.release()
        self.send({"cmd": "load", "environ": runner_environment(), "cwd": os.getcwd(), **load})
        self._output = asyncio.create_task(self._copy_output(output_limit))
        self._reader = asyncio.create_task(self._read(on_message, on_exit))

    def release(self) -> None:
        """Let a forked runner go on once it is the server's: it waits for one newline.

        A runner started fresh skips the blank line, so this may go to any runner.
        """
        if not self._released:
            self._released = True
            self._write(b"\n")

    @property
    def idle(self) -> bool:
        """True until the runner is handed a procedure, and while it is alive."""
        return self._reader is None and self._process.returncode is None and _alive(self.pid)

    async def discard(self) -> None:
        """End an idle runner (it never ran anything) and wait for it to go."""
        self.kill()
        with contextlib.suppress(ProcessLookupError):
            await self._wait_process()

    async def exited(self) -> int:
        """Wait for the process to exit, without touching its reports."""
        return await self._wait_process()

    @property
    def pid(self) -> int:
        """The operating-system process ID."""
        return self._process.pid

    def send(self, command: dict[str, Any]) -> None:
        """Write one command; a runner that has already gone is ignored."""
        self._write(json.dumps(command).encode() + b"\n")

    def _write(self, data: bytes) -> None:
        stdin = self._process.stdin
        if stdin is None or stdin.is_closing():
            return
        with contextlib.suppress(ConnectionError, RuntimeError):
            stdin.write(data)

    def kill(self) -> None:
        """Kill the runner and everything its script started, at once (SIGKILL)."""
        if self._process.returncode is None:
            self.killed = True
            kill_tree(self._process.pid)

    async def wait(self) -> int:
        """Wait for the runner to exit and for its last reports to be handled."""
        if self._reader is not None:
            await asyncio.shield(self._reader)
        return await self._wait_process()

    async def _wait_process(self) -> int:
        code = await self._process.wait()
        adopted.disown(self.pid)
        adopted.sweep_soon()  # a killed runner leaves its unreaped children to the server
        return code

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
                if message.get("type") == "loaded":
                    self.loaded = True
                    continue
                on_message(message)
        if self._process.stdin is not None:
            self._process.stdin.close()
        code = await self._wait_process()
        if self._output is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._output), 2)
        await on_exit(code)

    async def _copy_output(self, limit: int) -> None:
        """Copy the runner's stderr to ours, at most ``limit`` bytes a minute."""
        stderr = self._process.stderr
        assert stderr is not None
        window_start, passed, dropped = time.monotonic(), 0, 0
        while chunk := await stderr.read(65536):
            now = time.monotonic()
            if now - window_start >= 60:
                self._say_dropped(dropped, limit)
                window_start, passed, dropped = now, 0, 0
            room = max(0, limit - passed)
            if len(chunk) > room and not dropped:
                log.warning(
                    "%s: script output over %d bytes this minute; the rest is left out"
                    " until the minute is over (setting script_output_limit)",
                    self._name,
                    limit,
                )
            if room:
                _write_log(chunk[:room])
            passed += min(room, len(chunk))
            dropped += len(chunk) - min(room, len(chunk))
        self._say_dropped(dropped, limit)

    def _say_dropped(self, dropped: int, limit: int) -> None:
        if dropped:
            log.warning(
                "%s: %d bytes of script output left out of this log"
                " (over the limit of %d bytes a minute, setting script_output_limit)",
                self._name,
                dropped,
                limit,
            )


def runner_environment() -> dict[str, str]:
    """The environment a runner gets: the server's own, unbuffered."""
    return dict(os.environ, PYTHONUNBUFFERED="1")


def _alive(pid: int) -> bool:
    """False once ``pid`` has exited, even before the event loop has reaped it."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except (OSError, IndexError):
        return False


def _write_log(data: bytes) -> None:
    """Write script output to the server's stderr; a broken log never blocks a runner."""
    with contextlib.suppress(AttributeError, OSError, ValueError):
        sys.stderr.buffer.write(data)
        sys.stderr.buffer.flush()
