"""What a stream consumer written for the user docs reads: the message's fields at the top.

The docs show each ``data:`` object as ``{"msg_src": ..., "pids": null,
"topic": ...}``: the published keyword arguments beside ``topic`` and
``msg_src``. These tests publish from real scripts in real runners, through
both ``pub.sendMessage`` and ``oet.scripting.publish``, and read the raw SSE.
"""

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Server
from tests.procedures import create_id, start
from tests.sse import EventStream

pytestmark = [pytest.mark.e2e, pytest.mark.both_backends]

PUBLISHERS = {
    "pubsub": "from pubsub import pub\n\ndef run():\n    pub.sendMessage({arguments})\n",
    "scripting": ("from oet import scripting\n\ndef run():\n    scripting.publish({arguments})\n"),
}


@pytest.fixture
def stream(server: Server) -> Iterator[EventStream]:
    with EventStream(f"{server.api}/stream") as events:
        yield events


def published(
    api: httpx.Client,
    stream: EventStream,
    script: Callable[[str], str],
    publisher: str,
    arguments: str,
    topic: str,
) -> tuple[int, dict[str, Any]]:
    """Run a script that publishes ``arguments``; its ID and the ``data`` of that event."""
    pid = create_id(api, script(PUBLISHERS[publisher].format(arguments=arguments)))
    start(api, pid)
    return pid, stream.until_topic(topic, pid, timeout=20)[-1].body


@pytest.mark.parametrize("publisher", PUBLISHERS)
def test_the_published_keyword_arguments_are_top_level_fields(
    api: httpx.Client, stream: EventStream, script: Callable[[str], str], publisher: str
) -> None:
    pid, data = published(
        api, stream, script, publisher, "'some.topic', msg='hi', scan=3", "some.topic"
    )
    assert data["msg"] == "hi"
    assert data["scan"] == 3
    assert data["topic"] == "some.topic"
    assert data["procedure_id"] == pid
    assert data["source"] == "script"
    assert data["msg_src"] == "ScriptWorker"  # who published, when the script does not say
    assert isinstance(data["time"], float)
    assert data["payload"] == {"msg": "hi", "scan": 3}  # kept whole, as before


@pytest.mark.parametrize("publisher", PUBLISHERS)
def test_a_scripts_own_msg_src_is_the_one_on_the_stream(
    api: httpx.Client, stream: EventStream, script: Callable[[str], str], publisher: str
) -> None:
    _, data = published(
        api, stream, script, publisher, "'user.x', msg_src='observe.py', step=1", "user.x"
    )
    assert (data["msg_src"], data["step"]) == ("observe.py", 1)


@pytest.mark.parametrize("publisher", PUBLISHERS)
def test_a_keyword_named_like_an_oet_field_never_overwrites_it_and_is_kept_in_payload(
    server: Server,
    backend: str,
    request: pytest.FixtureRequest,
    api: httpx.Client,
    stream: EventStream,
    script: Callable[[str], str],
    publisher: str,
) -> None:
    arguments = (
        "'user.clash', topic='mine', time='noon', id='x', procedure_id=99,"
        " source='me', payload=[1], note='kept'"
    )
    pid, data = published(api, stream, script, publisher, arguments, "user.clash")
    assert data["topic"] == "user.clash"
    assert isinstance(data["time"], float)
    assert isinstance(data["id"], int)
    assert data["procedure_id"] == pid
    assert data["source"] == "script"
    assert data["note"] == "kept"
    assert data["payload"] == {
        "topic": "mine",
        "time": "noon",
        "id": "x",
        "procedure_id": 99,
        "source": "me",
        "payload": [1],
        "note": "kept",
    }
    # and the runner's log says so, once, for the script's author: on the embedded backend
    # that is the server's log, on Kubernetes the runner Pod's
    if backend == "kubernetes":
        log = request.getfixturevalue("kube_stack").runner_log(pid)
    else:
        log = server.log.read_text()
    assert "event 'user.clash' uses id, payload, procedure_id, source, time, topic" in log


def test_request_events_carry_their_fields_at_the_top_level_as_the_docs_show(
    api: httpx.Client, stream: EventStream, script: Callable[[str], str]
) -> None:
    api.get("/procedures")
    data = stream.until_topic("request.procedure.list")[-1].body
    assert {k: data[k] for k in ("msg_src", "pids", "topic")} == {
        "msg_src": "FlaskWorker",
        "pids": None,
        "topic": "request.procedure.list",
    }


def test_lifecycle_events_carry_the_procedure_at_the_top_level_and_in_payload(
    api: httpx.Client, stream: EventStream, script: Callable[[str], str]
) -> None:
    pid = create_id(api, script("def run():\n    pass\n"))
    data = stream.until_topic("procedure.lifecycle.created", pid)[-1].body
    assert data["procedure"]["state"] == "CREATED"
    assert data["payload"]["procedure"] == data["procedure"]
    assert data["msg_src"] == "SESWorker"
