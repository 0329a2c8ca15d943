"""The order a Kubernetes-backend replica streams a procedure's events in, whichever watch lags.

Pure logic: the events are what the watches and the API server would hand over, as values.
"""

import asyncio
from collections.abc import Iterable

import pytest

from oet.api.backends.kubernetes import ordering
from oet.api.backends.kubernetes.bus import ID_SCALE
from oet.api.backends.kubernetes.ordering import StreamOrder
from oet.domain import Event, ProcedureState

S = ProcedureState
PID = 4
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def lifecycle(rv: int, topic: str) -> Event:
    return Event(rv * ID_SCALE, f"procedure.lifecycle.{topic}", 0.0, PID, "api", {})


def script(rv: int) -> Event:
    return Event(rv * ID_SCALE, "user.script.step", 0.0, PID, "script", {"rv": rv})


class Replica:
    """A StreamOrder's surroundings: what it sent, the procedure's state, the cluster's Events."""

    def __init__(self, in_cluster: Iterable[Event] = (), read_fails: bool = False) -> None:
        self.state: ProcedureState | None = S.CREATED
        self.sent: list[Event] = []
        self.finished: list[int] = []
        self.in_cluster = list(in_cluster)
        self.read_fails = read_fails
        self.read_as_of: list[int] = []
        self.reads_started = asyncio.Event()
        self.reads_may_end = asyncio.Event()
        self.reads_may_end.set()
        self.done = asyncio.Event()
        self.order = StreamOrder(self.sent.append, self._state_of, self._read, self._finished)

    def _finished(self, pid: int) -> None:
        self.finished.append(pid)
        self.done.set()

    def _state_of(self, pid: int) -> ProcedureState | None:
        return self.state if pid == PID else None

    async def _read(self, pid: int, resource_version: int) -> list[Event]:
        self.reads_started.set()
        await self.reads_may_end.wait()
        if self.read_fails:
            raise OSError("connection refused")
        self.read_as_of.append(resource_version)
        return [e for e in self.in_cluster if e.procedure_id == pid]

    def enter(self, state: ProcedureState, event: Event) -> None:
        self.state = state
        self.order.state_changed(PID, state, event)

    async def settled(self) -> None:
        """Once the final state's event is out."""
        await asyncio.wait_for(self.done.wait(), 5)

    def rvs(self) -> list[int]:
        return [e.id // ID_SCALE for e in self.sent]


async def test_a_script_event_seen_before_started_follows_it() -> None:
    replica = Replica()
    replica.order.script_event(script(11))
    assert replica.sent == []

    replica.enter(S.RUNNING, lifecycle(10, "started"))

    assert replica.rvs() == [10, 11]


async def test_the_final_event_follows_script_events_the_watch_has_not_brought_yet() -> None:
    replica = Replica(in_cluster=[script(11), script(12), script(13)])
    replica.enter(S.RUNNING, lifecycle(10, "started"))
    replica.order.script_event(script(11))  # the Events watch brought only the first

    replica.enter(S.COMPLETED, lifecycle(14, "complete"))
    await replica.settled()

    assert replica.rvs() == [10, 11, 12, 13, 14]
    assert replica.read_as_of == [14]  # the final state's version: all before it are there
    for late in (script(12), script(13)):  # the lagging watch brings them after all
        replica.order.script_event(late)
    assert replica.rvs() == [10, 11, 12, 13, 14]


async def test_waiters_hear_of_the_final_state_only_once_its_event_is_out() -> None:
    replica = Replica(in_cluster=[script(11)])
    replica.reads_may_end.clear()
    replica.enter(S.RUNNING, lifecycle(10, "started"))

    replica.enter(S.STOPPED, lifecycle(12, "stopped"))
    await replica.reads_started.wait()
    assert replica.order.finishing(PID)
    assert replica.finished == []

    replica.reads_may_end.set()
    await replica.settled()
    assert not replica.order.finishing(PID)
    assert replica.finished == [PID]
    assert replica.rvs() == [10, 11, 12]


async def test_script_events_written_after_the_final_state_are_left_to_the_watch() -> None:
    replica = Replica(in_cluster=[script(11), script(15)])
    replica.enter(S.RUNNING, lifecycle(10, "started"))

    replica.enter(S.FAILED, lifecycle(12, "failed"))
    await replica.settled()

    assert replica.rvs() == [10, 11, 12]


async def test_an_unreadable_cluster_does_not_hold_the_final_event_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    replica = Replica(in_cluster=[script(11)], read_fails=True)
    replica.enter(S.RUNNING, lifecycle(10, "started"))

    replica.enter(S.COMPLETED, lifecycle(12, "complete"))
    await replica.settled()

    assert replica.rvs() == [10, 12]
    assert replica.finished == [PID]
    assert "could not be read" in caplog.text
    replica.order.script_event(script(11))  # the watch still brings it, late
    assert replica.rvs() == [10, 12, 11]


async def test_a_procedure_deleted_while_finishing_still_gets_no_repeats() -> None:
    replica = Replica(in_cluster=[script(11), script(12)])
    replica.reads_may_end.clear()
    replica.enter(S.RUNNING, lifecycle(10, "started"))
    replica.order.script_event(script(11))
    replica.enter(S.COMPLETED, lifecycle(13, "complete"))
    await replica.reads_started.wait()

    replica.state = None
    replica.order.forget(PID)
    replica.reads_may_end.set()
    await replica.settled()
    assert replica.rvs() == [10, 11, 12, 13]

    replica.order.script_event(script(12))  # the lagging watch, after the procedure went
    assert replica.rvs() == [10, 11, 12, 13]
    assert replica.order._held == {}, "a repeat must not even wait to be sent"


async def test_an_event_sent_when_its_hold_ran_out_is_not_sent_again_at_the_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ordering, "HOLD_SCRIPT_EVENTS", 0.0)
    replica = Replica(in_cluster=[script(11)])
    replica.state = None  # the Procedures watch lags: the procedure is not known yet
    replica.order.script_event(script(11))
    async with asyncio.timeout(5):
        while replica.rvs() != [11]:  # the hold runs out on the loop's next turn
            await asyncio.sleep(0)

    replica.enter(S.RUNNING, lifecycle(10, "started"))
    replica.enter(S.COMPLETED, lifecycle(12, "complete"))
    await replica.settled()

    assert replica.rvs() == [11, 10, 12]
