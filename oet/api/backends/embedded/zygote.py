"""Runners forked from one pre-imported parent, the zygote, instead of started fresh.

An idle runner started as its own interpreter holds about 8.5 MB PSS; forked
from a parent that has imported the runner (``python -m oet.runner.zygote``)
it shares those pages and holds about 2 MB. The server talks to the zygote
over a Unix socket: for each runner it makes three pipes, sends the
runner's ends (stdin, stdout, stderr) and gets the runner's process ID back.

The runner is then the server's own child, as one it started itself would
be: the zygote forks twice, and the server, a child subreaper
(:func:`oet.process_tree.become_subreaper`), adopts the runner when the
middle process exits. :class:`ForkedProcess` waits for it through a pidfd
and collects its exit status with ``waitpid``, so exit codes and signals
reach the backend exactly as from a subprocess. Orphans the server adopts
on the way are reaped by :mod:`.adopted`.
"""

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys

from oet.api.backends.embedded import adopted
from oet.domain import RunnerError
from oet.process_tree import become_subreaper

log = logging.getLogger(__name__)

_READY_WAIT = 30.0
"""Seconds a new zygote may take to import the runner (a busy machine is slow)."""

_FORK_WAIT = 10.0
"""Seconds a fork request may take before the zygote is given up as stuck."""


class ZygoteKilled(RunnerError):
    """The zygote was killed by a signal as it started: worth a note, not a warning."""


class ForkedProcess:
    """A runner forked by the zygote, with the attributes of an asyncio subprocess."""

    def __init__(
        self,
        pid: int,
        pidfd: int,
        stdin: asyncio.StreamWriter,
        stdout: asyncio.StreamReader,
        stderr: asyncio.StreamReader,
    ) -> None:
        self.pid = pid
        self.stdin: asyncio.StreamWriter | None = stdin
        self.stdout: asyncio.StreamReader | None = stdout
        self.stderr: asyncio.StreamReader | None = stderr
        self.returncode: int | None = None
        loop = asyncio.get_running_loop()
        self._exit: asyncio.Future[int] = loop.create_future()
        self._pidfd = pidfd
        loop.add_reader(self._pidfd, self._collect)
        self._collect()  # it may have exited already

    @classmethod
    async def adopt(cls, pid: int, pipes: tuple[int, int, int], limit: int) -> "ForkedProcess":
        """Take over runner ``pid`` (the server's child) and the server's ends of its pipes.

        ``pipes`` are the write end of its stdin and the read ends of its
        stdout and stderr; they are closed here if the runner cannot be taken.
        """
        loop = asyncio.get_running_loop()
        stdin_w = os.fdopen(pipes[0], "wb", 0)
        stdout_r, stderr_r = os.fdopen(pipes[1], "rb", 0), os.fdopen(pipes[2], "rb", 0)
        pidfd = -1
        try:
            pidfd = os.pidfd_open(pid)  # the process itself, even if its PID is reused later
            # ChildProcessError unless it is this server's child; WNOWAIT leaves an exit
            # that has already happened to be collected (with its status) by _collect.
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            stdout, stderr = asyncio.StreamReader(limit, loop), asyncio.StreamReader(limit, loop)
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdout), stdout_r)
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stderr), stderr_r)
            transport, protocol = await loop.connect_write_pipe(asyncio.Protocol, stdin_w)
        except (OSError, ChildProcessError) as exc:
            for pipe in (stdin_w, stdout_r, stderr_r):
                pipe.close()
            if pidfd >= 0:  # killed through its pidfd: never another process given its PID
                with contextlib.suppress(OSError):
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                os.close(pidfd)
            adopted.disown(pid)  # reaped by the next sweep
            adopted.sweep_soon()
            raise RunnerError(f"Could not take over forked runner {pid}: {exc}") from exc
        stdin = asyncio.StreamWriter(transport, protocol, None, loop)
        return cls(pid, pidfd, stdin, stdout, stderr)

    def _collect(self) -> None:
        if self.returncode is not None:
            return
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # reaped elsewhere: nothing more to learn
            pid, status = self.pid, 255 << 8
        if pid == 0:
            return
        self.returncode = os.waitstatus_to_exitcode(status)
        loop = asyncio.get_running_loop()
        loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        adopted.disown(self.pid)
        self._exit.set_result(self.returncode)
        adopted.sweep_soon()  # what it left unreaped is the server's now

    async def wait(self) -> int:
        """Wait for the runner to exit; its exit code, or minus the signal that killed it."""
        return await asyncio.shield(self._exit)


class Zygote:
    """The server's zygote process and its control socket."""

    def __init__(self, process: asyncio.subprocess.Process, control: socket.socket) -> None:
        self._process = process
        self._control = control
        self._lock = asyncio.Lock()
        self.vanished = False
        """True once the zygote was found gone during a fork (it closed its socket)."""

    @classmethod
    async def start(cls, environment: dict[str, str]) -> "Zygote":
        """Start a zygote and wait until it has imported the runner."""
        if not become_subreaper():
            raise RunnerError("This system cannot adopt forked runners (no child subreaper)")
        loop = asyncio.get_running_loop()
        control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            with adopted.starting():
                process = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "oet.runner.zygote",
                    str(theirs.fileno()),
                    pass_fds=(theirs.fileno(),),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL,
                    env=environment,
                )
                adopted.own(process.pid)
        except OSError as exc:
            control.close()
            raise RunnerError(f"Could not start the runner zygote: {exc}") from exc
        finally:
            theirs.close()
        control.setblocking(False)
        zygote = cls(process, control)
        try:
            ready = await asyncio.wait_for(loop.sock_recv(control, 64), _READY_WAIT)
        except TimeoutError:
            ready = f"no answer within {_READY_WAIT:.0f} s".encode()
        except OSError as exc:
            ready = (str(exc) or type(exc).__name__).encode()
        except asyncio.CancelledError:
            zygote.abandon()
            raise
        if ready != b"ready":
            await zygote.close()
            code = process.returncode
            if not ready and code is not None and code < 0:  # a signal to its process group?
                raise ZygoteKilled(f"The runner zygote was killed by signal {-code} as it started")
            raise RunnerError(f"The runner zygote did not start: {ready.decode(errors='replace')}")
        return zygote

    @property
    def pid(self) -> int:
        """The zygote's process ID."""
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        """The zygote's exit code once it has exited (minus the signal that killed it)."""
        return self._process.returncode

    @property
    def alive(self) -> bool:
        """False once the zygote has exited (or was given up)."""
        return self._process.returncode is None and self._control.fileno() >= 0

    async def fork(self, limit: int) -> ForkedProcess:
        """A new idle runner forked by the zygote, the server's child with its pipes."""
        async with self._lock:
            if not self.alive:
                raise RunnerError("The runner zygote has exited")
            theirs, ours = _runner_pipes()
            loop = asyncio.get_running_loop()
            try:
                with adopted.starting():
                    socket.send_fds(self._control, [b"fork"], theirs)
                    _close(theirs)
                    answer = await asyncio.wait_for(loop.sock_recv(self._control, 64), _FORK_WAIT)
                    if answer.isdigit():
                        adopted.own(int(answer))
            except ConnectionError:  # the zygote has gone: nobody reads the socket
                answer = b""
            except (OSError, TimeoutError) as exc:
                answer = f"error: {exc or type(exc).__name__}".encode()
            except asyncio.CancelledError:  # an answer still to come would confuse the next
                _close(theirs + ours)
                self.abandon()
                raise
            finally:
                _close(theirs)
            if not answer.isdigit():
                self.vanished = not answer
                _close(ours)
                await self._close()  # a zygote that fails once is not trusted again
                reason = answer.decode(errors="replace") or "the zygote exited"
                raise RunnerError(f"Could not fork a runner: {reason}")
        return await ForkedProcess.adopt(int(answer), (ours[0], ours[1], ours[2]), limit)

    def abandon(self) -> None:
        """Close the control socket and kill the zygote, without waiting."""
        self._control.close()
        with contextlib.suppress(ProcessLookupError):
            self._process.kill()

    async def close(self) -> None:
        """Close the control socket (the zygote exits on it) and wait for the zygote to go.

        A fork under way is let finish first (at most its ``_FORK_WAIT``): its socket is
        never closed under it.
        """
        async with self._lock:
            await self._close()

    async def _close(self) -> None:
        self.abandon()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._process.wait(), 5)
        adopted.disown(self._process.pid)


def _runner_pipes() -> tuple[list[int], list[int]]:
    """Pipes for a runner's stdio: its ends (stdin, stdout, stderr) and the server's."""
    stdin_r, stdin_w = os.pipe()
    stdout_r, stdout_w = os.pipe()
    stderr_r, stderr_w = os.pipe()
    return [stdin_r, stdout_w, stderr_w], [stdin_w, stdout_r, stderr_r]


def _close(fds: list[int]) -> None:
    """Close each descriptor once: the list is emptied."""
    while fds:
        with contextlib.suppress(OSError):
            os.close(fds.pop())
