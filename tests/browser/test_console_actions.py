"""The operator's actions on the console page, against a real server, real runners and Tango.

Create and start from the page, stop, stop with abort (confirmed, reaching a
real Tango device), discard (confirmed), API refusals shown as their message,
the token asked for when the server wants one, and the keyboard alone.
"""

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Console
from tests.conftest import Server
from tests.procedures import (
    ANNOUNCES_THEN_SLEEPS,
    QUICK,
    SLEEPER,
    create_id,
    get,
    run_until,
    start,
    wait_for_state,
)
from tests.tango_device import Subarray, run_subarray_device

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def test_an_operator_creates_and_starts_a_procedure_from_the_page_and_sees_it_complete(
    api: httpx.Client, console: Console
) -> None:
    page = console.page
    page.click("#create-panel summary")
    page.fill("[name=script_uri]", "file://scripts/hello_world.py")
    page.fill("[name=subarray_id]", "2")
    page.fill("#create-form [name=kwargs]", '{"verbose": true}')
    page.click("#create-form button")
    expect(page.locator("#detail-title")).to_contain_text("CREATED")
    pid = int(page.locator("#detail-title").get_attribute("data-pid") or 0)
    assert get(api, pid)["script_args"]["init"]["kwargs"] == {"verbose": True, "subarray_id": 2}
    expect(page.locator("#arguments")).to_contain_text('{"verbose":true,"subarray_id":2}')
    expect(page.locator("#stop-button")).to_be_hidden()  # nothing is executing yet

    page.fill("#start-form [name=args]", '["Ada"]')
    page.click("#start-button")
    expect(console.state_cell(pid)).to_have_text("COMPLETED")
    expect(page.locator("#detail-title .state")).to_have_text("COMPLETED")
    expect(page.locator("#detail-events")).to_contain_text("greeting=Hello, Ada!")
    expect(page.locator("#history li")).to_have_count(4)  # INITIALISING CREATED RUNNING COMPLETED
    expect(page.locator("#timeline .segment.state-COMPLETED")).to_be_visible()
    assert wait_for_state(api, pid, "COMPLETED")["script_args"]["run"]["args"] == ["Ada"]


def test_arguments_that_are_not_json_are_refused_on_the_page_and_nothing_is_created(
    api: httpx.Client, console: Console
) -> None:
    page = console.page
    page.click("#create-panel summary")
    page.fill("[name=script_uri]", "file://scripts/hello_world.py")
    page.fill("#create-form [name=args]", "Ada")
    page.click("#create-form button")
    expect(page.locator("#notice")).to_have_text("init args is not valid JSON: Ada")
    assert api.get("/procedures").json() == {"procedures": []}


def test_an_api_refusal_is_shown_as_the_message_of_its_error_body(
    api: httpx.Client, script: Callable[[str], str], console: Console
) -> None:
    console.failed_requests_expected = True  # Chromium logs every 4xx answer
    run_until(api, script(SLEEPER), "RUNNING")
    waiting = create_id(api, script(QUICK))
    refusal = api.put(f"/procedures/{waiting}", json={"state": "RUNNING"}).json()
    console.choose(waiting)
    console.page.click("#start-button")
    expect(console.page.locator("#notice")).to_have_text(
        f"{refusal['error']}: {refusal['Message']}"
    )
    assert refusal["error"] == "409 Conflict"
    expect(console.state_cell(waiting)).to_have_text("CREATED")


@pytest.fixture(scope="module")
def subarray() -> Iterator[Subarray]:
    """A real Tango device standing in for subarray 1's node; it counts Abort commands."""
    yield from run_subarray_device()


@pytest.mark.tango
def test_stop_with_abort_asks_first_naming_the_subarray_then_aborts_it(
    make_server: Callable[..., Server],
    open_console: Callable[[Server], Console],
    script: Callable[[str], str],
    subarray: Subarray,
) -> None:
    server = make_server(env={"OET_ABORT_FQDN_TEMPLATE": subarray.template})
    with server.client() as api:
        pid = create_id(api, script(ANNOUNCES_THEN_SLEEPS), subarray_id=1)
        start(api, pid)
        console = open_console(server)
        expect(console.state_cell(pid)).to_have_text("RUNNING")
        console.choose(pid)
        page = console.page
        aborts_before = subarray.aborts

        page.click("#abort-button")
        expect(page.locator("#abort-dialog")).to_be_visible()
        expect(page.locator("#abort-question")).to_contain_text("subarray 1")
        page.keyboard.press("Escape")  # the operator thinks better of it
        expect(page.locator("#abort-dialog")).to_be_hidden()
        assert get(api, pid)["state"] == "RUNNING"
        assert subarray.aborts == aborts_before

        page.click("#abort-button")
        page.click("#abort-confirm")
        expect(page.locator("#notice")).to_contain_text("aborted subarray activity")
        expect(console.state_cell(pid)).to_have_text("STOPPED")
        assert subarray.aborts == aborts_before + 1
        assert "Abort" in (get(api, pid)["history"]["reason"] or "")


def test_plain_stop_stops_a_running_procedure_without_asking(
    api: httpx.Client, script: Callable[[str], str], console: Console
) -> None:
    pid = run_until(api, script(SLEEPER), "RUNNING")
    console.choose(pid)
    console.page.click("#stop-button")
    expect(console.state_cell(pid)).to_have_text("STOPPED")
    expect(console.page.locator("#notice")).to_contain_text(f"ID {pid}")


def test_discard_asks_first_then_the_procedure_leaves_the_page_and_the_server(
    api: httpx.Client, script: Callable[[str], str], console: Console
) -> None:
    running = run_until(api, script(SLEEPER), "RUNNING")
    idle = create_id(api, script(QUICK))
    page = console.page
    console.choose(running)
    expect(page.locator("#stop-button")).to_be_visible()
    expect(page.locator("#discard-button")).to_be_hidden()  # its script is executing

    console.choose(idle)
    expect(page.locator("#discard-button")).to_be_visible()
    page.click("#discard-button")
    expect(page.locator("#discard-dialog")).to_be_visible()
    expect(page.locator("#discard-question")).to_contain_text(f"Discard procedure {idle}")
    expect(page.locator("#discard-question")).to_contain_text("will never run")
    page.keyboard.press("Escape")  # the operator thinks better of it
    expect(page.locator("#discard-dialog")).to_be_hidden()
    assert get(api, idle)["state"] == "CREATED"

    page.click("#discard-button")
    page.click("#discard-confirm")
    expect(page.locator("#notice")).to_have_text(f"Procedure {idle} discarded")
    expect(console.row(idle)).to_have_count(0)
    expect(page.locator("#detail-title")).to_have_text("Choose a procedure")
    assert api.get(f"/procedures/{idle}").status_code == 404
    assert get(api, running)["state"] == "RUNNING"


def test_a_discard_elsewhere_removes_the_procedure_from_the_page(
    api: httpx.Client, script: Callable[[str], str], console: Console
) -> None:
    pid = run_until(api, script(QUICK), "COMPLETED")
    expect(console.state_cell(pid)).to_have_text("COMPLETED")
    console.choose(pid)
    expect(console.page.locator("#discard-button")).to_be_visible()  # ended: may be discarded

    assert api.delete(f"/procedures/{pid}").status_code == 200  # as `oet discard` does

    expect(console.row(pid)).to_have_count(0)


def test_the_keyboard_alone_chooses_procedures_and_reaches_the_controls(
    api: httpx.Client, script: Callable[[str], str], console: Console
) -> None:
    older = create_id(api, script(QUICK))
    newer = create_id(api, script(QUICK))
    page = console.page
    expect(console.row(newer)).to_be_visible()
    page.keyboard.press("ArrowDown")
    expect(page.locator("#detail-title")).to_have_attribute("data-pid", str(newer))
    page.keyboard.press("ArrowDown")
    expect(page.locator("#detail-title")).to_have_attribute("data-pid", str(older))
    expect(console.row(older)).to_be_focused()
    page.keyboard.press("/")
    expect(page.locator("#topic-filter")).to_be_focused()
    page.keyboard.press("Escape")
    page.keyboard.press("p")
    expect(page.locator("#pause-button")).to_have_attribute("aria-pressed", "true")
    page.keyboard.press("n")
    expect(page.locator("[name=script_uri]")).to_be_focused()


def test_the_page_asks_for_the_token_when_the_server_wants_one_and_keeps_it_for_the_tab(
    api: httpx.Client, console: Console
) -> None:
    # Until the token setting lands, the route below plays the server's part: it refuses
    # changes without the bearer token and passes everything else to the real server.
    console.failed_requests_expected = True
    sent: list[dict[str, str]] = []

    def guard(route: Any) -> None:
        request = route.request
        if request.method in {"POST", "PUT"}:
            sent.append(request.headers)
            if request.headers.get("authorization") != "Bearer s3cret":
                body = {"error": "401 Unauthorized", "type": "Unauthorized", "Message": "Token?"}
                route.fulfill(status=401, content_type="application/json", body=json.dumps(body))
                return
        route.continue_()

    page = console.page
    page.route("**/api/v1.0/procedures**", guard)
    page.click("#create-panel summary")
    page.fill("[name=script_uri]", "file://scripts/hello_world.py")
    page.click("#create-form button")
    expect(page.locator("#token-dialog")).to_be_visible()
    expect(page.locator("#token-reason")).to_have_text("401 Unauthorized: Token?")
    page.fill("#token-input", "s3cret")
    page.keyboard.press("Enter")
    expect(page.locator("#detail-title")).to_contain_text("CREATED")
    pid = int(page.locator("#detail-title").get_attribute("data-pid") or 0)

    page.click("#start-button")  # the token is remembered: no second question
    expect(console.state_cell(pid)).to_have_text("COMPLETED")
    assert page.evaluate("sessionStorage.getItem('oet.api_token')") == "s3cret"
    assert [h.get("authorization") for h in sent] == [None, "Bearer s3cret", "Bearer s3cret"]
    assert {h.get("content-type") for h in sent} == {"application/json"}
    assert get(api, pid)["state"] == "COMPLETED"
