"""The SSE stream at ``GET /api/v1.0/stream``, followed as ``oet listen`` and browsers do.

Every test talks to a real OET server over HTTP and reads the stream as raw
SSE (``tests.sse``), so what is asserted is what a client on the wire sees.
"""

import itertools
import json
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.conftest import Server
from tests.procedures import ANNOUNCES_THEN_SLEEPS, QUICK, SLEEPER, create_id, start, stop
from tests.sse import EventStream, Message

pytestmark = [pytest.mark.e2e, pytest.mark.both_backends]

CREATED = "procedure.lifecycle.created"
STARTED = "procedure.lifecycle.started"
COMPLETE = "procedure.lifecycle.complete"
FAILED = "procedure.lifecycle.failed"
STOPPED = "procedure.lifecycle.stopped"
LIFECYCLE = (CREATED, STARTED, COMPLETE, FAILED, STOPPED)


@pytest.fixture
def stream(server: Server) -> Iterator[EventStream]:
    """The server's event stream, already subscribed."""
    with EventStream(f"{server.api}/stream") as events:
        yield events


def run_publishes(arguments: str) -> str:
    """A script whose run() calls ``scripting.publish(arguments)``."""
    return f"from oet import scripting\n\ndef run():\n    scripting.publish({arguments})\n"


def lifecycle_of(messages: list[Message], pid: int) -> list[str]:
    return [m.topic for m in messages if m.topic in LIFECYCLE and m.procedure_id == pid]


def assert_ids_increase(messages: list[Message]) -> None:
    ids = [int(m.id or "") for m in messages]
    assert all(a < b for a, b in itertools.pairwise(ids)), ids


def list_and_read(api: httpx.Client, events: EventStream) -> Message:
    """Ask for the procedure list and return the request event it causes."""
    api.get("/procedures")
    return events.until_topic("request.procedure.list")[-1]


def test_stream_is_served_as_server_sent_events(stream: EventStream) -> None:
    assert stream.status_code == 200
    assert stream.content_type is not None
    assert stream.content_type.startswith("text/event-stream")


def test_each_message_has_an_id_its_topic_as_event_and_the_event_as_json_data(
    api: httpx.Client, stream: EventStream
) -> None:
    before = time.time()
    message = list_and_read(api, stream)
    data = message.body
    assert set(data) == {"id", "topic", "time", "procedure_id", "source", "payload"} | {
        "msg_src",
        "pids",
    }
    assert message.id == str(data["id"])
    assert message.event == data["topic"] == "request.procedure.list"
    assert data["procedure_id"] is None
    assert data["source"] == "api"
    assert data["payload"] == {"pids": None}
    assert data["pids"] is None  # the user docs' shape: the message's fields at the top
    assert data["msg_src"] == "FlaskWorker"
    assert before - 1 <= data["time"] <= time.time() + 1


def test_ids_strictly_increase_across_requests_lifecycle_and_script_events(
    api: httpx.Client, stream: EventStream, script: Callable[[str], str]
) -> None:
    uri = script(run_publishes("'test.hi'"))
    pid = create_id(api, uri)
    api.get("/procedures")
    start(api, pid)
    stream.until_topic(COMPLETE, pid)
    api.get(f"/procedures/{pid}")
    stream.until_topic("request.procedure.list")
    assert {"test.hi", CREATED, STARTED, COMPLETE} <= {m.topic for m in stream.received}
    assert_ids_increase(stream.received)
    assert all(m.id == str(m.body["id"]) for m in stream.received)


def test_every_request_is_announced_on_the_stream(
    api: httpx.Client, stream: EventStream, script: Callable[[str], str]
) -> None:
    uri = script(ANNOUNCES_THEN_SLEEPS)
    pid = create_id(api, uri, subarray_id=1)
    api.get("/procedures")
    api.get(f"/procedures/{pid}")
    start(api, pid, "scan", duration=2)
    stream.until_topic("test.running", pid)
    stop(api, pid)
    stream.until_topic(STOPPED, pid)

    requests = [m.body for m in stream.received if m.topic.startswith("request.procedure.")]
    by_topic = {r["topic"]: r for r in requests}
    assert by_topic["request.procedure.create"]["payload"]["script_uri"] == uri
    assert by_topic["request.procedure.create"]["payload"]["init_args"] == {
        "args": [],
        "kwargs": {"subarray_id": 1},
    }
    lists = [r["payload"]["pids"] for r in requests if r["topic"] == "request.procedure.list"]
    assert lists == [None, [pid]]
    assert by_topic["request.procedure.start"]["procedure_id"] == pid
    assert by_topic["request.procedure.start"]["payload"]["run_args"] == {
        "args": ["scan"],
        "kwargs": {"duration": 2},
    }
    assert by_topic["request.procedure.stop"]["procedure_id"] == pid
    assert by_topic["request.procedure.stop"]["payload"] == {"abort": False}
    order = [r["topic"] for r in requests]
    assert order == [
        "request.procedure.create",
        "request.procedure.list",
        "request.procedure.list",
        "request.procedure.start",
        "request.procedure.stop",
    ]


def test_lifecycle_of_an_instant_script_arrives_as_created_started_complete(
    api: httpx.Client, stream: EventStream, script: Callable[[str], str]
) -> None:
    uri = script(QUICK)
    for _ in range(6):
        pid = create_id(api, uri)
        start(api, pid)
        stream.until_topic(COMPLETE, pid)
        assert lifecycle_of(stream.received, pid) == [CREATED, STARTED, COMPLETE]
        complete = stream.received[-1].body["payload"]["procedure"]
        assert complete["state"] == "COMPLETED"
        assert list(complete["history"]["process_states"])[-3:] == [
            "CREATED",
            "RUNNING",
            "COMPLETED",
        ]
    assert_ids_increase(stream.received)


def test_a_failing_script_is_announced_as_failed_with_its_stack_trace(
    api: httpx.Client, stream: EventStream, script: Callable[[str], str]
) -> None:
    pid = create_id(api, script("def run():\n    raise ValueError('no dishes')\n"))
    start(api, pid)
    failed = stream.until_topic(FAILED, pid)[-1].body
    assert failed["procedure_id"] == pid
    procedure = failed["payload"]["procedure"]
    assert procedure["state"] == "FAILED"
    assert "ValueError: no dishes" in procedure["history"]["stacktrace"]
    assert lifecycle_of(stream.received, pid) == [CREATED, STARTED, FAILED]


def test_a_stopped_script_is_announced_as_stopped(
    api: httpx.Client, stream: EventStream, script: Callable[[str], str]
) -> None:
    pid = create_id(api, script(ANNOUNCES_THEN_SLEEPS))
    start(api, pid)
    stream.until_topic("test.running", pid)
    assert stop(api, pid) == f"Successfully stopped script with ID {pid}"
    stopped = stream.until_topic(STOPPED, pid)[-1].body
    assert stopped["payload"]["procedure"]["state"] == "STOPPED"
    assert lifecycle_of(stream.received, pid) == [CREATED, STARTED, STOPPED]


def test_script_events_arrive_with_the_procedure_id_and_payload(
    api: httpx.Client, stream: EventStream, script: Callable[[str], str]
) -> None:
    uri = script(
        "from pubsub import pub\n"
        "from oet import scripting\n\n"
        "def init(subarray_id):\n"
        "    scripting.publish('user.script.loaded', subarray_id=subarray_id)\n\n"
        "def run(scan):\n"
        "    scripting.publish('user.script.scan', scan=scan, dishes=[1, 2])\n"
        "    pub.sendMessage('user.script.announce', msg_src='test', msg=f'scan {scan} done')\n"
    )
    pid = create_id(api, uri, subarray_id=3)
    start(api, pid, 7)
    stream.until_topic(COMPLETE, pid)
    script_events = {m.topic: m.body for m in stream.received if m.body["source"] == "script"}
    assert set(script_events) == {
        "user.script.loaded",
        "user.script.scan",
        "user.script.announce",
    }
    for event in script_events.values():
        assert event["procedure_id"] == pid
    assert script_events["user.script.loaded"]["payload"] == {"subarray_id": 3}
    assert script_events["user.script.scan"]["payload"] == {"scan": 7, "dishes": [1, 2]}
    assert script_events["user.script.announce"]["payload"] == {
        "msg_src": "test",
        "msg": "scan 7 done",
    }
    topics = [m.topic for m in stream.received if m.procedure_id == pid]
    assert topics.index(CREATED) > topics.index("user.script.loaded")
    assert topics.index(STARTED) < topics.index("user.script.scan")
    assert topics.index("user.script.announce") < topics.index(COMPLETE)


def test_reconnecting_with_last_event_id_replays_exactly_the_missed_events(
    server: Server, api: httpx.Client, script: Callable[[str], str]
) -> None:
    url = f"{server.api}/stream"
    with EventStream(url) as witness:
        with EventStream(url) as client:
            seen = list_and_read(api, client)
            assert witness.until_topic("request.procedure.list")[-1] == seen
        # The client is gone; a procedure runs while it is away.
        pid = create_id(api, script(run_publishes("'t'")))
        start(api, pid)
        missed = witness.until_topic(COMPLETE, pid)
        assert len(missed) >= 5
        with EventStream(url, last_event_id=seen.id) as client:
            replayed = [client.next() for _ in missed]
            assert replayed == missed
            live = list_and_read(api, client)
            assert client.received == [*missed, live]
            assert int(live.id or "") > int(missed[-1].id or "")


def test_reconnecting_with_the_newest_id_replays_nothing(
    api: httpx.Client, stream: EventStream, server: Server
) -> None:
    newest = list_and_read(api, stream)
    with EventStream(f"{server.api}/stream", last_event_id=newest.id) as client:
        live = list_and_read(api, client)
        assert client.received == [live]
        assert int(live.id or "") == int(newest.id or "") + 1


def test_last_event_id_older_than_the_buffer_gives_a_resync_event_first(
    make_server: Callable[..., Server],
) -> None:
    server = make_server(env={"OET_EVENT_BUFFER": "10"})
    with server.client() as api, EventStream(f"{server.api}/stream") as stream:
        first = list_and_read(api, stream)
        for _ in range(15):
            newest = list_and_read(api, stream)
    with server.client() as api, EventStream(f"{server.api}/stream", first.id) as client:
        resync = client.next()
        assert resync.topic == "stream.resync"
        data = resync.body
        assert data["topic"] == "stream.resync"
        assert str(first.id) in data["payload"]["reason"]
        oldest = data["payload"]["oldest_available"]
        assert int(first.id or "") < oldest <= int(newest.id or "")
        live = list_and_read(api, client)
        assert client.received == [resync, live]


@pytest.mark.embedded_only(
    "on Kubernetes an ID ahead of a replica may be another replica's: docs/kubernetes.md"
)
def test_last_event_id_from_the_future_gives_a_resync_event_first(
    api: httpx.Client, stream: EventStream, server: Server
) -> None:
    newest = list_and_read(api, stream)
    future = int(newest.id or "") + 1000
    with EventStream(f"{server.api}/stream", last_event_id=future) as client:
        resync = client.next()
        assert resync.topic == "stream.resync"
        assert str(future) in resync.body["payload"]["reason"]
        live = list_and_read(api, client)
        assert client.received == [resync, live]


@pytest.mark.embedded_only("on Kubernetes event IDs outlive a restart: nothing to resync")
def test_last_event_id_from_before_a_server_restart_gives_a_resync_event(
    make_server: Callable[..., Server],
) -> None:
    before = make_server()
    with before.client() as api, EventStream(f"{before.api}/stream") as stream:
        old = list_and_read(api, stream)
    before.stop()
    after = make_server()
    with after.client() as api, EventStream(f"{after.api}/stream", old.id) as client:
        assert client.next().topic == "stream.resync"
        live = list_and_read(api, client)
        assert int(live.id or "") > int(old.id or "")


def test_event_data_is_valid_json_even_for_odd_script_payloads(
    api: httpx.Client, stream: EventStream, script: Callable[[str], str]
) -> None:
    uri = script(run_publishes("'test.odd', values={1, 2}, text='line one\\nline two'"))
    pid = create_id(api, uri)
    start(api, pid)
    odd = stream.until_topic("test.odd", pid)[-1]
    assert json.loads(odd.data)["payload"] == {"values": "{1, 2}", "text": "line one\nline two"}


def test_server_shutdown_ends_open_streams_cleanly_without_errors(
    server: Server, api: httpx.Client, script: Callable[[str], str]
) -> None:
    with EventStream(f"{server.api}/stream") as events:
        pid = create_id(api, script(SLEEPER))
        start(api, pid)
        events.until_topic(STARTED, pid)
        server.stop()
        with pytest.raises(AssertionError, match="the event stream ended"):
            events.until(lambda m: False, timeout=30, what="the end of the stream")
    assert "ERROR" not in server.log.read_text()
