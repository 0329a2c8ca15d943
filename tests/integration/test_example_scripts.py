"""Every example script in ``scripts/`` runs through a real OET server.

Each is created with the relative ``file://scripts/...`` URI the user docs
use, started, and (for the long-running one) stopped; its events must reach
the SSE stream tagged with its procedure ID. A script added to ``scripts/``
without an entry in ``EXAMPLES`` fails the suite.
"""

import dataclasses
from typing import Any

import httpx
import pytest

from tests.conftest import SCRIPTS, Server
from tests.procedures import create_id, start
from tests.sse import EventStream, Message

pytestmark = pytest.mark.e2e


@dataclasses.dataclass(frozen=True)
class Example:
    """How to run one example script and what it must publish."""

    init: dict[str, Any]
    run_args: list[Any]
    run_kwargs: dict[str, Any]
    events: list[tuple[str, dict[str, Any] | None]]  # (topic, payload or None: any payload)
    final: str = "COMPLETED"


EXAMPLES = {
    "hello_world.py": Example(
        init={"subarray_id": 1},
        run_args=["Ada"],
        run_kwargs={},
        events=[("user.script.hello", {"greeting": "Hello, Ada!"})],
    ),
    "eventbus.py": Example(
        init={"subarray_id": 2},
        run_args=[],
        run_kwargs={"topic": "demo", "steps": 2},
        events=[
            ("user.script.announce", {"msg_src": "eventbus.py", "msg": "Loaded for subarray 2"}),
            ("user.script.announce", None),
            ("demo", {"msg_src": "eventbus.py", "step": 1, "of": 2}),
            ("demo", {"msg_src": "eventbus.py", "step": 2, "of": 2}),
            ("user.script.announce", {"msg_src": "eventbus.py", "msg": "Script complete"}),
        ],
    ),
    "busy_loop.py": Example(
        init={"subarray_id": 1},
        run_args=[],
        run_kwargs={"report_every": 0.2},
        events=[
            ("user.script.announce", {"msg": "busy_loop ready for subarray 1"}),
            ("user.script.busy.started", {"duration": 600.0}),
            ("user.script.busy.progress", None),
        ],
        final="STOPPED",
    ),
}

FINAL_TOPIC = {
    "COMPLETED": "procedure.lifecycle.complete",
    "STOPPED": "procedure.lifecycle.stopped",
}


def script_events(messages: list[Message], pid: int) -> list[tuple[str, dict[str, Any]]]:
    return [
        (m.topic, m.body["payload"])
        for m in messages
        if m.body["source"] == "script" and m.procedure_id == pid
    ]


def matches(
    seen: list[tuple[str, dict[str, Any]]], expected: list[tuple[str, dict[str, Any] | None]]
) -> bool:
    """Whether ``seen`` starts with the ``expected`` events (None matches any payload)."""
    if len(seen) < len(expected):
        return False
    return all(
        topic == want_topic and (want is None or payload == want)
        for (topic, payload), (want_topic, want) in zip(seen, expected, strict=False)
    )


def run_example(
    server: Server, api: httpx.Client, name: str, example: Example
) -> tuple[int, list[Message]]:
    """Create, start (and stop, if it is long-running) one example; its ID and the stream."""
    with EventStream(f"{server.api}/stream") as stream:
        pid = create_id(api, f"file://scripts/{name}", **example.init)
        start(api, pid, *example.run_args, **example.run_kwargs)
        if example.final == "STOPPED":
            stream.until(
                lambda _: matches(script_events(stream.received, pid), example.events),
                15,
                f"the events of {name}",
            )
            stopped = api.put(f"/procedures/{pid}", json={"state": "STOPPED", "abort": False})
            assert stopped.json() == {"abort_message": f"Successfully stopped script with ID {pid}"}
        stream.until_topic(FINAL_TOPIC[example.final], pid, timeout=15)
        return pid, stream.received


def test_every_script_in_the_scripts_folder_has_an_example_run() -> None:
    assert sorted(p.name for p in SCRIPTS.glob("*.py")) == sorted(EXAMPLES)


@pytest.mark.parametrize("name", sorted(p.name for p in SCRIPTS.glob("*.py")))
def test_example_script_runs_and_its_events_reach_the_stream(
    server: Server, api: httpx.Client, name: str
) -> None:
    example = EXAMPLES.get(name)
    assert example is not None, f"scripts/{name} has no entry in EXAMPLES"
    pid, received = run_example(server, api, name, example)
    procedure = api.get(f"/procedures/{pid}").json()["procedure"]
    assert procedure["state"] == example.final, procedure
    assert procedure["history"]["stacktrace"] is None
    seen = script_events(received, pid)
    assert matches(seen, example.events), seen


def test_busy_loop_completes_by_itself_after_its_duration(
    server: Server, api: httpx.Client
) -> None:
    example = Example(
        init={},
        run_args=[],
        run_kwargs={"duration": 0.5, "report_every": 0.1},
        events=[
            ("user.script.announce", {"msg": "busy_loop ready for subarray None"}),
            ("user.script.busy.started", {"duration": 0.5}),
            ("user.script.busy.progress", None),
        ],
    )
    pid, received = run_example(server, api, "busy_loop.py", example)
    seen = script_events(received, pid)
    assert matches(seen, example.events), seen
    assert seen[-1][0] == "user.script.busy.finished"
    assert seen[-1][1]["iterations"] > 0


def test_eventbus_publishes_on_its_default_topic_without_arguments(
    server: Server, api: httpx.Client
) -> None:
    example = Example(init={}, run_args=[], run_kwargs={}, events=[])
    pid, received = run_example(server, api, "eventbus.py", example)
    topics = [topic for topic, _ in script_events(received, pid)]
    assert topics.count("user.script.progress") == 3
