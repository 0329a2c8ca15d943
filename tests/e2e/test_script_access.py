"""Only scripts in the allowed directories run, and only on requests a browser cannot forge.

``script_dirs`` (``OET_SCRIPT_DIRS``) names the directories; the check is on
the real path, so ``..`` and symlinks cannot lead out of them. Changes need a
JSON body, and the API token when one is set.
"""

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, SCRIPTS, Server, free_port, wait_for
from tests.e2e.test_rest_errors import assert_error
from tests.procedures import QUICK, SLEEPER, create_id, state_of

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent


@pytest.fixture
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working script in a directory no test server allows."""
    path = tmp_path_factory.mktemp("not-allowed") / "elsewhere.py"
    path.write_text(QUICK)
    return path


def nothing_recorded(api: httpx.Client) -> bool:
    procedures: list[object] = api.get("/procedures").json()["procedures"]
    return procedures == []


# -- script_dirs --------------------------------------------------------------------


def test_by_default_only_the_example_scripts_can_be_loaded(tmp_path: Path, outside: Path) -> None:
    server = Server(tmp_path / "oet.sqlite3")
    del server.env["OET_SCRIPT_DIRS"]  # the installed default
    server.start()
    try:
        with server.client() as api:
            create_id(api, "file://scripts/hello_world.py")
            create_id(api, f"file://{SCRIPTS}/hello_world.py")
            refused = api.post("/procedures", json={"script_uri": f"file://{outside}"})
            assert_error(refused, 400, "ScriptNotAllowed")
            assert len(api.get("/procedures").json()["procedures"]) == 2
    finally:
        server.stop()


@pytest.mark.parametrize(
    "uri",
    [
        "file:///etc/passwd",
        "file://scripts/../oet/config.py",
        "file://{allowed}/../{outside.parent.name}/elsewhere.py",
        "file://{outside}",
    ],
)
def test_a_script_outside_the_allowed_directories_is_refused(
    api: httpx.Client, tmp_path: Path, outside: Path, uri: str
) -> None:
    uri = uri.format(allowed=tmp_path, outside=outside)

    response = api.post("/procedures", json={"script_uri": uri})

    message = assert_error(response, 400, "ScriptNotAllowed")
    assert str(outside.parent) not in message.replace(uri, "")
    assert nothing_recorded(api)


def test_a_symlink_out_of_an_allowed_directory_is_refused(
    api: httpx.Client, tmp_path: Path, outside: Path
) -> None:
    link = tmp_path / "looks_allowed.py"
    link.symlink_to(outside)
    folder_link = tmp_path / "linked_folder"
    folder_link.symlink_to(outside.parent)

    for uri in (f"file://{link}", f"file://{folder_link}/elsewhere.py"):
        assert_error(api.post("/procedures", json={"script_uri": uri}), 400, "ScriptNotAllowed")
    assert nothing_recorded(api)


def test_a_symlink_inside_the_allowed_directories_is_followed(
    api: httpx.Client, tmp_path: Path, script: Callable[[str], str]
) -> None:
    target = Path(script(QUICK).removeprefix("file://"))
    link = tmp_path / "alias.py"
    link.symlink_to(target)

    create_id(api, f"file://{link}")


# -- file:// hosts (RFC 8089) ---------------------------------------------------------


def test_file_uris_naming_localhost_are_this_machine(api: httpx.Client) -> None:
    create_id(api, f"file://localhost{SCRIPTS}/hello_world.py")
    create_id(api, f"file://LOCALHOST{SCRIPTS}/hello_world.py")


def test_file_uris_naming_another_host_are_refused(api: httpx.Client) -> None:
    response = api.post("/procedures", json={"script_uri": f"file://otherhost{SCRIPTS}/x.py"})

    assert "otherhost" in assert_error(response, 400, "InvalidRequest")
    assert nothing_recorded(api)


# -- requests a browser could send -----------------------------------------------------


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None]
)
def test_a_change_without_a_json_content_type_is_refused(
    api: httpx.Client, script: Callable[[str], str], content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    body = f'{{"script_uri": "{script(QUICK)}"}}'.encode()
    pid = create_id(api, script(SLEEPER))

    created = api.post("/procedures", content=body, headers=headers)
    started = api.put(f"/procedures/{pid}", content=b'{"state": "RUNNING"}', headers=headers)

    assert_error(created, 415, "UnsupportedMediaType")
    assert_error(started, 415, "UnsupportedMediaType")
    assert len(api.get("/procedures").json()["procedures"]) == 1
    assert state_of(api, pid) == "CREATED"


# -- the API token ---------------------------------------------------------------------


@pytest.fixture
def guarded(make_server: Callable[..., Server]) -> Server:
    return make_server(env={"OET_API_TOKEN": "s3cret-token"})


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "s3cret-token", "Basic s3cret"])
def test_with_a_token_set_a_change_without_it_is_401(
    guarded: Server, script: Callable[[str], str], authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    with guarded.client() as api:
        response = api.post("/procedures", json={"script_uri": script(QUICK)}, headers=headers)

        assert_error(response, 401, "Unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"
        assert nothing_recorded(api)  # reading needs no token


def test_with_a_token_set_a_change_carrying_it_is_done(
    guarded: Server, script: Callable[[str], str]
) -> None:
    headers = {"Authorization": "Bearer s3cret-token"}
    with httpx.Client(base_url=guarded.api, headers=headers, timeout=30) as api:
        create_id(api, script(QUICK))


def test_the_cli_sends_the_token_from_oet_api_token(
    guarded: Server, script: Callable[[str], str]
) -> None:
    env = {**os.environ, "OET_REST_URI": guarded.procedures}
    oet = [str(BIN / "oet"), "create", script(QUICK)]

    refused = subprocess.run(oet, env=env, capture_output=True, text=True, timeout=60)
    accepted = subprocess.run(
        oet,
        env={**env, "OET_API_TOKEN": "s3cret-token"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert refused.returncode == 1
    assert "API token" in refused.stderr
    assert accepted.returncode == 0, accepted.stderr
    assert "CREATED" in accepted.stdout


def test_the_server_warns_when_it_listens_beyond_loopback_without_a_token(
    tmp_path: Path,
) -> None:
    log = tmp_path / "server.log"
    env = {**os.environ, "OET_DB_PATH": str(tmp_path / "oet.sqlite3")}
    env.pop("OET_API_TOKEN", None)
    with log.open("wb") as out:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "oet.api.server",
                "--host",
                "0.0.0.0",
                "--port",
                str(free_port()),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    try:
        wait_for(lambda: "Uvicorn running" in log.read_text(), 20, "the server to start")
    finally:
        server.terminate()
        server.wait(20)

    warning = [line for line in log.read_text().splitlines() if "API token" in line]
    assert len(warning) == 1, log.read_text()
    assert warning[0].startswith("WARNING")


def test_with_a_token_set_a_discard_needs_it_but_no_content_type(
    guarded: Server, script: Callable[[str], str]
) -> None:
    headers = {"Authorization": "Bearer s3cret-token"}
    with httpx.Client(base_url=guarded.api, headers=headers, timeout=30) as api:
        pid = create_id(api, script(QUICK))
        with guarded.client() as anonymous:
            refused = anonymous.delete(f"/procedures/{pid}")

        assert_error(refused, 401, "Unauthorized")
        assert state_of(api, pid) == "CREATED"
        discarded = api.delete(f"/procedures/{pid}")  # no body, no Content-Type
        assert discarded.status_code == 200, discarded.text
        assert nothing_recorded(api)
