"""Each procedure's stream in the order its runner wrote it, though two watches bring it.

A runner writes RUNNING, then its script's Events, then the final state. A replica learns
of state changes from the Procedures watch and of script events from the Events watch, and
either may lag the other, so left alone the stream could say "complete" before the script's
last words, or show a script event before "started". :class:`StreamOrder` puts them back:

* a script event of a procedure not yet seen running waits (at most
  :data:`HOLD_SCRIPT_EVENTS`) until its state change arrives;
* a final state waits until the procedure's script Events have been read from the API
  server; those the Events watch has not delivered yet go out first;
* an Event that both the watch and that read bring goes out once.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

from oet.api.backends.kubernetes.bus import ID_SCALE
from oet.domain import FINAL_STATES, Event, ProcedureState

log = logging.getLogger(__name__)
S = ProcedureState

HOLD_SCRIPT_EVENTS = 5.0
"""Seconds a script event may wait for its procedure's state change to be seen first.

It is released as soon as that change arrives, so this only matters when the Procedures
watch lags the Events watch, which on a busy node can last more than a second."""

FORGET_AFTER = 120.0
"""Seconds what was taken of a procedure no longer known is kept: a lagging Events watch may
still bring Events that the read at its final state sent already."""


class StreamOrder:
    """Decides when each lifecycle and script event of the cluster is published.

    ``publish`` sends an event out; ``state_of`` is a procedure's state as the replica
    knows it (None if unknown); ``read_script_events(pid, resource_version)`` reads a
    procedure's script events from the API server, as of that version or later;
    ``finished(pid)`` is called once a final state has been published. Used from the event
    loop's thread only.
    """

    def __init__(
        self,
        publish: Callable[[Event], None],
        state_of: Callable[[int], ProcedureState | None],
        read_script_events: Callable[[int, int], Awaitable[Iterable[Event]]],
        finished: Callable[[int], None],
    ) -> None:
        self._publish = publish
        self._state_of = state_of
        self._read_script_events = read_script_events
        self._finished = finished
        self._held: dict[int, list[Event]] = {}
        self._hold_timers: dict[int, asyncio.TimerHandle] = {}
        self._taken: dict[int, int] = {}
        """Per procedure, the resourceVersion of the newest script event taken (sent or held).
        The Events watch delivers in resourceVersion order, so anything at or below it was."""
        self._finishing: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def take(self, event: Event) -> bool:
        """Note a script event as taken; False if it was already."""
        pid, version = event.procedure_id, event.id // ID_SCALE
        assert pid is not None
        if version <= self._taken.get(pid, 0):
            return False
        self._taken[pid] = version
        return True

    def script_event(self, event: Event) -> None:
        """A script event from the Events watch: sent now, held, or dropped as a repeat."""
        if not self.take(event):
            return  # sent already, by the read a final state made
        pid = event.procedure_id
        assert pid is not None
        if pid in self._held or self._state_of(pid) in (None, S.CREATED):
            held = self._held.setdefault(pid, [])
            held.append(event)
            if len(held) == 1:
                self._hold_timers[pid] = asyncio.get_running_loop().call_later(
                    HOLD_SCRIPT_EVENTS, self._release, pid
                )
            return
        self._publish(event)

    def state_changed(self, pid: int, state: ProcedureState, lifecycle: Event | None) -> None:
        """Procedure ``pid`` was seen entering ``state``; ``lifecycle`` is its event, if any."""
        if lifecycle is not None and state in FINAL_STATES:
            self._release(pid)
            self._finish(pid, lifecycle)
            return
        if lifecycle is not None:
            self._publish(lifecycle)
        if state != S.CREATED:  # held script events follow "started"
            self._release(pid)

    def finishing(self, pid: int) -> bool:
        """Whether ``pid``'s final event is still waiting for its last script events."""
        return pid in self._finishing

    def forget(self, pid: int) -> None:
        """Procedure ``pid`` is gone, or not known: what was taken of it goes, later."""
        asyncio.get_running_loop().call_later(FORGET_AFTER, self._forget_now, pid)

    async def close(self) -> None:
        """End holds and reads (the replica is shutting down): no waiter is left waiting."""
        for timer in self._hold_timers.values():
            timer.cancel()
        self._hold_timers.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for pid in list(self._finishing):  # a read cancelled before it began
            self._finishing.discard(pid)
            self._finished(pid)

    def _forget_now(self, pid: int) -> None:
        if self._state_of(pid) is None and pid not in self._finishing and pid not in self._held:
            self._taken.pop(pid, None)

    def _release(self, pid: int) -> None:
        if (timer := self._hold_timers.pop(pid, None)) is not None:
            timer.cancel()
        for event in self._held.pop(pid, []):
            self._publish(event)
        if self._state_of(pid) is None:  # events of a procedure gone, or not seen yet
            self.forget(pid)

    def _finish(self, pid: int, final: Event) -> None:
        self._finishing.add(pid)
        task = asyncio.get_running_loop().create_task(self._catch_up_then_publish(pid, final))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _catch_up_then_publish(self, pid: int, final: Event) -> None:
        try:
            try:
                events = await self._read_script_events(pid, final.id // ID_SCALE)
            except Exception as exc:  # never hold a final state back for good
                log.warning("procedure %d: its last script events could not be read (%s);"
                            " they follow when the Events watch brings them", pid, exc)  # fmt: skip
                events = ()
            for event in sorted(events, key=lambda e: e.id):
                if event.procedure_id == pid and event.id < final.id and self.take(event):
                    self._publish(event)
            self._publish(final)
        finally:
            self._finishing.discard(pid)
            self._finished(pid)
