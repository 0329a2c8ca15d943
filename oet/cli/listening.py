"""``oet listen``: follow the event stream, across server restarts.

An operator leaves ``oet listen`` running for a whole observing session, so
a restart of the OET server must not end it. When the stream is lost, the
listener reconnects with ``Last-Event-ID``: the server replays what was
missed, or sends a ``stream.resync`` event when it no longer holds it (the
listener always shows that one, whatever the filters).
"""

import time
from collections.abc import Callable

from oet.cli.client import ProcedureClient, ServerUnreachable, StreamEvent

RESYNC = "stream.resync"


def follow(
    client: ProcedureClient,
    wanted: Callable[[StreamEvent], bool],
    show: Callable[[StreamEvent], None],
    notice: Callable[[str], None],
    reconnect_for: float,
    pause: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Show every ``wanted`` event until interrupted (or until reconnecting fails).

    If the first connection fails, its error is raised at once. After that, a
    lost stream is reopened, once a second, for up to ``reconnect_for``
    seconds; ``notice`` reports losing and regaining it. Raises
    ServerUnreachable when the server stays away longer.
    """
    last_id: str | None = None
    lost_at: float | None = None
    first = True
    while True:
        try:
            for event in client.events(last_id):
                if lost_at is not None:
                    notice("Reconnected to the event stream")
                    lost_at = None
                last_id = event.id or last_id
                if event.topic == RESYNC or wanted(event):
                    show(event)
            problem = f"The OET server at {client.url} closed the event stream"
        except ServerUnreachable as exc:
            if first:
                raise
            problem = str(exc)
        first = False
        now = clock()
        if lost_at is None:
            lost_at = now
            if reconnect_for > 0:
                notice(f"{problem}; reconnecting for up to {reconnect_for:g} s")
        if now - lost_at >= reconnect_for:
            suffix = f"; gave up reconnecting after {reconnect_for:g} s" if reconnect_for else ""
            raise ServerUnreachable(problem + suffix)
        pause(min(1.0, reconnect_for - (now - lost_at)))
