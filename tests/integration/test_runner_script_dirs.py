"""The runner itself refuses scripts outside the allowed directories.

The REST server checks a script URI up front, but the runner is the process
that opens the file, so it checks again on the real path it is about to
load: whatever reaches it by another way (a changed symlink, a load message
naming another file) is refused before a line of the script runs.
"""

import textwrap
from pathlib import Path

import pytest

from tests.integration.test_runner import Runner

# Leaves a mark as soon as it is imported, so a test can see whether it ran at all.
MARKS = """
from pathlib import Path
Path(__file__).with_suffix(".ran").write_text("ran")

def run():
    pass
"""


@pytest.fixture
def runner() -> Runner:
    child = Runner()
    yield child  # type: ignore[misc]
    child.close()


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    path = folder / "marks.py"
    path.write_text(textwrap.dedent(MARKS))
    return path


def refused(runner: Runner) -> str:
    report = runner.state("FAILED")
    assert runner.wait_exit() == 1
    reason: str = report["reason"]
    return reason


def test_a_script_outside_the_directories_it_is_given_is_not_run(
    runner: Runner, tmp_path: Path, outside: Path
) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()

    runner.load(outside, script_dirs=[str(allowed)])

    assert "ScriptNotAllowed" in refused(runner)
    assert not outside.with_suffix(".ran").exists()


def test_a_symlink_in_an_allowed_directory_pointing_out_of_it_is_not_run(
    runner: Runner, tmp_path: Path, outside: Path
) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    link = allowed / "innocent.py"
    link.symlink_to(outside)

    runner.load(link, script_dirs=[str(allowed)])

    assert "ScriptNotAllowed" in refused(runner)
    assert not outside.with_suffix(".ran").exists()


def test_a_runner_told_no_directories_uses_its_own_settings(runner: Runner, outside: Path) -> None:
    runner.send(
        {"cmd": "load", "script_path": str(outside), "init": {"args": [], "kwargs": {}}}
    )  # no script_dirs: the default, the example scripts only

    assert "ScriptNotAllowed" in refused(runner)
    assert not outside.with_suffix(".ran").exists()
