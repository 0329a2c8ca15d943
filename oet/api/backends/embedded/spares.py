"""Runner processes started ahead of need, so that creating a procedure is quick.

Most of a cold create is starting a Python interpreter and importing the
runner. A spare is a runner (``python -m oet.runner``) that has done both
and waits for its load command; creating a procedure hands it the oldest
spare and, shortly after that create has been answered, starts a replacement
in the background (not at once: the new interpreter would compete for the
CPU with the ``init`` being waited for, or with a start that follows).
Nothing else changes: each spare runs one procedure and exits, so nothing of
one script is visible to the next, and
the load command carries the settings, environment and working directory of
the moment it is sent (:meth:`RunnerProcess.hand`).

Spares are forked from a zygote (:mod:`.zygote`), a process that has
imported the runner once and never runs a script: a forked spare shares the
zygote's pages and costs a fraction of the memory of a fresh interpreter,
and forking one takes milliseconds, so a create that finds no spare ready
forks its runner on demand too. A zygote that dies is replaced when the
next runner is wanted; where no zygote can be had (it fails to start, or the
system cannot adopt forked runners) spares are fresh interpreters, as with
``warm_runners`` 0.

A spare that dies while idle is replaced (after a pause that grows while
spares keep dying, so a broken installation does not spin). A spare whose
server goes away sees its stdin close and exits, and so does the zygote;
:meth:`SpareRunners.close` ends them at shutdown.
"""

import asyncio
import contextlib
import logging
import time
from collections import deque

from oet.api.backends.embedded import adopted
from oet.api.backends.embedded.runner_process import RunnerProcess, runner_environment
from oet.api.backends.embedded.zygote import Zygote, ZygoteKilled
from oet.domain import RunnerError

log = logging.getLogger(__name__)

_MAX_PAUSE = 30.0


class SpareRunners:
    """Keeps ``count`` idle runners ready; ``count`` 0 keeps none."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._idle: deque[RunnerProcess] = deque()
        self._watchers: dict[RunnerProcess, asyncio.Task[None]] = {}
        self._filling: asyncio.Task[None] | None = None
        self._pause = 0.0
        self._closed = False
        self._zygote: Zygote | None = None
        self._zygote_lock = asyncio.Lock()
        self._zygote_retry_at = 0.0
        self._zygote_pause = 0.0
        self._sweeper: asyncio.Task[None] | None = None

    def fill(self, after: float = 0.0) -> None:
        """Start spares in the background, ``after`` seconds from now, until ``count`` are ready."""
        if self.count and not self._closed and (self._filling is None or self._filling.done()):
            self._filling = asyncio.create_task(self._top_up(after))

    def take(self) -> RunnerProcess | None:
        """The oldest live spare, or None. Call :meth:`fill` once the spare has been used.

        Replacing it is left to the caller, so that a new interpreter starting
        does not compete for the CPU with the procedure being created.
        """
        while self._idle:
            runner = self._idle.popleft()
            self._unwatch(runner)
            if runner.idle:
                self._pause = 0.0
                return runner
            runner.kill()  # gone or going: the event loop reaps it
        return None

    @property
    def ready(self) -> int:
        """How many spares wait now."""
        return sum(1 for runner in self._idle if runner.idle)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def pids(self) -> list[int]:
        """Process IDs of the waiting spares."""
        return [runner.pid for runner in self._idle]

    @property
    def zygote_pid(self) -> int | None:
        """Process ID of the live zygote, if there is one."""
        return self._zygote.pid if self._zygote is not None and self._zygote.alive else None

    async def start_runner(self) -> RunnerProcess:
        """A new idle runner: forked from the zygote when there is one, else a fresh interpreter."""
        for _ in range(2):  # once more with a new zygote if this one was gone
            zygote = await self._live_zygote() if self.count and not self._closed else None
            if zygote is None:
                break
            try:
                return await RunnerProcess.fork_idle(zygote)
            except RunnerError as exc:
                if not zygote.vanished:  # gone (a signal to the process group, say): noted
                    pause = await self._give_up_on(zygote)
                    log.warning("%s; runners are fresh interpreters for %g s", exc, pause)
                    break
        return await RunnerProcess.start_idle()

    async def _give_up_on(self, zygote: Zygote) -> float:
        """Stop using ``zygote``, which failed a runner; no new one is tried for a while.

        A fork or a take-over that fails once is likely to fail again (no
        ``pidfd_open``, say): the pause keeps every create from paying for it.
        """
        async with self._zygote_lock:
            if self._zygote is zygote:
                self._zygote = None
            pause = self._back_off()
        await zygote.close()
        return pause

    def _back_off(self) -> float:
        """Seconds (doubling, at most ``_MAX_PAUSE``) until a new zygote is tried."""
        self._zygote_pause = min(_MAX_PAUSE, self._zygote_pause * 2 or 1.0)
        self._zygote_retry_at = time.monotonic() + self._zygote_pause
        return self._zygote_pause

    async def _live_zygote(self) -> Zygote | None:
        """The zygote, started (again) if it is not running; None while starting one fails."""
        async with self._zygote_lock:
            zygote = self._zygote
            if zygote is not None and zygote.alive:
                return zygote
            if zygote is not None:
                self._zygote = None
                await zygote.close()
                code = zygote.returncode
                # Killed (a signal to the server's whole process group, say): worth a note.
                log.log(
                    logging.INFO if code is None or code < 0 else logging.WARNING,
                    "the runner zygote (process %d) is gone (code %s); another is started",
                    zygote.pid,
                    code,
                )
            if time.monotonic() < self._zygote_retry_at or self._closed:
                return None
            try:
                self._zygote = await Zygote.start(runner_environment())
            except RunnerError as exc:
                log.log(
                    logging.INFO if isinstance(exc, ZygoteKilled) else logging.WARNING,
                    "%s; runners are fresh interpreters for %g s",
                    exc,
                    self._back_off(),
                )
                return None
            self._zygote_pause = 0.0
            if self._sweeper is None:
                self._sweeper = asyncio.create_task(adopted.sweep_regularly())
            return self._zygote

    async def close(self) -> None:
        """End every spare and stop making new ones."""
        self._closed = True
        if self._filling is not None:
            self._filling.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._filling
        while self._idle:
            runner = self._idle.popleft()
            self._unwatch(runner)
            await runner.discard()
        async with self._zygote_lock:
            if self._zygote is not None:
                await self._zygote.close()
                self._zygote = None
        if self._sweeper is not None:
            self._sweeper.cancel()

    async def _top_up(self, after: float) -> None:
        await asyncio.sleep(after)
        while not self._closed and len(self._idle) < self.count:
            if self._pause:
                await asyncio.sleep(self._pause)
            try:
                runner = await self.start_runner()
            except Exception:
                self._pause = min(_MAX_PAUSE, self._pause * 2 or 0.5)
                continue
            if self.closed:  # closed while it started
                await runner.discard()
                return
            self._idle.append(runner)
            self._watchers[runner] = asyncio.create_task(self._watch(runner))
            runner.release()  # now it may show itself as a spare

    async def _watch(self, runner: RunnerProcess) -> None:
        code = await runner.exited()
        if runner in self._idle:
            self._idle.remove(runner)
            self._watchers.pop(runner, None)
            self._pause = min(_MAX_PAUSE, self._pause * 2 or 0.5)
            # Killed (a signal to the server's whole process group, say): worth a note.
            # Exited on its own: the installation cannot start runners, worth a warning.
            log.log(
                logging.INFO if code < 0 else logging.WARNING,
                "a spare runner exited while idle (code %s); another is started in %g s",
                code,
                self._pause,
            )
            self.fill()

    def _unwatch(self, runner: RunnerProcess) -> None:
        if watcher := self._watchers.pop(runner, None):
            watcher.cancel()
