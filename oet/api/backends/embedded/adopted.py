"""Reaping the processes the server adopts as a child subreaper.

Runners forked by the zygote (:mod:`.zygote`) reach the server by
re-parenting: the server makes itself a child subreaper, so an orphan below
it comes to it instead of to init. That holds for every orphan below the
server, not only runners: when a runner is killed (by the watchdog, which
kills its script's processes first, or by someone else), whatever it had not
reaped becomes the server's child. Nobody waits for those, so the server
reaps them here, or they would stay zombies until it exits. A process that
still runs is left alone, as it was when init adopted it; it is reaped once
it exits.

The server's own children (runners, the zygote, the abort helper) are
waited for by whoever started them; they are registered with :func:`own`
and never touched here, and no sweep runs while one is being started.
"""

import asyncio
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

_own: set[int] = set()
_starting = 0
_active = False
_SWEEP_EVERY = 10.0


def own(pid: int) -> None:
    """Mark ``pid`` as a child the server started and waits for itself."""
    _own.add(pid)


def disown(pid: int) -> None:
    """Forget ``pid``, once its exit has been collected."""
    _own.discard(pid)


@contextlib.contextmanager
def starting() -> Iterator[None]:
    """Hold sweeps off while a child is being started and is not yet registered."""
    global _starting
    _starting += 1
    try:
        yield
    finally:
        _starting -= 1


def _children() -> list[int]:
    found = []
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError, ValueError):
            found += [int(pid) for pid in (task / "children").read_text().split()]
    return found


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat.rsplit(b")", 1)[1].split()[0] == b"Z"


def sweep() -> int:
    """Reap every adopted child that has exited; return how many were reaped."""
    if _starting:
        return 0
    reaped = 0
    for pid in _children():
        if pid not in _own and _is_zombie(pid):
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0]:
                    reaped += 1
    return reaped


def sweep_soon() -> None:
    """Sweep shortly, and once more a second later (a killed tree takes a moment to go)."""
    if _active:
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, sweep)
        loop.call_later(1.0, sweep)


async def sweep_regularly() -> None:
    """Sweep every few seconds, for orphans whose runner's exit was not seen here."""
    global _active
    _active = True
    try:
        while True:
            await asyncio.sleep(_SWEEP_EVERY)
            sweep()
    finally:
        _active = False
