"""List, then watch, one collection in a thread and hand each change to the event loop.

The kubernetes client is blocking, so each watch runs in a daemon thread of
its own; every change reaches the backend on the event loop's thread
(``call_soon_threadsafe``), which is the only thread touching the cache. When
the API server says the watch's resourceVersion is too old (410 Gone), the
collection is listed again and the whole list handed over (``on_relist``).
"""

import json
import logging
import threading
import time
from asyncio import AbstractEventLoop
from collections.abc import Callable
from typing import Any

from kubernetes import watch
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

Item = dict[str, Any]
Items = list[Item]


class Follower:
    """Keeps one collection's changes flowing to ``on_change(kind, item)``."""

    def __init__(
        self,
        name: str,
        client: ApiClient,
        list_call: Callable[..., Any],
        on_change: Callable[[str, Item], None],
        on_relist: Callable[[list[Item]], None],
    ) -> None:
        self.name = name
        self.client = client
        self.list_call = list_call
        self.on_change = on_change
        self.on_relist = on_relist
        self._stopped = threading.Event()
        self._watch: watch.Watch | None = None
        self._thread: threading.Thread | None = None

    def list(self) -> tuple[list[Item], str]:
        """The whole collection now, and its resourceVersion (blocking)."""
        response = self.list_call(_preload_content=False)
        body = json.loads(response.data)
        return list(body.get("items") or []), str(body["metadata"]["resourceVersion"])

    def start(self, loop: AbstractEventLoop, resource_version: str) -> None:
        """Follow changes after ``resource_version`` until :meth:`stop`."""
        self._thread = threading.Thread(
            target=self._run, args=(loop, resource_version), name=f"watch-{self.name}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop following (the thread ends at its next event or timeout)."""
        self._stopped.set()
        if self._watch is not None:
            self._watch.stop()

    def _run(self, loop: AbstractEventLoop, resource_version: str | None) -> None:
        while not self._stopped.is_set():
            try:
                if resource_version is None:
                    items, resource_version = self.list()
                    loop.call_soon_threadsafe(self.on_relist, items)
                resource_version = self._follow(loop, resource_version)
            except ApiException as exc:
                if exc.status == 410:
                    resource_version = None
                    continue
                log.warning("watching %s failed (%s); trying again", self.name, exc.reason)
                time.sleep(1)
            except Exception as exc:  # a dropped connection: carry on from where we were
                if self._stopped.is_set() or loop.is_closed():
                    return
                log.warning("watching %s failed (%s); trying again", self.name, exc)
                time.sleep(1)

    def _follow(self, loop: AbstractEventLoop, resource_version: str) -> str | None:
        """Deliver changes until the watch times out; the resourceVersion to go on from."""
        self._watch = watch.Watch()
        stream = self._watch.stream(
            self.list_call,
            resource_version=resource_version,
            timeout_seconds=300,
            allow_watch_bookmarks=True,
        )
        for change in stream:
            if self._stopped.is_set():
                break
            kind, item = change["type"], change["object"]
            if not isinstance(item, dict):
                item = self.client.sanitize_for_serialization(item)
            if kind == "ERROR":
                if item.get("code") == 410:
                    return None
                raise ApiException(status=item.get("code"), reason=item.get("message"))
            resource_version = str(item["metadata"]["resourceVersion"])
            if kind != "BOOKMARK":
                loop.call_soon_threadsafe(self.on_change, kind, item)
        return resource_version
