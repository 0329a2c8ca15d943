"""REST API errors, end to end: the documented JSON body and the right status.

    {"error": "404 Not Found", "type": "ResourceNotFound", "Message": "..."}

The malformed requests all go to one server that holds a CREATED and a
COMPLETED procedure, so that a request wrongly accepted would visibly create
or change something.
"""

import http
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.backends import first_also_on_kubernetes
from tests.conftest import Server
from tests.procedures import QUICK, SLEEPER, create_id, run_until, start, state_of, stop

pytestmark = [pytest.mark.e2e, pytest.mark.both_backends]

MiB = 1024 * 1024
JSON = {"Content-Type": "application/json"}


def assert_error(response: httpx.Response, status: int, error_type: str | None = None) -> str:
    """Check the documented error body; return its Message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "type", "Message"}, body
    assert body["error"] == f"{status} {http.HTTPStatus(status).phrase}"
    if error_type is not None:
        assert body["type"] == error_type, body
    assert isinstance(body["Message"], str)
    assert body["Message"]
    message: str = body["Message"]
    return message


def refused_as_conflict(api: httpx.Client, pid: int, **body: Any) -> str:
    """PUT ``body`` to procedure ``pid``; it must be refused as a 409 StateConflict. Its Message."""
    return assert_error(api.put(f"/procedures/{pid}", json=body), 409, "StateConflict")


# -- documented errors ------------------------------------------------------------


def test_an_unknown_procedure_is_404_with_the_documented_body(api: httpx.Client) -> None:
    response = api.get("/procedures/4")

    assert response.json() == {
        "error": "404 Not Found",
        "type": "ResourceNotFound",
        "Message": "No information available for PID=4",
    }
    assert_error(response, 404, "ResourceNotFound")


def test_starting_or_stopping_an_unknown_procedure_is_404(api: httpx.Client) -> None:
    for body in ({"state": "RUNNING"}, {"state": "STOPPED", "abort": False}):
        response = api.put("/procedures/4", json=body)
        message = assert_error(response, 404, "ResourceNotFound")
        assert message == "No information available for PID=4"
    assert api.get("/procedures").json() == {"procedures": []}


def test_starting_while_another_procedure_runs_is_409(
    api: httpx.Client, script: Callable[[str], str]
) -> None:
    running = create_id(api, script(SLEEPER))
    waiting = create_id(api, script(QUICK))
    start(api, running)

    message = refused_as_conflict(api, waiting, state="RUNNING")
    assert f"Procedure {running} is RUNNING" in message
    assert state_of(api, waiting) == "CREATED"
    assert state_of(api, running) == "RUNNING"


def test_starting_a_procedure_twice_is_409(api: httpx.Client, script: Callable[[str], str]) -> None:
    pid = create_id(api, script(SLEEPER))
    start(api, pid)

    message = refused_as_conflict(api, pid, state="RUNNING")
    assert f"Procedure {pid} is already RUNNING" in message
    assert state_of(api, pid) == "RUNNING"


def test_starting_a_completed_procedure_again_is_409(
    api: httpx.Client, script: Callable[[str], str]
) -> None:
    pid = run_until(api, script(QUICK), "COMPLETED")

    assert "COMPLETED" in refused_as_conflict(api, pid, state="RUNNING")
    assert state_of(api, pid) == "COMPLETED"


def test_stopping_a_completed_procedure_is_409(
    api: httpx.Client, script: Callable[[str], str]
) -> None:
    pid = run_until(api, script(QUICK), "COMPLETED")
    before = api.get(f"/procedures/{pid}").json()

    message = refused_as_conflict(api, pid, state="STOPPED", abort=False)
    assert f"Procedure {pid} is COMPLETED" in message
    assert api.get(f"/procedures/{pid}").json() == before


def test_stopping_a_procedure_twice_is_409(api: httpx.Client, script: Callable[[str], str]) -> None:
    pid = create_id(api, script(SLEEPER))
    start(api, pid)
    stop(api, pid)
    before = api.get(f"/procedures/{pid}").json()

    message = refused_as_conflict(api, pid, state="STOPPED", abort=False)
    assert f"Procedure {pid} is STOPPED" in message
    assert api.get(f"/procedures/{pid}").json() == before


def test_a_missing_script_is_400_naming_the_path_and_creates_nothing(
    api: httpx.Client, script: Callable[[str], str], script_dir: Path
) -> None:
    create_id(api, script(QUICK))
    before = api.get("/procedures").json()
    missing = script_dir / "no_such_dir" / "observe.py"

    response = api.post("/procedures", json={"script_uri": f"file://{missing}"})

    message = assert_error(response, 400, "ScriptNotFound")
    assert str(missing) in message
    assert api.get("/procedures").json() == before
    # The failed request did not use up an ID either.
    assert create_id(api, script(QUICK)) == 2


@pytest.mark.parametrize(
    "uri",
    ["http://example.org/observe.py", "git://gitlab.com/ska/scripts.git", "/abs/observe.py"],
)
def test_a_script_uri_that_is_not_file_is_400(api: httpx.Client, uri: str) -> None:
    response = api.post("/procedures", json={"script_uri": uri})

    message = assert_error(response, 400)
    assert uri in message
    assert "file://" in message
    assert api.get("/procedures").json() == {"procedures": []}


def test_when_starts_arrive_together_only_one_procedure_runs(
    server: Server, api: httpx.Client, script: Callable[[str], str]
) -> None:
    pids = [create_id(api, script(SLEEPER)) for _ in range(4)]

    def put_running(pid: int) -> httpx.Response:
        return httpx.put(f"{server.procedures}/{pid}", json={"state": "RUNNING"}, timeout=30)

    with ThreadPoolExecutor(len(pids)) as pool:
        responses = list(pool.map(put_running, pids))

    assert sorted(r.status_code for r in responses) == [200, 409, 409, 409]
    for response in responses:
        if response.status_code == 409:
            assert_error(response, 409, "StateConflict")
    states = [state_of(api, pid) for pid in pids]
    assert sorted(states) == ["CREATED", "CREATED", "CREATED", "RUNNING"]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PATCH", "/procedures/1", {"GET", "PUT", "DELETE"}),
        ("DELETE", "/procedures", {"GET", "POST"}),
    ],
    ids=["PATCH a procedure", "DELETE the collection"],
)
def test_a_wrong_method_is_405_naming_the_allowed_methods(
    api: httpx.Client, method: str, path: str, allowed: set[str]
) -> None:
    response = api.request(method, path)

    assert_error(response, 405, "MethodNotAllowed")
    assert "allow" in response.headers, dict(response.headers)
    listed = {m.strip() for m in response.headers["allow"].split(",")}
    assert allowed <= listed
    assert method not in listed


def test_a_body_at_the_size_limit_is_accepted(
    api: httpx.Client, script: Callable[[str], str]
) -> None:
    body = json.dumps({"script_uri": script(QUICK)})
    padded = body + " " * (MiB - len(body))

    assert api.post("/procedures", content=padded.encode(), headers=JSON).status_code == 201
    too_big = api.post("/procedures", content=(padded + " ").encode(), headers=JSON)
    assert_error(too_big, 413, "PayloadTooLarge")
    assert len(api.get("/procedures").json()["procedures"]) == 1


# Python's json reads these as nan/inf, which no JSON response can carry.
NOT_FINITE = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"]
PARSED_BEFORE_BACKEND = "the REST layer refuses them all alike before any backend sees them"


@pytest.mark.parametrize("constant", first_also_on_kubernetes(NOT_FINITE, PARSED_BEFORE_BACKEND))
def test_numbers_json_cannot_carry_are_refused_at_create_and_the_list_stays_readable(
    api: httpx.Client, script: Callable[[str], str], constant: str
) -> None:
    uri = json.dumps(script(QUICK))
    body = f'{{"script_uri": {uri}, "script_args": {{"init": {{"args": [{constant}]}}}}}}'

    response = api.post("/procedures", content=body.encode(), headers=JSON)

    assert response.status_code in (400, 422), response.text
    assert_error(response, response.status_code, "MalformedRequest")
    listed = api.get("/procedures")
    assert listed.status_code == 200, listed.text
    assert listed.json() == {"procedures": []}


@pytest.mark.parametrize("constant", first_also_on_kubernetes(NOT_FINITE, PARSED_BEFORE_BACKEND))
def test_numbers_json_cannot_carry_are_refused_at_start_and_start_nothing(
    api: httpx.Client, script: Callable[[str], str], constant: str
) -> None:
    pid = create_id(api, script(SLEEPER))
    before = api.get("/procedures").json()
    body = f'{{"state": "RUNNING", "script_args": {{"run": {{"kwargs": {{"t": {constant}}}}}}}}}'

    response = api.put(f"/procedures/{pid}", content=body.encode(), headers=JSON)

    assert response.status_code in (400, 422), response.text
    assert_error(response, response.status_code, "MalformedRequest")
    listed = api.get("/procedures")
    assert listed.status_code == 200, listed.text
    assert listed.json() == before


# -- malformed requests -----------------------------------------------------------------


@dataclass
class Bad:
    """One malformed request and the status it must get."""

    method: str
    path: str
    status: int
    json: Any = None
    content: bytes | Callable[[], Iterator[bytes]] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    mentions: str = ""  # what the Message must name, so the user can fix the request

    def send(self, client: httpx.Client, script: Path) -> httpx.Response:
        """Send it, with ``{script}`` replaced by the path of a real script."""
        root = str(client.base_url.copy_with(path="/")).rstrip("/")
        path = self.path.replace("{root}", root)
        if self.json is not None:
            body = json.loads(json.dumps(self.json).replace("{script}", str(script)))
            return client.request(self.method, path, json=body, headers=self.headers)
        headers = {**JSON, **self.headers}
        if callable(self.content):
            return client.request(self.method, path, content=self.content(), headers=headers)
        content = self.content
        if content is not None:
            content = content.replace(b"{script}", str(script).encode())
        return client.request(self.method, path, content=content, headers=headers)


SCRIPT = "file://{script}"  # filled in with the module server's real script


def _chunks(total: int) -> Callable[[], Iterator[bytes]]:
    def generate() -> Iterator[bytes]:
        chunk = b" " * 65536
        for _ in range(total // len(chunk) + 1):
            yield chunk

    return generate


def _post(status: int, **kwargs: Any) -> Bad:
    return Bad("POST", "/procedures", status, **kwargs)


def _put(status: int, **kwargs: Any) -> Bad:
    return Bad("PUT", "/procedures/1", status, **kwargs)


def _nested(depth: int) -> bytes:
    return b'{"script_uri": "%s", "script_args": {"init": {"args": ' % SCRIPT.encode() + (
        b"[" * depth + b"]" * depth + b"}}}"
    )


MALFORMED: dict[str, Bad] = {
    # POST /procedures: wrong types
    "script_uri is a number": _post(422, json={"script_uri": 1}, mentions="script_uri"),
    "script_uri is null": _post(422, json={"script_uri": None}),
    "script_uri is a list": _post(422, json={"script_uri": [SCRIPT]}),
    "script_uri is missing": _post(422, json={"script_args": {}}, mentions="script_uri"),
    "script_uri is empty": _post(422, json={"script_uri": ""}),
    "script_uri is 5000 characters": _post(422, json={"script_uri": "file:///" + "a" * 5000}),
    "script_args is a list": _post(422, json={"script_uri": SCRIPT, "script_args": [1]}),
    "init is a string": _post(422, json={"script_uri": SCRIPT, "script_args": {"init": "x"}}),
    "init args is not a list": _post(
        422,
        json={"script_uri": SCRIPT, "script_args": {"init": {"args": "1, 2"}}},
        mentions="script_args.init.args",
    ),
    "init kwargs is not an object": _post(
        422, json={"script_uri": SCRIPT, "script_args": {"init": {"kwargs": [["a", 1]]}}}
    ),
    "run kwargs is a number": _post(
        422, json={"script_uri": SCRIPT, "script_args": {"run": {"kwargs": 3}}}
    ),
    # POST /procedures: unknown fields
    "unknown top-level field": _post(
        422, json={"script_uri": SCRIPT, "priority": "high"}, mentions="priority"
    ),
    "unknown script function": _post(
        422, json={"script_uri": SCRIPT, "script_args": {"configure": {"args": []}}}
    ),
    "unknown field in init": _post(
        422,
        json={"script_uri": SCRIPT, "script_args": {"init": {"args": [], "kw": {}}}},
        mentions="script_args.init.kw",
    ),
    "state given at create": _post(422, json={"script_uri": SCRIPT, "state": "RUNNING"}),
    # POST /procedures: not JSON, or not a JSON object
    "bad JSON": _post(400, content=b'{"script_uri": '),
    "empty body": _post(400, content=b""),
    "not UTF-8": _post(400, content=b'{"script_uri": "\xff\xfe"}'),
    "single-quoted pseudo-JSON": _post(400, content=b"{'script_uri': 'file:///x.py'}"),
    "form-encoded body": _post(
        415,
        content=b"script_uri=file%3A%2F%2F%2Ftmp%2Fx.py",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ),
    "a JSON list": _post(422, json=[{"script_uri": SCRIPT}]),
    "a JSON string": _post(422, content=b'"file:///x.py"'),
    "a JSON number": _post(422, content=b"42"),
    "JSON null": _post(422, content=b"null"),
    "JSON nested 100000 deep": _post(400, content=_nested(100_000)),
    # POST /procedures: oversized bodies
    "2 MiB body with Content-Length": _post(413, content=b" " * (2 * MiB)),
    "2 MiB chunked body": _post(413, content=_chunks(2 * MiB)),
    # POST /procedures: scripts that cannot be loaded
    "script is a directory": _post(400, json={"script_uri": "file:///tmp"}, mentions="/tmp"),
    "file:// with no path": _post(400, json={"script_uri": "file://"}),
    "NUL in the script path": _post(400, json={"script_uri": "file:///tmp/x\u0000.py"}),
    # PUT /procedures/1: wrong types and values
    "state is a number": _put(422, json={"state": 1}),
    "state is missing": _put(422, json={"abort": False}),
    "state PAUSED": _put(422, json={"state": "PAUSED"}, mentions="state"),
    "state COMPLETED": _put(422, json={"state": "COMPLETED"}),
    "state CREATED": _put(422, json={"state": "CREATED"}),
    "state in lower case": _put(422, json={"state": "running"}),
    "abort is a string": _put(422, json={"state": "STOPPED", "abort": "yes"}, mentions="abort"),
    "abort is a number": _put(422, json={"state": "STOPPED", "abort": 1}),
    "run args is not a list": _put(
        422, json={"state": "RUNNING", "script_args": {"run": {"args": 5}}}
    ),
    "run kwargs is a string": _put(
        422, json={"state": "RUNNING", "script_args": {"run": {"kwargs": "a=1"}}}
    ),
    # PUT /procedures/1: unknown fields
    "unknown top-level field at start": _put(422, json={"state": "RUNNING", "when": "now"}),
    "init arguments at start": _put(
        422, json={"state": "RUNNING", "script_args": {"init": {"args": []}}}
    ),
    "unknown field in run": _put(
        422,
        json={"state": "RUNNING", "script_args": {"run": {"args": [], "extra": 1}}},
        mentions="extra",
    ),
    # PUT /procedures/1: not JSON, or not a JSON object
    "empty body at start": _put(400, content=b""),
    "bad JSON at start": _put(400, content=b"{state: RUNNING}"),
    "a JSON list at start": _put(422, json=[{"state": "RUNNING"}]),
    "a JSON string at start": _put(422, content=b'"RUNNING"'),
    "2 MiB chunked body at start": _put(413, content=_chunks(2 * MiB)),
    # bad procedure IDs
    "ID abc": Bad("GET", "/procedures/abc", 404, mentions="PID=abc"),
    "ID -1": Bad("GET", "/procedures/-1", 404),
    "ID 0": Bad("GET", "/procedures/0", 404),
    "ID 1.5": Bad("GET", "/procedures/1.5", 404),
    "ID +1": Bad("GET", "/procedures/+1", 404),
    "ID 1e0": Bad("GET", "/procedures/1e0", 404),
    "ID with 23 digits": Bad("GET", "/procedures/99999999999999999999999", 404),
    "ID in Arabic-Indic digits": Bad("GET", "/procedures/\u0661", 404),
    "ID in full-width digits": Bad("GET", "/procedures/\uff11", 404),
    "ID with a space": Bad("GET", "/procedures/%201", 404),
    "start of ID abc": Bad("PUT", "/procedures/abc", 404, json={"state": "RUNNING"}),
    "start of ID with 23 digits": Bad(
        "PUT", "/procedures/99999999999999999999999", 404, json={"state": "RUNNING"}
    ),
    "stop of ID -1": Bad("PUT", "/procedures/-1", 404, json={"state": "STOPPED"}),
    # wrong methods
    "discard of ID abc": Bad("DELETE", "/procedures/abc", 404),
    "discard below a procedure": Bad("DELETE", "/procedures/1/run", 404),
    "PATCH a procedure": Bad("PATCH", "/procedures/1", 405, json={"state": "RUNNING"}),
    "POST to a procedure": Bad("POST", "/procedures/1", 405, json={"state": "RUNNING"}),
    "PUT the collection": Bad("PUT", "/procedures", 405, json={"state": "RUNNING"}),
    "DELETE the collection": Bad("DELETE", "/procedures", 405),
    "POST to the stream": Bad("POST", "/stream", 405, json={}),
    # unknown paths
    "unknown resource": Bad("GET", "/scripts", 404),
    "below a procedure": Bad("GET", "/procedures/1/history", 404),
    "unknown API version": Bad("GET", "{root}/api/v2/procedures", 404),
    "outside the API": Bad("GET", "{root}/procedures", 404),
}


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path, Any]]:
    """One server for every malformed request: procedure 1 CREATED, 2 COMPLETED.

    Yields the server, a loadable script and the procedure list before any request.
    """
    folder = tmp_path_factory.mktemp("malformed")
    script = folder / "quick.py"
    script.write_text(QUICK)
    server = Server(folder / "oet.sqlite3").start()
    try:
        with server.client() as api:
            uri = f"file://{script}"
            assert create_id(api, uri) == 1
            assert run_until(api, uri, "COMPLETED") == 2
            before = api.get("/procedures").json()
        yield server, script, before
    finally:
        server.stop()


@pytest.mark.parametrize("bad", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_request_is_refused_and_changes_nothing(
    populated: tuple[Server, Path, Any], bad: Bad
) -> None:
    server, script, before = populated
    with server.client() as api:
        response = bad.send(api, script)

        assert bad.mentions in assert_error(response, bad.status)
        after = api.get("/procedures")
        assert after.status_code == 200
        assert after.json() == before


def test_there_are_at_least_30_distinct_malformed_requests() -> None:
    distinct = {(b.method, b.path, repr(b.json), repr(b.content)) for b in MALFORMED.values()}
    assert len(distinct) == len(MALFORMED) >= 30


def test_after_every_malformed_request_in_a_row_nothing_has_changed(
    populated: tuple[Server, Path, Any],
) -> None:
    server, script, before = populated
    with server.client() as api:
        statuses = {name: bad.send(api, script).status_code for name, bad in MALFORMED.items()}

        assert statuses == {name: bad.status for name, bad in MALFORMED.items()}
        assert api.get("/procedures").json() == before
        assert api.get("/procedures/1").json() == {"procedure": before["procedures"][0]}
