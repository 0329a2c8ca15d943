"""Builds the FastAPI application around a backend and an event bus."""

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from oet import __version__
from oet.api import API_PREFIX, console, health, routes, stream
from oet.api.backends import Backend
from oet.api.backends.embedded import EmbeddedBackend
from oet.api.errors import BodyLimit, LastResort, install_error_handlers
from oet.api.events import EventBus
from oet.api.listing import ListingCache
from oet.api.metrics import install_metrics
from oet.api.openapi import install_openapi
from oet.api.responses import JSONBody
from oet.config import Settings, get_settings


def create_app(
    settings: Settings | None = None, backend: Backend | None = None, listen_url: str = ""
) -> FastAPI:
    """The OET REST application. Without a backend, the embedded one is used.

    ``listen_url`` (e.g. ``http://host:5000``) makes the ``uri`` in events
    absolute when the ``public_url`` setting does not say where clients are.
    """
    settings = settings or get_settings()
    bus: EventBus
    chosen: Backend
    if backend is None and settings.backend == "kubernetes":
        from oet.api.backends.kubernetes import ClusterEventBus, KubernetesBackend

        bus = ClusterEventBus(settings.event_buffer)
        chosen = KubernetesBackend(settings, bus, listen_url)
    else:
        bus = EventBus(settings.event_buffer)
        chosen = backend or EmbeddedBackend(settings, bus, listen_url)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await chosen.startup()
        try:
            yield
        finally:
            await chosen.shutdown()

    app = FastAPI(
        title="OET REST API",
        version=__version__,
        description="Load, start, stop and follow telescope procedures.",
        lifespan=lifespan,
        default_response_class=JSONBody,
    )
    app.state.backend = chosen
    app.state.bus = bus
    app.state.settings = settings
    app.state.listing = ListingCache()
    for prefix, documented in ((API_PREFIX, True), ("/api/v1", False)):
        app.include_router(routes.router, prefix=prefix, include_in_schema=documented)
        app.include_router(stream.router, prefix=prefix, include_in_schema=documented)
    app.include_router(console.router)
    app.include_router(health.router)
    install_metrics(app, chosen, bus)
    install_error_handlers(app)
    install_openapi(app)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(LastResort)
    return app
