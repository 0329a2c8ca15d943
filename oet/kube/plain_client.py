"""The runner's few Kubernetes API calls, on the standard library alone.

Why this exists: a runner Pod is started for every procedure, and importing the
``kubernetes`` package (every API group and model class, plus the kubeconfig
loaders) costs about 0.6 s of CPU, two thirds of what a runner spends until its
procedure is CREATED. A burst of creates pays that once per runner on the same
node (bench/bench_kubernetes.py measures it). The runner needs four calls:
read its Procedure, merge-patch its status, watch it, and create Events. This
module makes them with :mod:`http.client` over TLS, as the ServiceAccount of
the Pod (its token re-read for every request, as the kubelet rotates it).
Outside a Pod it takes the address and credentials from the kubeconfig, through
:mod:`oet.kube.client` (which imports ``kubernetes`` then, and only then).
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import threading
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from oet.kube.names import GROUP, PLURAL, VERSION

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
REQUEST_TIMEOUT = 30.0
"""Seconds a single request may take (a watch: its own timeout plus this)."""


class ApiError(Exception):
    """The API server answered with an error status (``status`` 0: no answer at all)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"({status}) {reason}")
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Endpoint:
    """Where the API server is and how to authenticate to it."""

    host: str
    port: int
    context: ssl.SSLContext | None  # None: plain HTTP
    token: Callable[[], str | None]


def in_cluster_endpoint(
    environ: Mapping[str, str] = os.environ, service_account_dir: Path = SERVICE_ACCOUNT_DIR
) -> Endpoint | None:
    """The Pod's own API server and ServiceAccount; None when not in a Pod."""
    host = environ.get("KUBERNETES_SERVICE_HOST", "")
    token_file = service_account_dir / "token"
    if not host or not token_file.is_file():
        return None
    context = ssl.create_default_context(cafile=str(service_account_dir / "ca.crt"))
    port = int(environ.get("KUBERNETES_SERVICE_PORT") or 443)
    return Endpoint(host.strip("[]"), port, context, lambda: token_file.read_text().strip())


def kubeconfig_endpoint() -> Endpoint:
    """The API server of the current kubeconfig context (imports ``kubernetes``)."""
    from oet.kube.client import client_configuration

    configuration = client_configuration()
    url = urlsplit(configuration.host)
    context: ssl.SSLContext | None = None
    if url.scheme == "https":
        context = ssl.create_default_context(cafile=configuration.ssl_ca_cert or None)
        if configuration.cert_file:
            context.load_cert_chain(configuration.cert_file, configuration.key_file or None)
        if not configuration.verify_ssl:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    header = configuration.get_api_key_with_prefix("BearerToken", alias="authorization") or ""
    token = header.rpartition(" ")[2] or None
    default = 443 if url.scheme == "https" else 80
    return Endpoint(url.hostname or "localhost", url.port or default, context, lambda: token)


def _procedures(namespace: str) -> str:
    return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"


class PlainClient:
    """Procedures and Events through the API server, one keep-alive connection per thread."""

    def __init__(self, endpoint: Endpoint | None = None) -> None:
        self.endpoint = endpoint or in_cluster_endpoint() or kubeconfig_endpoint()
        self._local = threading.local()
        self._kept: list[http.client.HTTPConnection] = []  # every thread's, for close()
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the kept-alive connections of every thread."""
        with self._lock:
            kept, self._kept = self._kept, []
        for connection in kept:
            connection.close()

    def _drop(self, connection: http.client.HTTPConnection) -> None:
        """Close this thread's ``connection`` and forget it (a new one is made when needed)."""
        connection.close()
        self._local.conn = None
        with self._lock:
            if connection in self._kept:
                self._kept.remove(connection)

    # -- the calls the runner makes ------------------------------------------------
    def get_procedure(self, namespace: str, name: str) -> dict[str, Any]:
        """The Procedure ``name`` now."""
        found: dict[str, Any] = self._request("GET", f"{_procedures(namespace)}/{name}")
        return found

    def patch_procedure_status(
        self, namespace: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """Merge-patch the status subresource of Procedure ``name`` with ``body``."""
        path = f"{_procedures(namespace)}/{name}/status"
        patched: dict[str, Any] = self._request("PATCH", path, body, "application/merge-patch+json")
        return patched

    def create_event(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create a core/v1 Event."""
        made: dict[str, Any] = self._request("POST", f"/api/v1/namespaces/{namespace}/events", body)
        return made

    def watch_procedures(
        self, namespace: str, field_selector: str, resource_version: str, timeout_seconds: int
    ) -> Generator[dict[str, Any], None, None]:
        """Watch events ({"type", "object"}) of the Procedures that ``field_selector`` picks.

        Ends when the server ends the watch (after ``timeout_seconds``); an ERROR event
        (e.g. 410: ``resource_version`` is too old) raises ApiError with its code.
        """
        query = urlencode({"watch": "true", "fieldSelector": field_selector,
                           "resourceVersion": resource_version, "allowWatchBookmarks": "true",
                           "timeoutSeconds": str(timeout_seconds)})  # fmt: skip
        connection = self._connect(timeout_seconds + REQUEST_TIMEOUT)
        response: http.client.HTTPResponse | None = None
        try:
            connection.request("GET", f"{_procedures(namespace)}?{query}", headers=self._headers())
            response = connection.getresponse()
            if response.status != 200:
                raise _error(response.status, response.reason, response.read())
            for line in response:
                if not line.strip():
                    continue
                event: dict[str, Any] = json.loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object") or {}
                    reason = f"{status.get('reason')}: {status.get('message')}"
                    raise ApiError(int(status.get("code") or 500), reason)
                yield event
        except (OSError, http.client.HTTPException) as exc:
            raise ApiError(0, f"{type(exc).__name__}: {exc}") from exc
        finally:
            if response is not None:
                response.close()
            connection.close()

    # -- HTTP ------------------------------------------------------------------------
    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        endpoint = self.endpoint
        if endpoint.context is None:
            return http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=timeout)
        return http.client.HTTPSConnection(
            endpoint.host, endpoint.port, timeout=timeout, context=endpoint.context
        )

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "oet-runner"}
        token = self.endpoint.token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> Any:  # fmt: skip
        data = None if body is None else json.dumps(body).encode()
        headers = self._headers(content_type if data is not None else None)
        for attempt in (1, 2):  # a kept-alive connection the server closed: once more, anew
            connection: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
            reused = connection is not None
            if connection is None:
                connection = self._local.conn = self._connect(REQUEST_TIMEOUT)
                with self._lock:
                    self._kept.append(connection)
            try:
                connection.request(method, path, body=data, headers=headers)
                response = connection.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException) as exc:
                self._drop(connection)
                # Only a kept-alive connection the server closed meanwhile is tried again:
                # the request never reached it. A timeout or other error might have been
                # handled (a POSTed Event would be made twice), so it is not retried.
                if reused and attempt == 1 and isinstance(exc, _STALE_CONNECTION):
                    continue
                raise ApiError(0, f"{type(exc).__name__}: {exc}") from exc
            if response.will_close:
                self._drop(connection)
            if not 200 <= response.status < 300:
                raise _error(response.status, response.reason, payload)
            return json.loads(payload) if payload else {}
        raise AssertionError("unreachable")  # pragma: no cover


_STALE_CONNECTION = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
"""How a request on a kept-alive connection the API server has closed fails."""


def _error(status: int, reason: str, payload: bytes) -> ApiError:
    """An ApiError with the Status message the API server gave, if any."""
    try:
        message = json.loads(payload).get("message")
    except (ValueError, AttributeError):
        message = None
    return ApiError(status, f"{reason}: {message}" if message else reason)
