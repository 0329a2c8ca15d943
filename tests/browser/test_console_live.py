"""The console keeps up: live table, failures, restarts, the event log, bursts.

Every test loads the page in a real headless Chromium from an ``oet-rest``
subprocess with real runners, and asserts on what an operator would see. The
page must log no console errors (checked after each test).
"""

import signal
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Console
from tests.conftest import Server
from tests.procedures import QUICK, SLEEPER, create_id, run_until, slow_init, start

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


def test_a_procedure_whose_init_is_slow_shows_as_initialising_until_it_is_created(
    server: Server, script: Callable[[str], str], console: Console
) -> None:
    uri = script(slow_init(4))
    answers: list[httpx.Response] = []
    with server.client() as api:
        creating = threading.Thread(
            target=lambda: answers.append(api.post("/procedures", json={"script_uri": uri}))
        )
        creating.start()
        try:
            expect(console.page.locator("#procedures .state-INITIALISING")).to_have_count(1)
        finally:
            creating.join(30)
    (answer,) = answers
    pid = int(answer.json()["procedure"]["uri"].rsplit("/", 1)[1])
    expect(console.state_cell(pid)).to_have_text("CREATED")


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


def test_script_fields_are_shown_once_whether_nested_in_payload_or_at_the_top_level(
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
                eventFields({
                    ...common, msg_src: "a.py", step: 1,
                    payload: { msg_src: "a.py", step: 1, topic: "mine" },
                }),
            ];
        }"""
    )
    # Each field once; a keyword named like OET's own is read from `payload`.
    assert fields == [[["msg_src", "a.py"], ["step", "1"]]] * 2 + [
        [["msg_src", "a.py"], ["step", "1"], ["topic", "mine"]]
    ]


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
