"""``oet listen`` across lost streams: reconnect with Last-Event-ID, or give up in time.

The stream is served by httpx.MockTransport and time is a fake clock, so
these run instantly; the real server restart is tested in tests/e2e.
"""

import json

import httpx
import pytest

from oet.cli.client import ProcedureClient, ServerUnreachable, StreamEvent
from oet.cli.listening import follow

URL = "http://oet.test/api/v1.0/procedures"


def sse(event_id: int, topic: str) -> str:
    data = {"id": event_id, "topic": topic, "procedure_id": None}
    return f"id: {event_id}\nevent: {topic}\ndata: {json.dumps(data)}\n\n"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def pause(self, seconds: float) -> None:
        self.now += seconds


class Scripted:
    """Answers stream requests from a list: SSE text, or an exception to raise."""

    def __init__(self, *answers: str | Exception) -> None:
        self.answers = list(answers)
        self.last_event_ids: list[str | None] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.last_event_ids.append(request.headers.get("Last-Event-ID"))
        answer = self.answers.pop(0) if self.answers else httpx.ConnectError("refused")
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(200, text=answer, headers={"content-type": "text/event-stream"})


def listen(
    server: Scripted, reconnect_for: float, wanted: str = ""
) -> tuple[list[str], list[str], Clock]:
    shown: list[str] = []
    notices: list[str] = []
    clock = Clock()
    client = ProcedureClient(httpx.Client(transport=httpx.MockTransport(server)), URL)

    def show(event: StreamEvent) -> None:
        shown.append(f"{event.id} {event.topic}")

    with pytest.raises(ServerUnreachable) as failure:
        follow(
            client,
            lambda e: e.topic.startswith(wanted),
            show,
            notices.append,
            reconnect_for,
            pause=clock.pause,
            clock=clock,
        )
    notices.append(str(failure.value))
    return shown, notices, clock


def test_a_lost_stream_is_reopened_from_the_last_event_seen() -> None:
    server = Scripted(sse(1, "a") + sse(2, "b"), sse(3, "c"))
    shown, notices, _ = listen(server, reconnect_for=5)
    assert shown == ["1 a", "2 b", "3 c"]
    assert server.last_event_ids[:2] == [None, "2"]
    assert "reconnecting for up to 5 s" in notices[0]
    assert notices[1] == "Reconnected to the event stream"


def test_listen_gives_up_when_the_server_stays_away_past_the_limit() -> None:
    server = Scripted(sse(1, "a"))
    shown, notices, clock = listen(server, reconnect_for=5)
    assert shown == ["1 a"]
    assert "gave up reconnecting after 5 s" in notices[-1]
    assert 5 <= clock.now < 7
    assert len(server.last_event_ids) <= 8  # about one attempt a second, not a busy loop


def test_a_server_that_cannot_be_reached_at_all_fails_at_once() -> None:
    server = Scripted(httpx.ConnectError("refused"))
    shown, notices, clock = listen(server, reconnect_for=60)
    assert shown == []
    assert notices == [
        "Cannot reach the OET server at " + URL.removesuffix("/procedures") + "/stream: refused"
    ]
    assert clock.now == 0


def test_with_reconnecting_off_a_closed_stream_ends_listen() -> None:
    shown, notices, _ = listen(Scripted(sse(1, "a")), reconnect_for=0)
    assert shown == ["1 a"]
    assert notices == [f"The OET server at {URL} closed the event stream"]


def test_a_resync_event_is_shown_even_when_filtered_out() -> None:
    server = Scripted(sse(1, "user.x") + sse(2, "stream.resync") + sse(3, "other"))
    shown, _, _ = listen(server, reconnect_for=0, wanted="user.")
    assert shown == ["1 user.x", "2 stream.resync"]
