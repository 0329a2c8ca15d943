"""Event IDs of the Kubernetes backend: the same on every replica, replay or resync."""

from oet.api.backends.kubernetes.bus import ID_SCALE, ClusterEventBus
from oet.domain import Event, Topic


def _feed(bus: ClusterEventBus, *versions: int) -> None:
    for rv in versions:
        bus.publish_cluster(rv, "procedure.lifecycle.created", {"rv": rv}, 1, "api", 0.0)


def test_cluster_events_are_numbered_by_resource_version_on_every_replica() -> None:
    first, second = ClusterEventBus(100), ClusterEventBus(100)
    first.publish(Topic.REQUEST_LIST, {"pids": None})  # a request only the first one saw
    _feed(first, 7, 9)
    _feed(second, 7, 9)
    assert [e.id for e in first._buffer] == [7 * ID_SCALE, 9 * ID_SCALE]
    assert [e.id for e in second._buffer] == [7 * ID_SCALE, 9 * ID_SCALE]


def test_request_events_follow_the_newest_cluster_event_without_taking_a_cluster_id() -> None:
    bus = ClusterEventBus(100)
    _feed(bus, 7)
    ids = [bus.publish(Topic.REQUEST_START, {}, 1).id for _ in range(3)]
    _feed(bus, 8)
    assert ids == [7 * ID_SCALE + 1, 7 * ID_SCALE + 2, 7 * ID_SCALE + 3]
    assert bus.publish(Topic.REQUEST_STOP, {}, 1).id == 8 * ID_SCALE + 1


def test_a_client_moved_to_another_replica_gets_every_cluster_event_after_its_last_id() -> None:
    first, second = ClusterEventBus(100), ClusterEventBus(100)
    _feed(first, 3, 5)
    _feed(second, 3, 5, 6, 8)
    last = first.publish(Topic.REQUEST_START, {}, 1).id  # the client's last event, on `first`

    replay = second.subscribe(last).backlog

    assert [e.id // ID_SCALE for e in replay] == [6, 8]


def test_an_id_from_before_what_a_restarted_replica_can_vouch_for_gets_a_resync() -> None:
    bus = ClusterEventBus(100)
    seen = Event(12 * ID_SCALE, "procedure.lifecycle.complete", 0.0, 1, "api", {})
    bus.seed([seen], exact_from=12 * ID_SCALE)

    assert bus.subscribe(12 * ID_SCALE).backlog == []
    assert [e.topic for e in bus.subscribe(10 * ID_SCALE).backlog] == [Topic.RESYNC]


def test_a_late_event_from_the_other_watch_is_replayed_in_id_order() -> None:
    bus = ClusterEventBus(100)
    _feed(bus, 5, 9)
    bus.publish_cluster(7, "user.script.hello", {}, 1, "script", 0.0)

    assert [e.id // ID_SCALE for e in bus.subscribe(5 * ID_SCALE).backlog] == [7, 9]


def test_a_late_event_reaches_listeners_and_observers_like_any_other() -> None:
    bus = ClusterEventBus(100)
    observed: list[int] = []
    bus.observe(lambda e: observed.append(e.id // ID_SCALE))
    listener = bus.subscribe()
    _feed(bus, 5, 9)
    bus.publish_cluster(7, "procedure.lifecycle.failed", {}, 1, "api", 0.0)

    assert observed == [5, 9, 7]  # /metrics counts a FAILED that came late
    assert [listener.queue.get_nowait().id // ID_SCALE for _ in range(3)] == [5, 9, 7]


def test_a_late_event_on_a_full_buffer_pushes_out_the_oldest() -> None:
    bus = ClusterEventBus(3)
    _feed(bus, 5, 9, 11)
    bus.publish_cluster(7, "user.script.hello", {}, 1, "script", 0.0)

    assert [e.id // ID_SCALE for e in bus._buffer] == [7, 9, 11]
