"""The console's files: served by OET itself, locked down, and shipped in the package.

These need no browser: they check what the server sends and what a wheel
holds, so an air-gapped site gets a working page from the installed OET alone.
"""

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, Server

pytestmark = pytest.mark.e2e

ASSETS = REPO / "oet" / "api" / "console" / "assets"


def referenced(server: Server) -> set[str]:
    """Every file the page loads: from index.html, then each module's imports, transitively."""
    page = httpx.get(f"{server.base}/console").text
    found = set(re.findall(r'(?:src|href)="console/([^"]+)"', page))
    pending = [name for name in found if name.endswith(".js")]
    while pending:
        source = httpx.get(f"{server.base}/console/{pending.pop()}").text
        for name in re.findall(r'from "\./([^"]+)"', source):
            if name not in found:
                found.add(name)
                pending.append(name)
    return found


def test_the_front_door_leads_to_the_console(server: Server) -> None:
    response = httpx.get(f"{server.base}/", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "/console"


def test_the_page_allows_nothing_but_this_server(server: Server) -> None:
    response = httpx.get(f"{server.base}/console")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "script-src 'self';" in policy  # no 'unsafe-inline', no other origin
    assert response.headers["x-content-type-options"] == "nosniff"
    scripts = re.findall(r"<script\b[^>]*>", response.text)
    assert scripts
    assert all(" src=" in tag for tag in scripts)  # nothing inline
    assert not re.search(r"\son[a-z]+=", response.text)  # no inline event handlers


def test_every_file_the_page_loads_is_served_with_its_type(server: Server) -> None:
    names = referenced(server)
    assert {"main.js", "console.css", "favicon.svg", "stream.js", "api.js"} <= names
    kinds = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    for name in names:
        response = httpx.get(f"{server.base}/console/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-type"].startswith(kinds[Path(name).suffix]), name
        assert "default-src 'self'" in response.headers["content-security-policy"]


def test_no_file_of_the_page_reaches_outside_the_server() -> None:
    for path in ASSETS.iterdir():
        text = re.sub(r'xmlns="[^"]*"', "", path.read_text())  # a namespace name, not a fetch
        outside = re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I)
        assert outside == [], path.name


def test_a_file_the_console_does_not_have_is_a_404_with_the_error_body(server: Server) -> None:
    for name in ("nothing.js", "..%2Fconsole.py", "__init__.py"):
        response = httpx.get(f"{server.base}/console/{name}")
        assert response.status_code == 404, name
        assert response.json()["type"] == "NotFound"


@pytest.mark.slow
def test_a_wheel_ships_the_console_and_serves_it_from_where_it_is_installed(
    tmp_path: Path,
) -> None:
    # Built from a copy, so no build/ folder of an earlier build can slip stale files in.
    source = tmp_path / "source"
    shutil.copytree(REPO / "oet", source / "oet", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("oet-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = {n.rsplit("/", 1)[1] for n in archive.namelist() if "/console/assets/" in n}
        archive.extractall(tmp_path / "site")
    assert shipped == {p.name for p in ASSETS.iterdir()}
    # Import the unpacked wheel, not this checkout, and read the page through the package.
    probe = (
        "import oet, oet.api.console as c; "
        f"print(oet.__file__); print(sorted(c.assets()) == {sorted(shipped)!r})"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    location, complete = run.stdout.split()
    assert location.startswith(str(tmp_path / "site"))
    assert complete == "True"
