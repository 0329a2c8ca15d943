"""The ``data:`` of one event: the message's fields on top, OET's fields never overwritten."""

from oet.domain.events import RESERVED, Event, clashes


def test_the_payload_keywords_are_top_level_next_to_oets_fields() -> None:
    data = Event(5, "user.scan", 1.5, 3, "script", {"scan": 7, "msg": "hi"}).to_json()
    assert data == {
        "scan": 7,
        "msg": "hi",
        "msg_src": "ScriptWorker",
        "id": 5,
        "topic": "user.scan",
        "time": 1.5,
        "procedure_id": 3,
        "source": "script",
        "payload": {"scan": 7, "msg": "hi"},
    }


def test_a_reserved_keyword_keeps_oets_value_on_top_and_the_scripts_in_payload() -> None:
    payload = {name: "script's" for name in RESERVED} | {"ok": 1}
    data = Event(5, "user.x", 1.5, 3, "script", payload).to_json()
    assert (data["id"], data["topic"], data["time"], data["procedure_id"]) == (5, "user.x", 1.5, 3)
    assert data["source"] == "script"
    assert data["payload"] == payload
    assert data["ok"] == 1
    assert clashes(payload) == sorted(RESERVED)
    assert clashes({"ok": 1}) == []


def test_msg_src_is_the_publishers_own_or_names_who_published() -> None:
    def msg_src(topic: str, source: str, payload: dict[str, object]) -> object:
        return Event(1, topic, 0.0, None, source, payload).to_json()["msg_src"]

    assert msg_src("user.x", "script", {"msg_src": "observe.py"}) == "observe.py"
    assert msg_src("request.procedure.list", "api", {}) == "FlaskWorker"
    assert msg_src("procedure.lifecycle.created", "api", {}) == "SESWorker"
    assert msg_src("user.x", "script", {}) == "ScriptWorker"
