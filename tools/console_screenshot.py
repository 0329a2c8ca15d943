"""Photograph the operator console for the README, from a real run (``make screenshot``).

Starts an OET server on a free port with a scratch database, gives it a few
procedures through the REST API (completed, failed, running, created), opens
the console in Debian's headless Chromium and writes a PNG. Nothing is drawn
by hand: what the picture shows is what the page showed.

    python tools/console_screenshot.py [--output docs/console.png] [--chromium /usr/bin/chromium]
"""

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent

FAILS = """
from oet import scripting


def init(subarray_id=None):
    pass


def run(dish="SKA063"):
    scripting.publish("user.script.pointing", dish=dish, status="slewing")
    raise RuntimeError(f"dish {dish} did not reach its pointing within 30 s")
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait(condition: object, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not callable(condition) or not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {what}")
        time.sleep(0.05)


@contextlib.contextmanager
def _server(workdir: Path) -> Iterator[str]:
    port = _free_port()
    env = {
        **os.environ,
        "OET_DB_PATH": str(workdir / "oet.sqlite3"),
        # the scene's failing script lives in the scratch directory, beside the shipped ones
        "OET_SCRIPT_DIRS": f"{REPO / 'scripts'}:{workdir}",
    }
    with (workdir / "server.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "oet.api.server", "--port", str(port), "--log-level", "warning"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if process.poll() is not None:
            raise SystemExit(f"the server exited:\n{(workdir / 'server.log').read_text()}")
        try:
            return httpx.get(f"{base}/api/v1.0/procedures", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        _wait(answers, "the OET server")
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _procedure(api: httpx.Client, uri: str, subarray: int, start: dict[str, object] | None) -> int:
    created = api.post(
        "/procedures",
        json={"script_uri": uri, "script_args": {"init": {"kwargs": {"subarray_id": subarray}}}},
    )
    created.raise_for_status()
    pid = int(created.json()["procedure"]["uri"].rsplit("/", 1)[1])
    if start is not None:
        body = {"state": "RUNNING", "script_args": {"run": start}}
        api.put(f"/procedures/{pid}", json=body).raise_for_status()
    return pid


def _state(api: httpx.Client, pid: int) -> str:
    state: str = api.get(f"/procedures/{pid}").json()["procedure"]["state"]
    return state


def take(output: Path, chromium: Path) -> Path:
    """Run the scene and write the console's picture to ``output``."""
    from playwright.sync_api import sync_playwright  # a test tool, not a runtime dependency

    with tempfile.TemporaryDirectory() as scratch, _server(Path(scratch)) as base:
        failing = Path(scratch) / "point_dish.py"
        failing.write_text(FAILS)
        with httpx.Client(base_url=f"{base}/api/v1.0", timeout=30) as api:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=str(chromium), args=["--no-sandbox"]
                )
                page = browser.new_page(viewport={"width": 1600, "height": 1000})
                page.goto(f"{base}/console")
                page.wait_for_selector('#connection[data-state="connected"]')
                done = _procedure(api, "file://scripts/hello_world.py", 1, {"args": ["Ada"]})
                _procedure(api, "file://scripts/eventbus.py", 2, {"kwargs": {"steps": 4}})
                failed = _procedure(api, f"file://{failing}", 3, {})
                _wait(lambda: _state(api, failed) == "FAILED", "the failing procedure")
                _wait(lambda: _state(api, done) == "COMPLETED", "hello_world to complete")
                running = _procedure(
                    api, "file://scripts/busy_loop.py", 1, {"kwargs": {"report_every": 0.5}}
                )
                _procedure(api, "file://scripts/hello_world.py", 4, None)
                page.wait_for_selector(f'tr[data-pid="{running}"] .state-RUNNING')
                page.click(f'tr[data-pid="{failed}"]')
                page.wait_for_selector("#stacktrace:has-text('RuntimeError')")
                page.wait_for_selector("#events li[data-topic='user.script.busy.progress']")
                page.screenshot(path=str(output))
                browser.close()
            api.put(f"/procedures/{running}", json={"state": "STOPPED"})
    return output


def main(argv: list[str] | None = None) -> None:
    """Parse ``--output`` and ``--chromium``, then take the picture."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "console.png")
    parser.add_argument("--chromium", type=Path, default=Path("/usr/bin/chromium"))
    args = parser.parse_args(argv)
    print(f"wrote {take(args.output, args.chromium)}")


if __name__ == "__main__":
    main()
