"""``/openapi.json`` is true: its references resolve, it names every status an
operation answers with and the body each has, and generated requests agree.

The last test runs schemathesis against a real server: requests generated
from the document (valid and invalid, fixed seed, a bounded number per
operation, every operation including the stream) must get no 5xx and only
answers the document describes, and the server must still serve afterwards.

The SSE stream never ends, so for it the test reads a bounded prefix: the
status line, the headers and the first message (the request to list
procedures that it makes itself is an event), and checks that.
"""

import datetime
import time
from collections.abc import Iterator
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import Server
from tests.sse import parse_messages

pytestmark = pytest.mark.e2e

API = "/api/v1.0"
OPERATIONS = [
    ("/procedures", "get"),
    ("/procedures", "post"),
    ("/procedures/{pid}", "get"),
    ("/procedures/{pid}", "put"),
    ("/procedures/{pid}", "delete"),
    ("/stream", "get"),
]
GENERATED = [
    *((path, method, GenerationMode.POSITIVE) for path, method in OPERATIONS),
    # only bodies can be wrong: paths, IDs and Last-Event-ID are free-form strings
    ("/procedures", "post", GenerationMode.NEGATIVE),
    ("/procedures/{pid}", "put", GenerationMode.NEGATIVE),
]
EXAMPLES = 100
"""Generated requests per operation and mode."""
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
"""Every check but positive-data acceptance: a schema-valid create of a script
that does not exist is rightly refused (400), which that check would call a bug."""


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the whole module, holding a CREATED procedure to act on."""
    server = Server(tmp_path_factory.mktemp("openapi") / "oet.sqlite3").start()
    with server.client() as api:
        created = api.post("/procedures", json={"script_uri": "file://scripts/hello_world.py"})
        assert created.status_code == 201, created.text
    yield server
    server.stop()


@pytest.fixture(scope="module")
def document(fuzzed_server: Server) -> dict[str, Any]:
    answer = httpx.get(f"{fuzzed_server.base}/openapi.json", timeout=30)
    assert answer.status_code == 200
    body: dict[str, Any] = answer.json()
    return body


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        assert isinstance(node, dict), f"{ref} does not resolve"
        assert part in node, f"{ref} does not resolve"
        node = node[part]
    return node


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def test_every_reference_in_the_document_resolves(document: dict[str, Any]) -> None:
    found = set(refs(document))

    assert "#/components/schemas/ScriptCall" in found
    for ref in found:
        resolve(document, ref)


@pytest.mark.parametrize(
    ("path", "method", "statuses"),
    [
        ("/procedures", "post", {"201", "400", "401", "413", "415", "422", "500"}),
        ("/procedures/{pid}", "put", {"200", "400", "401", "404", "409", "413", "415", "422"}),
        ("/procedures/{pid}", "get", {"200", "404", "500"}),
        ("/procedures/{pid}", "delete", {"200", "401", "404", "409", "500"}),
    ],
)
def test_every_error_status_is_documented_with_the_error_body(
    document: dict[str, Any], path: str, method: str, statuses: set[str]
) -> None:
    responses = document["paths"][API + path][method]["responses"]

    assert statuses <= set(responses)
    for status in statuses - {"200", "201"}:
        schema = responses[status]["content"]["application/json"]["schema"]
        error = resolve(document, schema["$ref"])
        assert set(error["required"]) == {"error", "type", "Message"}
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_changes_document_the_optional_bearer_token(document: dict[str, Any]) -> None:
    scheme = document["components"]["securitySchemes"]["apiToken"]

    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    changes = (
        ("/procedures", "post"),
        ("/procedures/{pid}", "put"),
        ("/procedures/{pid}", "delete"),
    )
    for path, method in changes:
        assert {"apiToken": []} in document["paths"][API + path][method]["security"]


def test_the_stream_is_documented_as_server_sent_events(document: dict[str, Any]) -> None:
    answer = document["paths"][f"{API}/stream"]["get"]["responses"]["200"]

    assert list(answer["content"]) == ["text/event-stream"]


def bounded_stream_answer(case: Any, server: Server) -> httpx.Response:
    """The stream's answer to ``case``, cut after its first message (or its headers)."""
    url = server.base + case.formatted_path
    began = time.monotonic()
    headers = {k: str(v) for k, v in (case.headers or {}).items()}
    with (
        httpx.Client(timeout=httpx.Timeout(10, read=10)) as client,
        client.stream("GET", url, headers=headers, params=case.query) as answer,
    ):
        if answer.status_code != 200:
            body = answer.read()
        else:
            httpx.get(server.procedures, timeout=10)  # an event for the stream to carry
            lines = []
            for line in answer.iter_lines():
                lines.append(line)
                if lines[-1] == "" and any(lines[:-1]):
                    break
            message = next(parse_messages(lines))
            assert message.id is not None
            assert message.body["topic"] == message.event
            body = "\n".join(lines).encode()
        cut = httpx.Response(
            answer.status_code, headers=answer.headers, content=body, request=answer.request
        )
        cut.elapsed = datetime.timedelta(seconds=time.monotonic() - began)
        return cut


@pytest.fixture(scope="module")
def oet_schema(fuzzed_server: Server) -> Any:
    return schemathesis.openapi.from_url(f"{fuzzed_server.base}/openapi.json")


@pytest.mark.parametrize(("path", "method", "mode"), GENERATED)
def test_generated_requests_get_only_documented_answers(
    oet_schema: Any, fuzzed_server: Server, path: str, method: str, mode: GenerationMode
) -> None:
    operation = oet_schema[API + path][method.upper()]

    @hypothesis.given(operation.as_strategy(generation_mode=mode))
    @hypothesis.settings(
        max_examples=EXAMPLES,
        derandomize=True,  # the fixed seed: the same requests on every run
        deadline=None,
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    def answered_as_documented(case: Any) -> None:
        if path == "/stream":
            case.validate_response(bounded_stream_answer(case, fuzzed_server), checks=CHECKS)
        else:
            case.call_and_validate(base_url=fuzzed_server.base, checks=CHECKS, timeout=30)

    answered_as_documented()
    assert httpx.get(fuzzed_server.procedures, timeout=10).status_code == 200
