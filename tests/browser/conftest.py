"""Fixtures for driving the operator console in a real headless Chromium.

The browser is Debian's ``chromium`` (``make browser`` installs it), driven by
Playwright without Playwright's own browser downloads. Where the browser or
Playwright is missing the tests are skipped on a workstation, and fail under
``CI=true``: a CI run must never pass by not running them.
"""

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Server

CHROMIUM = Path(os.environ.get("OET_TEST_CHROMIUM", "/usr/bin/chromium"))
_FAILED_REQUEST = re.compile(r"Failed to load resource|net::ERR_")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"{reason} (browser tests cannot be skipped under CI)", pytrace=False)
    pytest.skip(reason)


def require_chromium() -> None:
    """Skip (fail under CI) unless Debian's Chromium is installed."""
    if not CHROMIUM.is_file():
        _unavailable(f"{CHROMIUM} is not installed: `make browser` installs it")


# Module scope, not session: Playwright's synchronous API marks an event loop as running in
# the main thread while it is started, which would break later tests that call asyncio.run.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for a module's tests."""
    require_chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed: `make install` installs it")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        launched.close()


class Console:
    """The console page of one server in its own browser context, and what it logged."""

    def __init__(self, context: Any, server: Server) -> None:
        self.context = context
        self.server = server
        self.page = context.new_page()
        self.errors: list[str] = []
        self.failed_requests_expected = False
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def open(self) -> "Console":
        self.page.goto(f"{self.server.base}/console")
        self.connection().wait_for(state="attached")
        self.page.wait_for_selector('#connection[data-state="connected"]')
        return self

    def connection(self) -> Any:
        return self.page.locator("#connection")

    def row(self, pid: int) -> Any:
        """The procedures table's row for ``pid``."""
        return self.page.locator(f'#procedures tr[data-pid="{pid}"]')

    def state_cell(self, pid: int) -> Any:
        return self.row(pid).locator(".state")

    def choose(self, pid: int) -> None:
        """Click a procedure's row and wait for its detail."""
        self.row(pid).click()
        self.page.wait_for_selector(f'#detail-title[data-pid="{pid}"]')

    def unexpected_errors(self) -> list[str]:
        """Console errors, less failed requests when the test provoked them."""
        if not self.failed_requests_expected:
            return list(self.errors)
        return [e for e in self.errors if not _FAILED_REQUEST.search(e)]


@pytest.fixture
def open_console(browser: Any) -> Iterator[Callable[[Server], Console]]:
    """Open the console of a server; afterwards, fail on any console error the page logged."""
    from playwright.sync_api import expect

    expect.set_options(timeout=20_000)
    opened: list[Console] = []

    def open_(server: Server) -> Console:
        context = browser.new_context(viewport={"width": 1600, "height": 1000})
        context.set_default_timeout(20_000)
        console = Console(context, server).open()
        opened.append(console)
        return console

    yield open_
    errors = [e for console in opened for e in console.unexpected_errors()]
    for console in opened:
        console.context.close()
    assert not errors, f"the console logged errors: {errors}"


@pytest.fixture
def console(open_console: Callable[[Server], Console], server: Server) -> Console:
    """The console of the test's server, loaded and connected to its stream."""
    return open_console(server)
