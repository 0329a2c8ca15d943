"""The operator console in a real headless Chromium, against a real server and real runners.

Every test loads the page from an ``oet-rest`` subprocess, drives procedures
through the REST API or the page itself, and asserts on what an operator
would see. The page must log no console errors (checked after each test).
"""

import signal
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Console
from tests.conftest import Server
from tests.integration.test_abort_tango import Subarray, _run_device
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

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

FAILS = """
def run():
    raise ValueError("dish 4 is stuck at elevation 15 deg")
"""

BURST = """
from oet import scripting


def run(count=1000):
    for n in range(count):
        scripting.publish("test.burst", n=n, of=count)
"""


def test_the_page_loads_connected_and_lists_existing_procedures(
    api: httpx.Client,
    script: Callable[[str], str],
    open_console: Callable[[Server], Console],
    server: Server,
) -> None:
    pid = create_id(api, script(QUICK), subarray_id=3)
    console = open_console(server)
    expect(console.connection()).to_contain_text("Live since")
    expect(console.state_cell(pid)).to_have_text("CREATED")
    expect(console.row(pid).locator("td").nth(3)).to_have_text("3")
    assert console.page.title() == "OET console"


def test_a_procedure_created_through_the_api_appears_without_a_reload(
    api: httpx.Client, script: Callable[[str], str], console: Console
) -> None:
    console.page.evaluate("window.sameDocument = true")
    pid = create_id(api, script(QUICK))
    expect(console.state_cell(pid)).to_have_text("CREATED")
    start(api, pid)
    expect(console.state_cell(pid)).to_have_text("COMPLETED")
    assert console.page.evaluate("window.sameDocument") is True


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


def test_a_failing_script_shows_its_stack_trace(
    api: httpx.Client, script: Callable[[str], str], console: Console
) -> None:
    pid = create_id(api, script(FAILS))
    start(api, pid)
    expect(console.state_cell(pid)).to_have_text("FAILED")
    console.choose(pid)
    trace = console.page.locator("#stacktrace")
    expect(trace).to_contain_text("Traceback (most recent call last)")
    expect(trace).to_contain_text("ValueError: dish 4 is stuck at elevation 15 deg")
    expect(console.page.locator("#start-form")).to_be_hidden()
    expect(console.page.locator("#abort-button")).to_be_hidden()


@pytest.fixture(scope="module")
def subarray() -> Iterator[Subarray]:
    """A real Tango device standing in for subarray 1's node; it counts Abort commands."""
    yield from _run_device()


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


def test_a_server_restart_shows_the_disconnection_and_the_page_recovers_by_itself(
    make_server: Callable[..., Server],
    open_console: Callable[[Server], Console],
    script: Callable[[str], str],
) -> None:
    server = make_server()
    with server.client() as api:
        running = run_until(api, script(SLEEPER), "RUNNING")
    console = open_console(server)
    console.failed_requests_expected = True  # reconnection attempts while the server is down
    console.page.evaluate("window.sameDocument = true")
    expect(console.state_cell(running)).to_have_text("RUNNING")

    server.stop(signal.SIGKILL)  # no goodbye: the page must notice on its own
    expect(console.connection()).to_have_attribute("data-state", "disconnected")
    expect(console.connection()).to_contain_text("Disconnected")

    again = make_server(db_path=server.db_path, port=server.port)
    expect(console.connection()).to_have_attribute("data-state", "connected")
    # The restarted server marked the orphaned procedure FAILED before the page was back.
    expect(console.state_cell(running)).to_have_text("FAILED")
    with again.client() as api:
        pid = create_id(api, script(QUICK))
    expect(console.state_cell(pid)).to_have_text("CREATED")
    assert console.page.evaluate("window.sameDocument") is True


def test_the_topic_filter_and_pause_control_the_event_log(
    api: httpx.Client, script: Callable[[str], str], console: Console
) -> None:
    page = console.page
    log = page.locator("#events")
    first = create_id(api, script(QUICK))
    start(api, first)
    expect(log.locator('li[data-topic="procedure.lifecycle.complete"]')).to_have_count(1)

    page.fill("#topic-filter", "started")
    expect(log.locator("li")).to_have_count(1)
    expect(log.locator("li")).to_have_attribute("data-topic", "procedure.lifecycle.started")
    page.fill("#topic-filter", "")

    page.click("#pause-button")
    second = create_id(api, script(QUICK))
    expect(console.state_cell(second)).to_have_text("CREATED")  # the table stays live
    expect(page.locator("#log-count")).to_contain_text("paused, 1 new")
    expect(log.locator("li .pid", has_text=f"#{second}")).to_have_count(0)
    page.click("#pause-button")
    expect(log.locator("li .pid", has_text=f"#{second}")).to_have_count(1)


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


def test_script_fields_are_shown_whether_nested_in_payload_or_at_the_top_level(
    console: Console,
) -> None:
    fields = console.page.evaluate(
        """async () => {
            const { eventFields } = await import("./console/format.js");
            const common = {
                id: 7, topic: "user.script.x", time: 1, procedure_id: 2, source: "script",
            };
            return [
                eventFields({ ...common, payload: { msg_src: "a.py", step: 1 } }),
                eventFields({ ...common, msg_src: "a.py", step: 1 }),
            ];
        }"""
    )
    assert fields == [[["msg_src", "a.py"], ["step", "1"]]] * 2


def test_a_burst_of_a_thousand_script_events_is_shown_promptly(
    api: httpx.Client, script: Callable[[str], str], console: Console
) -> None:
    page = console.page
    pid = create_id(api, script(BURST))
    expect(console.state_cell(pid)).to_have_text("CREATED")
    start(api, pid)
    # Seconds from the script publishing its last event to the page showing it.
    latency: Any = page.wait_for_function(
        """() => {
            const rows = document.querySelectorAll('#events li[data-topic="test.burst"]');
            const last = rows[rows.length - 1];
            return last && last.textContent.includes("n=999")
                ? Date.now() / 1000 - Number(last.dataset.time) : null;
        }""",
        timeout=30_000,
    ).json_value()
    print(f"\nlast of 1000 events shown {latency:.3f} s after it was published")
    assert latency < 2.0
    expect(console.state_cell(pid)).to_have_text("COMPLETED")
    expect(page.locator("#log-count")).to_contain_text("received")
    received = int(page.locator("#log-count").inner_text().split()[0])
    assert received >= 1000
    assert page.locator("#events li").count() <= 400  # the log stays bounded
    page.fill("#topic-filter", "burst")  # and still answers the operator at once
    expect(page.locator("#events li").first).to_have_attribute("data-topic", "test.burst")
