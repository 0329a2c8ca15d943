"""The embedded backend's channel: JSON lines over the runner's stdin/stdout.

The runner keeps the original stdout for messages and points file descriptor
1 at stderr, so whatever a script prints goes to the server's log and can
never corrupt the message stream.
"""

import json
import os
import sys
import threading
from typing import IO, Any


def _jsonable(value: Any) -> Any:
    return repr(value)


class StdioChannel:
    """JSON-lines channel on a pair of binary streams."""

    def __init__(self, commands: IO[bytes], reports: IO[bytes]) -> None:
        self._commands = commands
        self._reports = reports
        self._lock = threading.Lock()

    @classmethod
    def from_process_stdio(cls) -> "StdioChannel":
        """Take over stdin/stdout for messages and send fd 1 to stderr."""
        sys.stdout.flush()
        reports_fd = os.dup(1)
        os.dup2(2, 1)
        return cls(sys.stdin.buffer, os.fdopen(reports_fd, "wb", buffering=0))

    def send(self, message: dict[str, Any]) -> None:
        line = json.dumps(message, default=_jsonable).encode() + b"\n"
        with self._lock:
            try:
                self._reports.write(line)
            except (BrokenPipeError, ValueError):
                pass  # the supervisor is gone; the runner is about to notice

    def receive(self) -> dict[str, Any] | None:
        while True:
            line = self._commands.readline()
            if not line:
                return None
            if line.strip():
                message = json.loads(line)
                if isinstance(message, dict):
                    return message
