"""The event bus behind the SSE stream: numbering, replay and resync."""

import asyncio

from oet.api.events import EventBus
from oet.domain import Topic


def test_event_ids_increase_by_one_from_the_first_id() -> None:
    bus = EventBus(capacity=10, first_id=100)
    ids = [bus.publish("t", {}).id for _ in range(3)]
    assert ids == [100, 101, 102]
    assert bus.last_id == 102


def test_default_ids_start_above_those_of_an_earlier_server_life() -> None:
    earlier = EventBus()
    earlier.publish("t", {})
    assert EventBus().last_id >= earlier.last_id


def test_a_listener_gets_events_published_after_it_subscribed() -> None:
    bus = EventBus(capacity=10, first_id=1)
    bus.publish("before", {})
    subscription = bus.subscribe()
    bus.publish("after", {"n": 1}, procedure_id=4, source="script")
    assert subscription.backlog == []
    event = subscription.queue.get_nowait()
    assert event is not None
    assert (event.topic, event.payload, event.procedure_id, event.source) == (
        "after",
        {"n": 1},
        4,
        "script",
    )


def test_reconnecting_with_last_event_id_replays_exactly_what_was_missed() -> None:
    bus = EventBus(capacity=10, first_id=1)
    for n in range(5):
        bus.publish("t", {"n": n})
    replay = bus.subscribe(last_event_id=2).backlog
    assert [e.id for e in replay] == [3, 4, 5]


def test_reconnecting_up_to_date_replays_nothing() -> None:
    bus = EventBus(capacity=10, first_id=1)
    bus.publish("t", {})
    assert bus.subscribe(last_event_id=1).backlog == []


def test_reconnecting_after_the_buffer_moved_on_gets_a_resync_event() -> None:
    bus = EventBus(capacity=10, first_id=1)
    for _ in range(25):
        bus.publish("t", {})
    (resync,) = bus.subscribe(last_event_id=3).backlog
    assert resync.topic == Topic.RESYNC
    assert resync.payload["oldest_available"] == 16


def test_an_id_from_the_future_gets_a_resync_event() -> None:
    bus = EventBus(capacity=10, first_id=1)
    bus.publish("t", {})
    (resync,) = bus.subscribe(last_event_id=10**12).backlog
    assert resync.topic == Topic.RESYNC


def test_a_listener_that_falls_behind_is_cut_off_instead_of_growing_memory() -> None:
    async def scenario() -> None:
        bus = EventBus(capacity=10, first_id=1)
        subscription = bus.subscribe()
        for _ in range(50):
            bus.publish("t", {})
        assert subscription.lagged
        items = [subscription.queue.get_nowait() for _ in range(subscription.queue.qsize())]
        assert len(items) <= 10
        assert items[-1] is None  # the stream ends; the client reconnects and resyncs

    asyncio.run(scenario())


def test_unsubscribed_listeners_receive_nothing() -> None:
    bus = EventBus(capacity=10, first_id=1)
    subscription = bus.subscribe()
    bus.unsubscribe(subscription)
    bus.publish("t", {})
    assert subscription.queue.empty()
