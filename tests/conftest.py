"""Shared fixtures: a real OET REST server in a subprocess, on a free port.

Tests talk to it over HTTP exactly as the CLI and curl do. Each server gets
its own SQLite file, so tests never see each other's procedures. Tests marked
``both_backends`` get their servers on the Kubernetes backend too
(tests/backends.py); the test cluster's fixtures come from tests/k8s/fixtures.py.
"""

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests import warm_server

pytest_plugins = ["tests.k8s.fixtures", "tests.backends"]

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "scripts"
FIXTURE_SCRIPTS = Path(__file__).resolve().parent / "scripts"

# A shell that starts a job in the background (without job control) makes it
# ignore Ctrl-C, and every command the tests start would inherit that: `oet
# listen` and `curl -N` would then never answer the Ctrl-C the tests send them.
# A handler (unlike "ignore") is reset to the default in each child.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(condition: Callable[[], object], timeout: float = 10.0, what: str = "") -> object:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")
        time.sleep(0.02)


class Server:
    """A running ``oet-rest`` subprocess and how to reach it."""

    def __init__(
        self, db_path: Path, env: dict[str, str] | None = None, port: int | None = None
    ) -> None:
        self.db_path = db_path
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.api = f"{self.base}/api/v1.0"
        self.procedures = f"{self.api}/procedures"
        self.env = {
            **os.environ,
            "OET_DB_PATH": str(db_path),
            # the example scripts, and the ones tests write beside the database
            "OET_SCRIPT_DIRS": f"{SCRIPTS}:{db_path.parent}",
            **(env or {}),
        }
        self.log = db_path.with_suffix(f".{self.port}.log")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> "Server":
        """Start it and wait until it answers.

        A server on the Kubernetes backend starts from a spare interpreter that has done its
        imports, when the `make_server` fixture has had one made (tests/warm_server.py).
        """
        argv = ["--port", str(self.port), "--log-level", "warning"]
        self.process = warm_server.launch(argv, self.env, self.log)
        wait_for(self._ready, 20, "the OET server to answer")
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"server exited early:\n{self.log.read_text()}")
        try:
            return httpx.get(self.procedures, timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the server with ``sig`` and wait for it to exit."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.api, timeout=30)


@pytest.fixture(scope="session", autouse=True)
def _no_spare_server_left() -> Iterator[None]:
    """Stop the spare server process the last server start prepared (tests/warm_server.py)."""
    yield
    warm_server.discard()


@pytest.fixture
def make_server(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Server]]:
    """Start servers on demand (``make_server(env=..., db_path=..., port=...)``).

    All are stopped afterwards. Passing an earlier server's ``db_path`` and
    ``port`` restarts "the same" server, as an operator would. On the
    Kubernetes backend (tests/backends.py) the module's stack is reset first,
    so a test's first server starts as empty as an embedded one.
    """
    servers: list[Server] = []
    kube_env: dict[str, str] = {}
    if backend == "kubernetes":
        stack = request.getfixturevalue("kube_stack")
        stack.reset()
        kube_env = stack.server_env()

    def make(
        env: dict[str, str] | None = None, db_path: Path | None = None, port: int | None = None
    ) -> Server:
        settings = {**kube_env, **(env or {})}
        if kube_env:  # the operator gets the settings it shares with the API
            request.getfixturevalue("kube_stack").configure(settings)
        server = Server(db_path or tmp_path / "oet.sqlite3", settings, port).start()
        servers.append(server)
        warm_server.prepare(server.env)  # for the next test's server, while this one runs
        return server

    yield make
    for server in servers:
        with contextlib.suppress(Exception):
            server.stop()


@pytest.fixture
def server(make_server: Callable[..., Server]) -> Server:
    """One fresh OET server with default settings."""
    return make_server()


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    """An HTTP client whose base URL is the server's ``/api/v1.0``."""
    with server.client() as client:
        yield client


@pytest.fixture
def script_dir(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Path:
    """A directory for the test's scripts, inside the servers' ``script_dirs``.

    On the Kubernetes backend it is not ``tmp_path``: runner containers run
    as uid 1000 and cannot enter pytest's private (0700) temporary folders,
    so the stack lends a directory of its own that uid 1000 owns.
    """
    if backend == "kubernetes":
        path: Path = request.getfixturevalue("kube_stack").new_script_dir()
        return path
    return tmp_path


@pytest.fixture
def script(script_dir: Path) -> Callable[[str], str]:
    """Write a procedure script from source text; returns its file:// URI."""
    counter = iter(range(1_000_000))

    def write(source: str) -> str:
        path = script_dir / f"script_{next(counter)}.py"
        path.write_text(source)
        return f"file://{path}"

    return write
