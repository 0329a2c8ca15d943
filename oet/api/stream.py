"""``GET /stream``: every event as Server-Sent Events.

Each message has ``id:`` (increasing), ``event:`` (the topic) and ``data:``
(the event as JSON, topic included). A client that reconnects with a
``Last-Event-ID`` header first gets what it missed, or a ``stream.resync``
event when that is no longer buffered.
"""

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from fastapi import APIRouter, Header, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from oet.api.events import EventBus
from oet.domain import Event

router = APIRouter()


def _message(event: Event) -> ServerSentEvent:
    return ServerSentEvent(
        data=json.dumps(event.to_json(), default=repr), event=event.topic, id=str(event.id)
    )


def _event_id(header: str | None) -> int | None:
    """The ID a client resumes from; anything that cannot be one of ours is unknown (None)."""
    text = (header or "").strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 19 else None


@router.get("/stream", summary="Stream OET events")
async def stream(
    request: Request,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> EventSourceResponse:
    """Every request, lifecycle and script event, as they happen."""
    bus: EventBus = request.app.state.bus
    resume = _event_id(last_event_id)
    subscription = bus.subscribe(resume)

    shutdown = anyio.Event()

    async def close_on_shutdown() -> None:
        await shutdown.wait()
        subscription.close()

    async def events() -> AsyncIterator[ServerSentEvent]:
        # On server shutdown the stream ends like any other response, instead of
        # being cancelled half-way; the client reconnects with Last-Event-ID.
        watcher = asyncio.create_task(close_on_shutdown())
        try:
            for event in subscription.backlog:
                yield _message(event)
            while (live := await subscription.queue.get()) is not None:
                yield _message(live)
        finally:
            watcher.cancel()
            bus.unsubscribe(subscription)

    return EventSourceResponse(events(), ping=15, shutdown_event=shutdown, shutdown_grace_period=2)
