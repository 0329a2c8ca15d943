"""The runner's standard-library Kubernetes client: what it sends, what it makes of answers.

Against a real HTTP server on loopback playing the API server's part (the client's
behaviour on the real one is what tests/k8s exercises through every runner Pod).
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from oet.kube.plain_client import ApiError, Endpoint, PlainClient, in_cluster_endpoint

PROCEDURES = "/apis/oet.skao.int/v1alpha1/namespaces/obs/procedures"


class FakeApiServer(BaseHTTPRequestHandler):
    """Answers from ``answers`` by (method, path without query); records every request."""

    answers: ClassVar[dict[tuple[str, str], tuple[int, Any]]] = {}
    seen: ClassVar[list[dict[str, Any]]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        self.seen.append({"method": self.command, "path": path, "query": query,
                          "headers": dict(self.headers), "body": body})  # fmt: skip
        status, payload = self.answers.get((self.command, path), (404, {"message": "no such"}))
        if isinstance(payload, list):  # a watch: one JSON event per line
            data = b"".join(json.dumps(e).encode() + b"\n" for e in payload)
        else:
            data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api_server() -> Iterator[tuple[PlainClient, type[FakeApiServer]]]:
    FakeApiServer.answers, FakeApiServer.seen = {}, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeApiServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = Endpoint("127.0.0.1", server.server_address[1], None, lambda: "pod-token")
    client = PlainClient(endpoint)
    yield client, FakeApiServer
    client.close()
    server.shutdown()
    server.server_close()


def test_requests_carry_the_token_and_a_status_patch_is_a_merge_patch(
    api_server: tuple[PlainClient, type[FakeApiServer]],
) -> None:
    client, fake = api_server
    fake.answers[("PATCH", f"{PROCEDURES}/procedure-1/status")] = (200, {"status": {}})
    fake.answers[("GET", f"{PROCEDURES}/procedure-1")] = (200, {"metadata": {"name": "p"}})

    assert client.get_procedure("obs", "procedure-1") == {"metadata": {"name": "p"}}
    client.patch_procedure_status("obs", "procedure-1", {"status": {"state": "CREATED"}})

    get, patch = fake.seen
    assert get["headers"]["Authorization"] == "Bearer pod-token"
    assert patch["headers"]["Content-Type"] == "application/merge-patch+json"
    assert json.loads(patch["body"]) == {"status": {"state": "CREATED"}}


def test_an_error_answer_raises_with_its_status_and_the_servers_message(
    api_server: tuple[PlainClient, type[FakeApiServer]],
) -> None:
    client, fake = api_server
    fake.answers[("POST", "/api/v1/namespaces/obs/events")] = (
        403, {"kind": "Status", "message": "events is forbidden"},
    )  # fmt: skip

    with pytest.raises(ApiError) as refused:
        client.create_event("obs", {"kind": "Event"})
    with pytest.raises(ApiError) as missing:
        client.get_procedure("obs", "procedure-9")

    assert refused.value.status == 403
    assert "events is forbidden" in refused.value.reason
    assert missing.value.status == 404


def test_a_watch_yields_its_events_and_an_expired_version_raises_410(
    api_server: tuple[PlainClient, type[FakeApiServer]],
) -> None:
    client, fake = api_server
    changed = {"type": "MODIFIED", "object": {"metadata": {"resourceVersion": "7"}}}
    fake.answers[("GET", PROCEDURES)] = (200, [changed])

    events = list(client.watch_procedures("obs", "metadata.name=procedure-1", "5", 60))
    fake.answers[("GET", PROCEDURES)] = (200, [
        {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired",
                                     "message": "too old resource version"}},
    ])  # fmt: skip
    with pytest.raises(ApiError) as expired:
        list(client.watch_procedures("obs", "metadata.name=procedure-1", "1", 60))

    assert events == [changed]
    query = fake.seen[0]["query"]
    for part in ("watch=true", "fieldSelector=metadata.name%3Dprocedure-1", "resourceVersion=5",
                 "allowWatchBookmarks=true", "timeoutSeconds=60"):  # fmt: skip
        assert part in query
    assert expired.value.status == 410


def test_in_a_pod_the_service_account_token_is_read_anew_for_each_request(tmp_path: Path) -> None:
    mount = tmp_path / "serviceaccount"
    mount.mkdir()
    (mount / "token").write_text("first\n")
    bundle = ssl.get_default_verify_paths().cafile
    if bundle is None:
        pytest.fail("this machine has no CA bundle to stand in for the cluster's CA")
    shutil.copy(bundle, mount / "ca.crt")
    environ = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "6443"}

    endpoint = in_cluster_endpoint(environ, mount)
    assert endpoint is not None
    before = endpoint.token()
    (mount / "token").write_text("rotated\n")

    assert (endpoint.host, endpoint.port, before, endpoint.token()) == (
        "10.0.0.1", 6443, "first", "rotated",
    )  # fmt: skip
    assert in_cluster_endpoint({}, mount) is None


def test_a_runner_never_imports_the_kubernetes_package() -> None:
    probe = (
        "import sys, oet.runner.__main__, oet.runner.channels.kubernetes, oet.runner.process;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'kubernetes'))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60, check=True)  # fmt: skip
    assert done.stdout.strip() == "[]"
