"""The console benchmark runs end to end and reports its figures (not judged here)."""

import json
import subprocess
import sys

import pytest

from tests.browser.conftest import CHROMIUM, require_chromium
from tests.conftest import REPO

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_the_console_benchmark_reports_how_fast_a_burst_is_shown() -> None:
    require_chromium()
    small = ["--runs", "2", "--events", "100", "--json", "--chromium", str(CHROMIUM)]
    done = subprocess.run(
        [sys.executable, "bench/bench_console.py", *small],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert len(report["samples"]) == 2
    assert 0 < report["last_shown_s"]["median"] <= report["last_shown_s"]["max"]
    assert report["longest_task_ms"]["max"] >= 0
