"""Script events as Events: the format the runner writes and the API backend reads."""

import json

from oet.kube.events import HEAD_CHARS, MAX_EVENT_MESSAGE, read_script_event, script_event
from oet.kube.resource import ProcedureResource

PROCEDURE: ProcedureResource = {
    "metadata": {"name": "procedure-3", "namespace": "oet", "uid": "u-1"}
}


def test_an_event_carries_topic_payload_time_and_sequence_and_reads_back() -> None:
    body, cut = script_event(PROCEDURE, "user.script.announce", {"msg": "hi"}, 1.25, 7, "pod-a")

    assert not cut
    assert body["reason"] == "user.script.announce"
    assert body["involvedObject"]["name"] == "procedure-3"
    assert body["involvedObject"]["kind"] == "Procedure"
    assert body["metadata"]["labels"]["oet.skao.int/procedure"] == "procedure-3"
    assert body["metadata"]["generateName"] == "procedure-3."
    assert body["reportingInstance"] == "pod-a"
    assert json.loads(body["message"]) == {
        "topic": "user.script.announce", "time": 1.25, "seq": 7, "payload": {"msg": "hi"},
    }  # fmt: skip
    event = read_script_event(body)
    assert event is not None
    assert (event.topic, event.time, event.seq, event.payload) == (
        "user.script.announce", 1.25, 7, {"msg": "hi"},
    )  # fmt: skip
    assert event.truncated is None


def test_an_over_large_payload_is_cut_with_a_marker_and_never_dropped() -> None:
    payload = {"data": "é" * MAX_EVENT_MESSAGE}

    body, cut = script_event(PROCEDURE, "user.script.big", payload, 2.0, 1, "pod-a")

    assert cut
    assert len(body["message"].encode()) <= MAX_EVENT_MESSAGE
    event = read_script_event(body)
    assert event is not None
    assert event.topic == "user.script.big"
    whole = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    assert event.truncated == {"bytes": len(whole.encode()), "limit": MAX_EVENT_MESSAGE}
    assert event.payload == {"head": whole[:HEAD_CHARS]}


def test_values_json_cannot_carry_are_sent_as_their_repr() -> None:
    body, _ = script_event(PROCEDURE, "t", {"when": {1, 2}.__class__}, 0.0, 1, "p")

    event = read_script_event(body)
    assert event is not None
    assert event.payload == {"when": "<class 'set'>"}


def test_events_that_are_not_script_events_are_ignored() -> None:
    assert read_script_event({"metadata": {"labels": {}}, "message": "{}"}) is None
    body, _ = script_event(PROCEDURE, "t", {}, 0.0, 1, "p")
    assert read_script_event({**body, "message": "not json"}) is None
