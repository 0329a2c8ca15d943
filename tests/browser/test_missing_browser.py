"""Without Chromium the browser tests skip on a workstation and fail under CI, never pass."""

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

ONE_TEST = ["tests/browser/test_console_live.py", "-k", "nested_in_payload"]


def run_without_browser(**env: str) -> subprocess.CompletedProcess[str]:
    """Run one browser test in a nested pytest that is told Chromium lives nowhere."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *ONE_TEST],
        cwd=REPO,
        env={**os.environ, "OET_TEST_CHROMIUM": "/nonexistent/chromium", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("ci", ["true", "1"])
def test_under_ci_a_missing_browser_fails_the_run(ci: str) -> None:
    done = run_without_browser(CI=ci)
    assert done.returncode != 0
    assert "1 error" in done.stdout
    assert "cannot be skipped under CI" in done.stdout


def test_on_a_workstation_a_missing_browser_skips_and_says_how_to_install_it() -> None:
    done = run_without_browser(CI="")
    assert done.returncode == 0
    assert "1 skipped" in done.stdout
    assert "make browser" in done.stdout
