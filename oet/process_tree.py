"""Ending a process together with every process it started, detached ones included.

A procedure's script may start processes, which may start more, or detach
with ``setsid`` or a double fork. The runner makes itself a *child subreaper*
(Linux ``prctl``), so a descendant whose parent exits is re-parented to the
runner instead of to init: the runner's tree then holds everything its
script started, however it detached. Ending a procedure kills that whole
tree — the runner does it when the script ends or is stopped, the server
does it before killing a runner that did not stop in time.

Process groups would miss ``setsid`` children and cgroups need privileges a
laptop install does not have; ``/proc`` and ``prctl`` are enough on Linux.
"""

import contextlib
import ctypes
import functools
import os
import signal
import time
from pathlib import Path

_PR_SET_CHILD_SUBREAPER = 36


@functools.cache
def _libc() -> ctypes.CDLL:
    """The C library, loaded once (a forked runner then finds it ready in its zygote)."""
    return ctypes.CDLL(None, use_errno=True)


def become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants; False where unsupported."""
    try:
        return bool(_libc().prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


_PR_SET_NAME = 15


def name_process(name: str) -> None:
    """Set this process's name as ``ps``/``top`` show it (``/proc/<pid>/comm``, 15 bytes)."""
    with contextlib.suppress(OSError, AttributeError):
        _libc().prctl(_PR_SET_NAME, name.encode()[:15], 0, 0, 0)


def _live_children() -> dict[int, list[int]]:
    """Parent PID → PIDs of its children that have not exited yet (zombies left out)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] in ("Z", "X"):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid``, parents before their children."""
    children = _live_children()
    found: list[int] = []
    pending = [pid]
    while pending:
        for child in children.get(pending.pop(), ()):
            found.append(child)
            pending.append(child)
    return found


def _reap_own_children() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


def kill_descendants(pid: int, timeout: float = 5.0) -> int:
    """SIGKILL every descendant of ``pid``; return how many were killed.

    Each round freezes the processes it found (SIGSTOP) before killing them,
    so none can start another while the tree is being ended; rounds repeat
    until no descendant is left or ``timeout`` seconds have passed.
    """
    killed: set[int] = set()
    deadline = time.monotonic() + timeout
    while (found := descendants(pid)) and time.monotonic() < deadline:
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            for child in found:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(child, sig)
        killed.update(found)
        if pid == os.getpid():
            _reap_own_children()
        time.sleep(0.005)
    if pid == os.getpid():
        _reap_own_children()
    return len(killed)


def kill_tree(pid: int) -> None:
    """Kill ``pid`` and all its descendants: frozen first, so it cannot start more."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGSTOP)
    kill_descendants(pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)
