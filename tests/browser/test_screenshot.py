"""``make screenshot`` (a README command) photographs the console of a real run."""

import struct
import subprocess
from pathlib import Path

import pytest

from tests.browser.conftest import CHROMIUM, require_chromium
from tests.conftest import REPO

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_make_screenshot_writes_a_picture_of_the_console(tmp_path: Path) -> None:
    require_chromium()
    picture = tmp_path / "console.png"
    done = subprocess.run(
        ["make", "-s", "screenshot", f"CONSOLE_PNG={picture}", f"CHROMIUM={CHROMIUM}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    header = picture.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", header[16:24]) == (1600, 1000)
