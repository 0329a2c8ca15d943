"""The embedded backend's channel: JSON lines over the runner's stdin/stdout.

The runner keeps the original stdin/stdout for messages, points file
descriptor 1 at stderr and 0 at /dev/null, so whatever a script prints goes
to the server's log and nothing a script does can corrupt the message stream.
"""

import contextlib
import json
import os
import signal
import sys
import threading
from typing import IO, Any

MAX_LINE = 4 * 1024 * 1024
"""Largest message sent; the supervisor reads lines of up to 16 MiB."""


def _jsonable(value: Any) -> Any:
    return repr(value)


def _oversized(message: dict[str, Any], size: int) -> dict[str, Any]:
    """A stand-in for a message too large to send, saying what was dropped."""
    note = f"message of {size} bytes dropped: larger than {MAX_LINE} bytes"
    if message.get("type") == "event":
        return {**message, "payload": {"error": note}}
    slim = {k: v for k, v in message.items() if k in ("type", "state", "time")}
    return {**slim, "reason": note, "stacktrace": str(message.get("stacktrace", ""))[-65536:]}


class StdioChannel:
    """JSON-lines channel on a pair of binary streams."""

    def __init__(self, commands: IO[bytes], reports: IO[bytes]) -> None:
        self._commands = commands
        self._reports = reports
        self._lock = threading.Lock()

    @classmethod
    def from_process_stdio(cls) -> "StdioChannel":
        """Take over stdin/stdout for messages; the script gets /dev/null and stderr.

        The channel moves to private descriptors that child processes do not
        inherit, so nothing a script starts (or its ``input()``) can read a
        command meant for the runner or write into the report stream.
        """
        sys.stdout.flush()
        commands_fd, reports_fd = os.dup(0), os.dup(1)  # dup'ed fds are not inheritable
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.dup2(2, 1)
        return cls(os.fdopen(commands_fd, "rb"), os.fdopen(reports_fd, "wb", buffering=0))

    def send(self, message: dict[str, Any]) -> None:
        line = json.dumps(message, default=_jsonable).encode() + b"\n"
        if len(line) > MAX_LINE:
            line = json.dumps(_oversized(message, len(line))).encode() + b"\n"
        # A stop must not land between two halves of a line: hold SIGTERM until the
        # whole line is written (a raw write may be partial when the pipe is full).
        # A gone supervisor is noticed by the command reader; nothing to do here.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        try:
            with self._lock, contextlib.suppress(BrokenPipeError, ValueError):
                view = memoryview(line)
                while view:
                    view = view[self._reports.write(view) or 0 :]
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)

    def receive(self) -> dict[str, Any] | None:
        while True:
            line = self._commands.readline()
            if not line:
                return None
            if line.strip():
                message = json.loads(line)
                if isinstance(message, dict):
                    return message
