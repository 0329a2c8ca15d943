"""The OET REST API as Python calls, for the ``oet`` command.

:class:`ProcedureClient` wraps an injected :class:`httpx.Client`, so tests can
hand it an ``httpx.MockTransport`` and the CLI a real connection. Everything
that can go wrong on the wire leaves this module as one of the errors below,
each with a message fit to show a user as it is::

    OETError                 (oet.domain)
    └── ClientError          the command could not be carried out
        ├── ServerUnreachable    no connection, or no answer in time
        ├── APIError             the server refused: {"error", "type", "Message"}
        ├── UnexpectedAnswer     the answer is not what the REST API promises
        └── NoProcedure          nothing to act on when no --pid was given
"""

import contextlib
import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import httpx

from oet.domain import OETError, ProcedureInput


class ClientError(OETError):
    """An ``oet`` command could not be carried out; the message says why."""


class ServerUnreachable(ClientError):
    """The server could not be connected to, or did not answer in time."""


class APIError(ClientError):
    """The server answered with the REST API's error body."""

    def __init__(self, status: int, error: str, error_type: str, message: str) -> None:
        super().__init__(f"{error}: {message}" if message else error)
        self.status = status
        self.error_type = error_type


class UnexpectedAnswer(ClientError):
    """The server's answer does not follow the REST API (a proxy, another service...)."""


class NoProcedure(ClientError):
    """No --pid was given and no procedure fits the command."""


@dataclasses.dataclass(frozen=True)
class ProcedureSummary:
    """One procedure as the REST API reports it."""

    id: int
    uri: str
    script_uri: str
    state: str
    init: ProcedureInput
    run: ProcedureInput
    process_states: dict[str, float]
    stacktrace: str | None = None
    reason: str | None = None

    @property
    def created_at(self) -> float:
        """When the procedure was created: its earliest recorded state change."""
        return min(self.process_states.values(), default=0.0)

    @classmethod
    def from_json(cls, data: Any) -> "ProcedureSummary":
        """Parse one procedure object of the REST API; UnexpectedAnswer if it is not one."""
        try:
            uri = str(data["uri"])
            script_args = data.get("script_args") or {}
            history = data.get("history") or {}
            return cls(
                id=int(uri.rstrip("/").rsplit("/", 1)[-1]),
                uri=uri,
                script_uri=str(data["script_uri"]),
                state=str(data["state"]),
                init=ProcedureInput.from_json(script_args.get("init")),
                run=ProcedureInput.from_json(script_args.get("run")),
                process_states={
                    str(k): float(v) for k, v in (history.get("process_states") or {}).items()
                },
                stacktrace=history.get("stacktrace"),
                reason=history.get("reason"),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UnexpectedAnswer(
                f"The server sent a procedure OET cannot read ({exc!r})"
            ) from None


@dataclasses.dataclass(frozen=True)
class StreamEvent:
    """One Server-Sent Event: its topic, its ``data`` (JSON text) and its ``id``."""

    topic: str
    data: str
    id: str | None = None

    @property
    def procedure_id(self) -> int | None:
        """The procedure the event is about, if its data names one."""
        try:
            value = json.loads(self.data).get("procedure_id")
        except (ValueError, AttributeError):
            return None
        return value if isinstance(value, int) else None


def stream_url(procedures_url: str) -> str:
    """The SSE stream's URL, next to the procedures collection the CLI is given."""
    base = procedures_url.rstrip("/")
    if base.endswith("/procedures"):
        base = base[: -len("/procedures")]
    return f"{base}/stream"


@contextlib.contextmanager
def _talking_to(url: str) -> Iterator[None]:
    """Turn transport failures into ServerUnreachable, naming the server."""
    try:
        yield
    except httpx.TimeoutException:
        raise ServerUnreachable(f"The OET server at {url} did not answer in time") from None
    except httpx.UnsupportedProtocol:
        raise ServerUnreachable(f"{url} is not an http:// or https:// URL") from None
    except httpx.TransportError as exc:
        detail = str(exc) or type(exc).__name__
        raise ServerUnreachable(f"Cannot reach the OET server at {url}: {detail}") from None
    except httpx.InvalidURL as exc:
        raise ServerUnreachable(f"{url} is not a valid server URL: {exc}") from None


def _checked_json(response: httpx.Response) -> Any:
    """The JSON body of a successful answer; APIError or UnexpectedAnswer otherwise."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.is_success:
        if body is None:
            raise UnexpectedAnswer(f"The answer from {response.request.url} is not JSON")
        return body
    if isinstance(body, dict) and "error" in body:
        message = body.get("Message") or body.get("message") or ""
        raise APIError(
            response.status_code, str(body["error"]), str(body.get("type", "")), str(message)
        )
    raise APIError(
        response.status_code,
        f"{response.status_code} {response.reason_phrase}".strip(),
        "",
        f"from {response.request.url}",
    )


class ProcedureClient:
    """Calls on the procedures collection at ``procedures_url``, over ``http``."""

    def __init__(self, http: httpx.Client, procedures_url: str) -> None:
        self.http = http
        self.url = procedures_url.rstrip("/")

    def _request(self, method: str, url: str, body: dict[str, Any] | None = None) -> Any:
        with _talking_to(self.url):
            return _checked_json(self.http.request(method, url, json=body))

    def _procedure(self, body: Any) -> ProcedureSummary:
        if not isinstance(body, dict) or "procedure" not in body:
            raise UnexpectedAnswer(f"The server at {self.url} sent no procedure")
        return ProcedureSummary.from_json(body["procedure"])

    def list(self) -> list[ProcedureSummary]:
        """Every procedure the server keeps, oldest first."""
        body = self._request("GET", self.url)
        if not isinstance(body, dict) or not isinstance(body.get("procedures"), list):
            raise UnexpectedAnswer(f"The server at {self.url} sent no list of procedures")
        return sorted(
            (ProcedureSummary.from_json(p) for p in body["procedures"]), key=lambda p: p.id
        )

    def get(self, pid: int) -> ProcedureSummary:
        """One procedure; APIError (404) if the server has no such ID."""
        return self._procedure(self._request("GET", f"{self.url}/{pid}"))

    def create(
        self, script_uri: str, init: ProcedureInput, run: ProcedureInput | None = None
    ) -> ProcedureSummary:
        """Load ``script_uri`` and call its ``init``; the answer comes once it is CREATED."""
        script_args = {"init": init.to_json()}
        if run is not None:
            script_args["run"] = run.to_json()
        body = {"script_uri": script_uri, "script_args": script_args}
        return self._procedure(self._request("POST", self.url, body))

    def start(self, pid: int, run: ProcedureInput | None = None) -> ProcedureSummary:
        """Start a CREATED procedure, with ``run`` arguments replacing those given at creation."""
        body: dict[str, Any] = {"state": "RUNNING"}
        if run is not None:
            body["script_args"] = {"run": run.to_json()}
        return self._procedure(self._request("PUT", f"{self.url}/{pid}", body))

    def stop(self, pid: int, abort: bool) -> str:
        """Stop a procedure (and send Abort to its subarray if ``abort``); the server's report."""
        body = self._request("PUT", f"{self.url}/{pid}", {"state": "STOPPED", "abort": abort})
        if not isinstance(body, dict) or "abort_message" not in body:
            raise UnexpectedAnswer(f"The server at {self.url} did not say how the stop went")
        return str(body["abort_message"])

    def discard(self, pid: int) -> ProcedureSummary:
        """Forget a procedure whose script is not executing; the procedure as it was."""
        return self._procedure(self._request("DELETE", f"{self.url}/{pid}"))

    def events(self, last_event_id: str | None = None) -> Iterator[StreamEvent]:
        """Follow the server's event stream until the server ends it.

        With ``last_event_id`` the server first replays what came after that
        event (or sends a ``stream.resync`` event when it no longer can).
        """
        with self.event_stream(last_event_id) as events:
            yield from events

    @contextlib.contextmanager
    def event_stream(self, last_event_id: str | None = None) -> Iterator[Iterator[StreamEvent]]:
        """The event stream, connected on entry: every event after that moment is in it."""
        url = stream_url(self.url)
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        with (
            _talking_to(url),
            self.http.stream(
                "GET", url, headers=headers, timeout=httpx.Timeout(10, read=None)
            ) as response,
        ):
            if not response.is_success:
                response.read()
                _checked_json(response)
            yield _parse_events(response.iter_lines())


def _parse_events(lines: Iterator[str]) -> Iterator[StreamEvent]:
    """Server-Sent Events from the stream's lines."""
    topic, data, event_id = "message", list[str](), None
    for line in lines:
        if not line:
            if data:
                yield StreamEvent(topic, "\n".join(data), event_id)
            topic, data, event_id = "message", [], None
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            topic = value
        elif field == "data":
            data.append(value)
        elif field == "id":
            event_id = value
