"""The stop watch of a runner in a Pod: what it does when a script does not stop.

Its effects on the world (killing processes, sending Abort, exiting) are
replaced by recorders here; the end-to-end behaviour through a real runner Pod
and a real Tango device is tests/integration/test_abort_tango.py's.
"""

import threading
from types import SimpleNamespace
from typing import Any

import pytest

from oet.config import Settings
from oet.domain import ProcedureState
from oet.runner.channels import stop_watch
from oet.runner.channels.stop_watch import StopWatch


class Recorder:
    """What the stop watch did: status writes, kills, Aborts, exits."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.writes: list[dict[str, Any]] = []
        self.actions: list[str] = []
        self.exited = threading.Event()
        monkeypatch.setattr(stop_watch, "kill_descendants", lambda pid: self.actions.append("kill"))
        monkeypatch.setattr(stop_watch, "send_abort", self.send_abort)
        fake_os = SimpleNamespace(getpid=lambda: 1, _exit=lambda code: self.exited.set())
        monkeypatch.setattr(stop_watch, "os", fake_os)

    def send_abort(self, subarray_id: Any, template: str, timeout: float) -> tuple[bool, str]:
        self.actions.append(f"abort {subarray_id} {template}")
        return True, "Abort sent to tango://here/1"

    def write_status(self, **change: Any) -> bool:
        self.writes.append(change)
        return True


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    return Recorder(monkeypatch)


def watch(recorder: Recorder) -> StopWatch:
    settings = Settings(stop_grace=0.2, abort_timeout=0.1, abort_fqdn_template="t/{subarray_id}")
    return StopWatch(settings, recorder.write_status, lambda line: None)


def test_a_stop_that_takes_effect_leaves_the_runner_alone(recorder: Recorder) -> None:
    watcher = watch(recorder)
    watcher.interrupted()
    watcher.ended()

    watcher.enforce(abort=True, subarray_id=1)

    assert (recorder.writes, recorder.actions, recorder.exited.is_set()) == ([], [], False)


def test_a_script_that_swallows_the_stop_is_killed_aborted_and_reported(
    recorder: Recorder,
) -> None:
    watch(recorder).enforce(abort=True, subarray_id=1)

    assert recorder.actions == ["kill", "abort 1 t/{subarray_id}"]
    [write] = recorder.writes
    assert write["state"] == ProcedureState.STOPPED
    assert write["message"] == (
        "The script did not stop within 0.2 s; runner killed; Abort sent to tango://here/1"
    )
    assert write["abort"].sent is True
    assert recorder.exited.is_set()


def test_without_abort_nothing_is_aborted(recorder: Recorder) -> None:
    watch(recorder).enforce(abort=False, subarray_id=1)

    assert recorder.actions == ["kill"]
    assert recorder.writes[0]["message"] == "The script did not stop within 0.2 s; runner killed"
    assert recorder.writes[0]["abort"] is None


def test_a_runner_whose_own_abort_hangs_is_ended_without_a_second_abort(
    recorder: Recorder,
) -> None:
    watcher = watch(recorder)
    watcher.interrupted()

    watcher.enforce(abort=True, subarray_id=1)

    assert recorder.actions == ["kill"]
    assert recorder.writes[0]["message"] == "Stopped on request; runner killed while aborting"
    assert recorder.exited.is_set()
