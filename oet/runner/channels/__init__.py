"""How a runner talks to whoever supervises it.

A channel delivers commands to the runner and carries its reports back. The
runner only sees the :class:`Channel` protocol.
"""

from typing import Any, Protocol


class Channel(Protocol):
    """Two-way link between a runner and its supervisor."""

    def send(self, message: dict[str, Any]) -> None:
        """Report one message (state, event, abort outcome). Thread-safe."""

    def receive(self) -> dict[str, Any] | None:
        """Block for the next command; None when the supervisor has gone."""
