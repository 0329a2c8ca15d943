"""The Kubernetes backend: each procedure is a Procedure resource; runners are the operator's.

This server keeps no state of its own. Reads (list, get) come from a cache
that a watch on the namespace's Procedures keeps current, so a GET costs the
API server nothing. Changes go to the API server: create makes the resource,
start and stop patch its ``spec`` (guarded JSON Patches), and the answer waits
until the cache shows the runner's reaction, as the embedded backend waits
for its runner. Lifecycle events come from status changes seen by the watch,
script events from the runner's Events (``oet.kube.events``); both are
numbered by resourceVersion (:mod:`.bus`), so any replica can serve a client,
and sent in the order the runner wrote them, whichever watch lags (:mod:`.ordering`).
"""

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from kubernetes.client.exceptions import ApiException

from oet.api import procedure_path
from oet.api.backends.kubernetes.bus import ID_SCALE, ClusterEventBus
from oet.api.backends.kubernetes.cluster import Cluster
from oet.api.backends.kubernetes.ordering import StreamOrder
from oet.api.backends.kubernetes.watch import Follower, Item, Items
from oet.config import Settings
from oet.domain import (
    Event,
    InvalidRequest,
    Procedure,
    ProcedureInput,
    ProcedureNotFound,
    ProcedureState,
    RunnerError,
    StateConflict,
    Topic,
)
from oet.domain.rules import (
    abort_message,
    check_can_discard,
    check_can_start,
    check_can_stop,
    next_to_drop,
)
from oet.kube import abort_outcome, from_custom_resource, read_spec, to_custom_resource
from oet.kube.client import api_client, client_configuration, current_namespace
from oet.kube.events import read_script_event
from oet.kube.names import procedure_id
from oet.kube.spec_patches import start_patch, stop_patch
from oet.script_files import locate_script

log = logging.getLogger(__name__)
S = ProcedureState

LIFECYCLE_TOPICS = {
    S.CREATED: Topic.CREATED,
    S.RUNNING: Topic.STARTED,
    S.COMPLETED: Topic.COMPLETE,
    S.FAILED: Topic.FAILED,
    S.STOPPED: Topic.STOPPED,
}


READ_TIMEOUT = 3.0
"""Seconds a final state waits at most for the read of its procedure's script Events
(:mod:`.ordering`); if the read fails, they follow when the Events watch brings them."""


_Waiter = tuple[Callable[[Procedure], bool], "asyncio.Future[Procedure | None]"]
"""A request waiting for a procedure's change: what it waits for, and its answer."""


def _rv(item: Item) -> int:
    return int(item.get("metadata", {}).get("resourceVersion") or 0)


class KubernetesBackend:
    """Procedures as custom resources in ``kube_namespace``, read through a watch-fed cache."""

    def __init__(self, settings: Settings, bus: ClusterEventBus, base_url: str = "") -> None:
        self.settings = settings
        self.bus = bus
        self.base_url = (settings.public_url or base_url).rstrip("/")
        self.namespace = current_namespace(settings.kube_namespace)
        client = api_client(client_configuration())
        self.cluster = Cluster(client, self.namespace)
        self._procedures: dict[int, Procedure] = {}
        self._resources: dict[int, Item] = {}
        self._waiters: dict[int, list[_Waiter]] = {}
        self._order = StreamOrder(
            self._publish, self._state_of, self._read_script_events, self._notify
        )
        self._followers = [
            Follower("procedures", client, self.cluster.list_procedures,
                     self._on_procedure, self._on_procedures_relisted),
            Follower("events", client, self.cluster.list_events,
                     self._on_event, self._on_events_relisted),
        ]  # fmt: skip

    # -- lifecycle of the server ---------------------------------------------
    async def startup(self) -> None:
        """Fill the cache and the replay buffer from the cluster, then follow it."""
        loop = asyncio.get_running_loop()
        procedures, events = self._followers
        items, procedures_rv = await asyncio.to_thread(procedures.list)
        notes, events_rv = await asyncio.to_thread(events.list)
        seeds: list[Event] = []
        exact_from = 0
        for item in items:
            procedure = self._store(item)
            event = self._lifecycle_event(procedure, item) if procedure else None
            if event is not None:
                seeds.append(event)
                exact_from = max(exact_from, event.id)
        for note in notes:
            if (script := self._script_event(note)) is not None and self._order.take(script):
                seeds.append(script)
        for pid in {e.procedure_id for e in seeds} - {None, *self._procedures}:
            self._order.forget(pid)  # type: ignore[arg-type]  # Events of procedures gone
        self.bus.seed(seeds, exact_from)
        procedures.start(loop, procedures_rv)
        events.start(loop, events_rv)
        log.info("following procedures in namespace %s", self.namespace)

    async def shutdown(self) -> None:
        """Stop following the cluster. Procedures go on: their runners are not ours."""
        for follower in self._followers:
            follower.stop()
        await self._order.close()

    # -- queries ------------------------------------------------------------
    def list(self, pids: list[int] | None = None) -> list[Procedure]:
        if pids is None:
            return [self._procedures[pid] for pid in sorted(self._procedures)]
        return [self.get(pid) for pid in pids]

    def get(self, pid: int) -> Procedure:
        try:
            return self._procedures[pid]
        except KeyError:
            raise ProcedureNotFound(pid) from None

    # -- commands -----------------------------------------------------------
    async def create(self, script_uri: str, init: ProcedureInput, run: ProcedureInput) -> Procedure:
        # The API sees the scripts the runners see (the chart mounts them in both), so a
        # script that cannot be run is refused here, before an ID or a runner is spent on it.
        locate_script(script_uri, self.settings.allowed_script_dirs())
        await self._make_room()
        while True:
            floor = max(self._procedures, default=0)
            pid = await self._call(self.cluster.next_id, floor)
            body = to_custom_resource(Procedure(pid, script_uri, init, run), self.namespace)
            body.pop("status", None)
            try:
                created = await asyncio.to_thread(self.cluster.create_procedure, body)
            except ApiException as exc:
                if exc.status == 409:  # made by hand or by an older counter: take the next
                    continue
                if exc.status == 422:  # the CRD's schema refused it (e.g. a URI without scheme)
                    raise InvalidRequest(f"Cannot create the procedure: {_message(exc)}") from None
                raise _error(exc, f"Procedure {pid} could not be created") from None
            break
        self._on_procedure("ADDED", dict(created))
        await self._wait_until(pid, lambda p: p.state != S.INITIALISING, self.settings.create_wait)
        return self.get(pid)

    async def start(self, pid: int, run: ProcedureInput | None) -> Procedure:
        procedure = self.get(pid)
        check_can_start(procedure, self._procedures.values())
        await self._call(self.cluster.take_running_lease, pid)
        # Watched from before the patch: the runner's RUNNING may arrive before the patch's
        # answer, and a quick script's COMPLETED right after it.
        with self._watching(pid, lambda p: p.state != S.CREATED) as reaction:
            try:
                await asyncio.to_thread(self.cluster.patch_spec, pid, start_patch(run))
            except ApiException as exc:
                await asyncio.to_thread(self.cluster.release_running_lease, pid)
                raise _error(exc, f"Procedure {pid} could not be started") from None
            started = await self._answer(pid, reaction, self.settings.create_wait)
        # As the runner first answered: RUNNING, even if a quick script has completed since.
        return started or self.get(pid)

    async def stop(self, pid: int, abort: bool) -> str:
        procedure = self.get(pid)
        check_can_stop(procedure)
        seen = read_spec(self._resources[pid]).desired_state  # type: ignore[arg-type]
        try:
            await asyncio.to_thread(self.cluster.patch_spec, pid, stop_patch(seen, abort))
        except ApiException as exc:
            raise _error(exc, f"Procedure {pid} could not be stopped") from None
        limit = self.settings.stop_grace + self.settings.abort_timeout + 5
        await self._wait_until(pid, lambda p: p.is_final, limit)
        procedure = self._procedures.get(pid, procedure)
        resource = self._resources.get(pid, {})
        return abort_message(procedure, abort, abort_outcome(resource))  # type: ignore[arg-type]

    async def discard(self, pid: int) -> Procedure:
        procedure = self.get(pid)
        check_can_discard(procedure)
        seen = str(self._resources[pid].get("metadata", {}).get("resourceVersion", ""))
        try:  # only the version the rules were checked on: a start elsewhere meanwhile wins
            await asyncio.to_thread(self.cluster.delete_procedure, pid, seen or None)
        except ApiException as exc:
            raise _error(exc, f"Procedure {pid} could not be discarded") from None
        await self._wait_until(pid, lambda _: False, self.settings.create_wait)  # until gone
        log.info("procedure %d (%s): discarded on request", pid, procedure.script_uri)
        return procedure

    async def _make_room(self) -> None:
        """Delete Procedures (oldest finished first) until one more fits under the limit."""
        kept = dict(self._procedures)
        while (victim := next_to_drop(kept.values(), self.settings.max_procedures)) is not None:
            await self._call(self.cluster.delete_procedure, victim.id)
            del kept[victim.id]

    async def _call(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run a blocking cluster call; API server refusals become OET errors."""
        try:
            return await asyncio.to_thread(function, *args)
        except ApiException as exc:
            raise _error(exc, "The Kubernetes API server refused the request") from None

    # -- what the watches bring ----------------------------------------------
    def _store(self, item: Item) -> Procedure | None:
        try:
            procedure = from_custom_resource(item)  # type: ignore[arg-type]
        except Exception:  # a malformed resource is skipped, not fatal
            log.warning("ignoring malformed Procedure %s", item.get("metadata", {}).get("name"))
            return None
        self._procedures[procedure.id] = procedure
        self._resources[procedure.id] = item
        return procedure

    def _on_procedure(self, kind: str, item: Item) -> None:
        try:
            pid = int(item["spec"]["id"])
        except (KeyError, TypeError, ValueError):
            return
        if kind == "DELETED":
            self._procedures.pop(pid, None)
            self._resources.pop(pid, None)
            self._order.forget(pid)
            self._notify(pid)
            return
        if _rv(item) <= _rv(self._resources.get(pid, {})):
            return  # already seen (a create's own answer, then its watch event)
        old = self._procedures.get(pid)
        procedure = self._store(item)
        if procedure is None:
            return
        if old is None or old.state != procedure.state:
            event = self._lifecycle_event(procedure, item)
            self._order.state_changed(pid, procedure.state, event)
        self._notify(pid)

    def _publish(self, event: Event) -> None:
        self.bus.publish_cluster(event.id // ID_SCALE, event.topic, event.payload,
                                 event.procedure_id, event.source, event.time)  # fmt: skip

    def _state_of(self, pid: int) -> ProcedureState | None:
        procedure = self._procedures.get(pid)
        return procedure.state if procedure is not None else None

    async def _read_script_events(self, pid: int, resource_version: int) -> Iterable[Event]:
        notes = await asyncio.to_thread(
            self.cluster.list_script_events_of, pid, resource_version, READ_TIMEOUT
        )
        return [e for note in notes if (e := self._script_event(note)) is not None]

    def _on_procedures_relisted(self, items: Items) -> None:
        """After a lost watch: take the list as it is; earlier IDs can no longer replay."""
        seen = set()
        for item in items:
            self._on_procedure("MODIFIED", item)
            with contextlib.suppress(KeyError, TypeError, ValueError):
                seen.add(int(item["spec"]["id"]))
        for pid in set(self._procedures) - seen:
            self._on_procedure("DELETED", {"spec": {"id": pid}})
        self.bus.exact_from = max(self.bus.exact_from, self.bus.last_id)

    def _on_event(self, kind: str, item: Item) -> None:
        if kind == "ADDED" and (event := self._script_event(item)) is not None:
            self._order.script_event(event)

    def _on_events_relisted(self, _items: Items) -> None:
        self.bus.exact_from = max(self.bus.exact_from, self.bus.last_id)

    def _lifecycle_event(self, procedure: Procedure, item: Item) -> Event | None:
        topic = LIFECYCLE_TOPICS.get(procedure.state)
        if topic is None:
            return None
        summary = procedure.to_json(self.base_url + procedure_path(procedure.id))
        reason = (item.get("status") or {}).get("reason")
        if procedure.state == S.FAILED and reason:  # the reason word /metrics labels it with
            summary["history"]["reason_code"] = reason
        when = procedure.history.process_states[procedure.state]
        return Event(_rv(item) * ID_SCALE, topic, when, procedure.id, "api",
                     {"procedure": summary})  # fmt: skip

    @staticmethod
    def _script_event(item: Item) -> Event | None:
        parsed = read_script_event(item)
        if parsed is None:
            return None
        try:
            pid = procedure_id(str((item.get("involvedObject") or {}).get("name", "")))
        except ProcedureNotFound:
            return None
        return Event(_rv(item) * ID_SCALE, parsed.topic, parsed.time, pid, "script",
                     parsed.payload)  # fmt: skip

    # -- waiting ------------------------------------------------------------
    def _notify(self, pid: int) -> None:
        """Hand this version of ``pid`` (None once gone) to every waiter it satisfies."""
        procedure = self._procedures.get(pid)
        if procedure is not None and self._order.finishing(pid):
            return  # its final event is not out yet: waiters hear when it is
        for done, answer in self._waiters.get(pid, []):
            if not answer.done() and (procedure is None or done(procedure)):
                answer.set_result(procedure)

    async def _wait_until(
        self, pid: int, done: Callable[[Procedure], bool], timeout: float
    ) -> Procedure | None:
        """The first version of ``pid`` that is ``done`` (None if it went), or, after
        ``timeout``, the current one: each version the watch delivers is checked, so a state
        passed through quickly (RUNNING on the way to COMPLETED) is still seen."""
        procedure = self._procedures.get(pid)
        if procedure is None or done(procedure):
            return procedure
        with self._watching(pid, done) as answer:
            return await self._answer(pid, answer, timeout)

    @contextlib.contextmanager
    def _watching(
        self, pid: int, done: Callable[[Procedure], bool]
    ) -> Iterator["asyncio.Future[Procedure | None]"]:
        """While the block runs, the first version of ``pid`` from now on that is ``done``
        (None if it goes) becomes the future's result. Entered before a change is asked for,
        no version the change brings can slip past (:meth:`_answer` waits for it)."""
        answer: asyncio.Future[Procedure | None] = asyncio.get_running_loop().create_future()
        waiter = (done, answer)
        self._waiters.setdefault(pid, []).append(waiter)
        try:
            yield answer
        finally:
            waiters = self._waiters.get(pid, [])
            waiters.remove(waiter)
            if not waiters:
                self._waiters.pop(pid, None)

    async def _answer(
        self, pid: int, answer: "asyncio.Future[Procedure | None]", timeout: float
    ) -> Procedure | None:
        """``answer``'s result, or after ``timeout`` the current version of ``pid``."""
        try:
            return await asyncio.wait_for(answer, timeout)
        except TimeoutError:
            return self._procedures.get(pid)


def _error(exc: ApiException, what: str) -> Exception:
    """An API server refusal as the OET error a client understands."""
    detail = _message(exc)
    if exc.status == 404:
        return StateConflict(f"{what}: it no longer exists")
    if exc.status in (409, 422):
        return StateConflict(f"{what}: {detail}")
    if exc.status == 400:
        return InvalidRequest(f"{what}: {detail}")
    return RunnerError(f"{what}: Kubernetes API server answered {exc.status} {detail}")


def _message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except (ValueError, AttributeError):
        return str(exc.reason)
