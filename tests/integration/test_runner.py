"""The runner (``python -m oet.runner``) as a real subprocess, driven over its pipes.

Each test plays the supervisor: it writes JSON-line commands to the runner's
stdin and reads its reports from stdout, exactly as the embedded backend
does. Every wait has a deadline; nothing sleeps blindly.
"""

import contextlib
import fcntl
import json
import queue
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, wait_for
from tests.procedures import ANNOUNCES_THEN_SLEEPS, IGNORES_STOP, unread_bytes

Report = dict[str, Any]


class Runner:
    """A ``python -m oet.runner`` child and the reports it has sent."""

    def __init__(self, read: bool = True) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "oet.runner"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=REPO,
        )
        self.reports: queue.Queue[Report | None] = queue.Queue()
        self.raw_lines: list[bytes] = []
        self.stderr_lines: list[str] = []
        self.seen: list[Report] = []
        self._readers = [
            threading.Thread(target=self._read_reports, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        if read:
            self.resume_reading()

    def resume_reading(self) -> None:
        """Read reports and stderr in the background from now on."""
        for reader in self._readers:
            reader.start()

    def _read_reports(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.raw_lines.append(line)
            try:
                self.reports.put(json.loads(line))
            except ValueError:
                self.reports.put({"type": "unreadable", "line": line[:200]})
        self.reports.put(None)

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr_lines.append(line.decode(errors="replace"))

    @property
    def stderr(self) -> str:
        return "".join(self.stderr_lines)

    def send(self, command: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command).encode() + b"\n")
        self.process.stdin.flush()

    def send_raw(self, line: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line)
        self.process.stdin.flush()

    def close_stdin(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()

    def load(self, path: Path, *args: Any, **load: Any) -> None:
        """Send the load command: ``args`` and ``init_kwargs`` go to ``init``."""
        init_kwargs = load.pop("init_kwargs", {})
        self.send(
            {
                "cmd": "load",
                "script_path": str(path),
                "script_dirs": [str(path.parent)],
                "init": {"args": list(args), "kwargs": init_kwargs},
                "stop_grace": 1.0,
                **load,
            }
        )

    def start(self, *args: Any, **kwargs: Any) -> None:
        self.send({"cmd": "start", "args": list(args), "kwargs": kwargs})

    def load_and_start(self, path: Path, *args: Any, **kwargs: Any) -> None:
        """Load ``path`` without init arguments, see it CREATED, start it with these run() args."""
        self.load(path)
        self.state("CREATED")
        self.start(*args, **kwargs)

    def stop(self, abort: bool = False) -> None:
        self.send({"cmd": "stop", "abort": abort})

    def next(self, timeout: float = 10.0) -> Report:
        try:
            report = self.reports.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(
                f"no report within {timeout} s; so far {self.seen}\nstderr:\n{self.stderr}"
            ) from None
        if report is None:
            self.reports.put(None)
            raise AssertionError(f"the runner's stdout closed; so far {self.seen}\n{self.stderr}")
        self.seen.append(report)
        return report

    def until(self, predicate: Callable[[Report], bool], timeout: float = 10.0) -> Report:
        """Read reports until one matches ``predicate``; fail after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            report = self.next(max(0.0, deadline - time.monotonic()))
            if predicate(report):
                return report

    def state(self, state: str, timeout: float = 10.0) -> Report:
        """The next state report, which must be ``state``."""
        report = self.until(lambda r: r["type"] == "state", timeout)
        assert report["state"] == state, f"expected {state}, got {report}\n{self.stderr}"
        return report

    def event(self, topic: str, timeout: float = 10.0) -> Report:
        """The first event on ``topic``."""
        return self.until(lambda r: r["type"] == "event" and r["topic"] == topic, timeout)

    def events(self) -> list[Report]:
        return [r for r in self.seen if r["type"] == "event"]

    def wait_exit(self, timeout: float = 10.0) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the runner did not exit within {timeout} s") from None

    def close(self) -> None:
        """Kill the runner if it is still alive and release its pipes."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        for reader in self._readers:
            if reader.is_alive():
                reader.join(10)
        for pipe in (self.process.stdin, self.process.stdout, self.process.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


@pytest.fixture
def runner() -> Iterator[Runner]:
    """A fresh runner subprocess, killed after the test if still alive."""
    child = Runner()
    yield child
    child.close()


@pytest.fixture
def write_script(tmp_path: Path) -> Callable[[str], Path]:
    """Write a script from (indented) source text; returns its path."""
    counter = iter(range(1000))

    def write(source: str) -> Path:
        path = tmp_path / f"runner_script_{next(counter)}.py"
        path.write_text(textwrap.dedent(source))
        return path

    return write


ANNOUNCES_THEN_SPINS = """
    from oet import scripting

    def run():
        n = 0
        while True:
            n += 1
            if n == 100_000:  # announced from inside the loop, so the stop lands in it
                scripting.publish("test.running")
"""


def test_init_receives_the_load_arguments_and_run_the_start_arguments(
    runner: Runner, write_script: Callable[[str], Path]
) -> None:
    path = write_script(
        """
        from oet import scripting

        def init(*args, **kwargs):
            scripting.publish("test.init", args=list(args), kwargs=kwargs)

        def run(*args, **kwargs):
            scripting.publish("test.run", args=list(args), kwargs=kwargs)
        """
    )
    runner.load(path, 1, "two", init_kwargs={"subarray_id": 3, "sb": {"id": "sb-1"}})
    assert runner.event("test.init")["payload"] == {
        "args": [1, "two"],
        "kwargs": {"subarray_id": 3, "sb": {"id": "sb-1"}},
    }
    runner.state("CREATED")
    runner.start("scan", scan_duration=14.0)
    assert runner.event("test.run")["payload"] == {
        "args": ["scan"],
        "kwargs": {"scan_duration": 14.0},
    }
    runner.state("COMPLETED")
    assert runner.wait_exit() == 0


def test_script_keyword_arguments_may_use_any_name(
    runner: Runner, write_script: Callable[[str], Path]
) -> None:
    path = write_script(
        """
        from oet import scripting

        def init(**kwargs):
            scripting.publish("test.init", kwargs=kwargs)

        def run(**kwargs):
            scripting.publish("test.run", kwargs=kwargs)
        """
    )
    runner.load(path, init_kwargs={"fn": 1, "self": 2})
    assert runner.event("test.init")["payload"] == {"kwargs": {"fn": 1, "self": 2}}
    runner.send({"cmd": "start", "args": [], "kwargs": {"fn": "x", "self": "y"}})
    assert runner.event("test.run")["payload"] == {"kwargs": {"fn": "x", "self": "y"}}
    runner.state("COMPLETED")


def test_main_is_called_when_the_script_has_no_run(
    runner: Runner, write_script: Callable[[str], Path]
) -> None:
    path = write_script(
        """
        from oet import scripting

        def main(name):
            scripting.publish("test.main", name=name)
        """
    )
    runner.load_and_start(path, "Ada")
    assert runner.event("test.main")["payload"] == {"name": "Ada"}
    runner.state("COMPLETED")


def test_a_script_without_run_or_main_fails_before_it_is_created(
    runner: Runner, write_script: Callable[[str], Path]
) -> None:
    runner.load(write_script("def init():\n    pass\n"))
    failed = runner.state("FAILED")
    assert "neither run() nor main()" in failed["reason"]
    assert runner.wait_exit() != 0


def test_an_exception_in_run_fails_the_procedure_with_its_stack_trace(
    runner: Runner, write_script: Callable[[str], Path]
) -> None:
    path = write_script(
        """
        def run():
            point_the_dish()

        def point_the_dish():
            raise ValueError("dish 4 is not answering")
        """
    )
    runner.load_and_start(path)
    failed = runner.state("FAILED")
    assert failed["reason"] == "ValueError: dish 4 is not answering"
    assert "Traceback (most recent call last)" in failed["stacktrace"]
    assert path.name in failed["stacktrace"]
    assert "point_the_dish" in failed["stacktrace"]
    assert failed["stacktrace"].rstrip().endswith("ValueError: dish 4 is not answering")
    assert runner.wait_exit() == 1


def test_an_exception_in_init_fails_the_procedure_before_it_is_created(
    runner: Runner, write_script: Callable[[str], Path]
) -> None:
    path = write_script(
        """
        def init(subarray_id):
            raise RuntimeError(f"subarray {subarray_id} is busy")

        def run():
            pass
        """
    )
    runner.load(path, init_kwargs={"subarray_id": 2})
    failed = runner.state("FAILED")
    assert failed["reason"] == "RuntimeError: subarray 2 is busy"
    assert "in init" in failed["stacktrace"]


def test_a_script_that_does_not_import_fails_with_its_syntax_error(
    runner: Runner, write_script: Callable[[str], Path]
) -> None:
    runner.load(write_script("def run(:\n    pass\n"))
    failed = runner.state("FAILED")
    assert failed["reason"].startswith("SyntaxError")


@pytest.mark.parametrize(
    ("exit_call", "state"),
    [("sys.exit()", "COMPLETED"), ("sys.exit(0)", "COMPLETED"), ("sys.exit(2)", "FAILED")],
)
def test_sys_exit_completes_with_status_zero_and_fails_otherwise(
    runner: Runner, write_script: Callable[[str], Path], exit_call: str, state: str
) -> None:
    runner.load_and_start(write_script(f"import sys\n\ndef run():\n    {exit_call}\n"))
    report = runner.state(state)
    if state == "FAILED":
        assert report["reason"] == "SystemExit: 2"


def stop_latency(runner: Runner, path: Path) -> float:
    """Start ``path``, wait until its run() announces itself, stop it; seconds to STOPPED."""
    runner.load_and_start(path)
    runner.event("test.running")
    asked = time.monotonic()
    runner.stop()
    stopped = runner.state("STOPPED", timeout=10)
    latency = time.monotonic() - asked
    assert stopped["abort"] is None
    assert runner.wait_exit() == 0
    return latency


def test_stop_interrupts_a_script_sleeping_for_an_hour(
    runner: Runner, write_script: Callable[[str], Path]
) -> None:
    latency = stop_latency(runner, write_script(ANNOUNCES_THEN_SLEEPS))
    print(f"\nstop latency, script in time.sleep(3600): {latency * 1000:.1f} ms")
    assert latency < 5


def test_stop_interrupts_a_pure_python_busy_loop(
    runner: Runner, write_script: Callable[[str], Path]
) -> None:
    latency = stop_latency(runner, write_script(ANNOUNCES_THEN_SPINS))
    print(f"\nstop latency, script in a pure-Python busy loop: {latency * 1000:.1f} ms")
    assert latency < 5


def test_stop_is_not_swallowed_by_the_scripts_except_exception(
    runner: Runner, write_script: Callable[[str], Path]
) -> None:
    path = write_script(
        """
        import time
        from oet import scripting

        def run():
            while True:
                try:
                    scripting.publish("test.running")
                    time.sleep(3600)
                except Exception:
                    scripting.publish("test.swallowed")
        """
    )
    stop_latency(runner, path)
    assert not [e for e in runner.events() if e["topic"] == "test.swallowed"]


def test_stop_during_init_stops_the_procedure_before_it_is_created(
    runner: Runner, write_script: Callable[[str], Path]
) -> None:
    path = write_script(
        """
        import time
        from oet import scripting

        def init():
            scripting.publish("test.initialising")
            time.sleep(3600)

        def run():
            scripting.publish("test.ran")
        """
    )
    runner.load(path)
    runner.event("test.initialising")
    runner.stop()
    runner.state("STOPPED")
    assert runner.wait_exit() == 0
    assert "test.ran" not in [e["topic"] for e in runner.events()]


def test_stop_of_a_created_procedure_stops_it_without_running_it(
    runner: Runner, write_script: Callable[[str], Path]
) -> None:
    runner.load(
        write_script("from oet import scripting\n\ndef run():\n    scripting.publish('x')\n")
    )
    runner.state("CREATED")
    runner.stop()
    runner.state("STOPPED")
    assert runner.wait_exit() == 0
    assert runner.events() == []


def test_runner_stops_and_exits_when_its_supervisor_goes_away(
    runner: Runner, write_script: Callable[[str], Path]
) -> None:
    runner.load_and_start(write_script(ANNOUNCES_THEN_SLEEPS))
    runner.event("test.running")
    runner.close_stdin()
    runner.state("STOPPED")
    assert runner.wait_exit(5) == 0


def test_runner_exits_after_the_grace_period_when_its_script_ignores_the_stop(
    runner: Runner, write_script: Callable[[str], Path]
) -> None:
    runner.load_and_start(write_script(IGNORES_STOP))  # stop_grace 1 s
    runner.event("test.running")
    runner.close_stdin()
    runner.event("test.ignored_stop")
    assert runner.wait_exit(10) != 0  # it does not outlive its supervisor


def test_what_a_script_prints_never_reaches_the_message_stream(
    runner: Runner, write_script: Callable[[str], Path]
) -> None:
    path = write_script(
        """
        import os
        import sys
        from oet import scripting

        def init():
            print("printed by init")

        def run():
            print("printed by run", flush=True)
            sys.stdout.write("{not json either\\n")
            sys.stdout.flush()
            os.write(1, b"written to file descriptor 1\\n")
            print("to stderr", file=sys.stderr)
            scripting.publish("test.after_prints", ok=True)
        """
    )
    runner.load_and_start(path)
    assert runner.event("test.after_prints")["payload"] == {"ok": True}
    runner.state("COMPLETED")
    assert runner.wait_exit() == 0
    for line in runner.raw_lines:
        assert isinstance(json.loads(line), dict)
    printed = ("printed by init", "printed by run", "{not json either", "file descriptor 1")
    wait_for(lambda: all(text in runner.stderr for text in printed), 5, "the prints on stderr")


def test_payloads_that_are_not_json_are_sent_as_their_repr(
    runner: Runner, write_script: Callable[[str], Path]
) -> None:
    path = write_script(
        """
        from pubsub import pub
        from oet import scripting

        class Dish:
            def __repr__(self):
                return "<Dish 4>"

        def run():
            scripting.publish("test.odd", dish=Dish(), name="ok", ids={7})
            pub.sendMessage("test.odd_pubsub", dish=Dish())
        """
    )
    runner.load_and_start(path)
    assert runner.event("test.odd")["payload"] == {"dish": "<Dish 4>", "name": "ok", "ids": "{7}"}
    assert runner.event("test.odd_pubsub")["payload"] == {"dish": "<Dish 4>"}
    runner.state("COMPLETED")


def test_stop_with_abort_but_no_subarray_id_stops_and_says_why_abort_was_not_sent(
    runner: Runner, write_script: Callable[[str], Path]
) -> None:
    runner.load(
        write_script(ANNOUNCES_THEN_SLEEPS),
        abort={"fqdn_template": "tango://127.0.0.1:1/nowhere/{subarray_id}#dbase=no", "timeout": 1},
    )
    runner.state("CREATED")
    runner.start()
    runner.event("test.running")
    runner.stop(abort=True)
    stopped = runner.state("STOPPED")
    assert stopped["abort"]["sent"] is False
    assert "subarray_id" in stopped["abort"]["message"]
    assert "not sent" in stopped["abort"]["message"]


def test_a_stop_with_abort_before_the_script_was_started_does_not_abort(
    runner: Runner, write_script: Callable[[str], Path]
) -> None:
    # The server refuses such stops; the runner holds the same line should one race in.
    runner.load(
        write_script(ANNOUNCES_THEN_SLEEPS),
        init_kwargs={"subarray_id": 1},
        subarray_id=1,
        abort={"fqdn_template": "tango://127.0.0.1:1/nowhere/{subarray_id}#dbase=no", "timeout": 1},
    )
    runner.state("CREATED")
    runner.stop(abort=True)
    stopped = runner.state("STOPPED")
    assert stopped["abort"] == {
        "sent": False,
        "message": "Abort not sent: the script was not executing when the stop arrived",
    }


def test_unreadable_commands_are_ignored(
    runner: Runner, write_script: Callable[[str], Path]
) -> None:
    runner.load(
        write_script("from oet import scripting\n\ndef run():\n    scripting.publish('x')\n")
    )
    runner.state("CREATED")
    runner.send_raw(b"this is not json\n")
    runner.send_raw(b"[1, 2, 3]\n")
    runner.send({"cmd": "dance"})
    runner.start()
    runner.state("COMPLETED")


def test_a_runner_not_given_a_load_command_first_exits_with_a_message(runner: Runner) -> None:
    runner.send({"cmd": "start", "args": [], "kwargs": {}})
    assert runner.wait_exit() == 2
    wait_for(lambda: "expected a load command first" in runner.stderr, 5, "the complaint")


def test_a_stop_while_a_large_event_is_being_sent_leaves_every_report_intact(
    write_script: Callable[[str], Path],
) -> None:
    path = write_script(
        """
        import time
        from oet import scripting

        def run():
            scripting.publish("test.running")
            scripting.publish("test.large", blob="x" * 1_000_000)
            time.sleep(3600)
        """
    )
    runner = Runner(read=False)  # a busy supervisor: the runner's stdout pipe fills up
    try:
        runner.load(path)
        runner.start()
        stdout = runner.process.stdout
        assert stdout is not None
        line = b""
        while b"test.running" not in line:
            line = stdout.readline()
            assert line, "the runner's stdout closed"
        fd = stdout.fileno()
        capacity = fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)
        wait_for(lambda: unread_bytes(fd) >= capacity, 30, "the runner to fill its stdout pipe")
        runner.stop()  # arrives while the large event is half written
        runner.resume_reading()
        runner.until(lambda r: r.get("state") in ("STOPPED", "FAILED"), 20)
        assert runner.wait_exit() == 0
        unreadable = [r["line"] for r in runner.seen if r["type"] == "unreadable"]
        assert unreadable == [], "a report line was cut short and merged with the next one"
    finally:
        runner.close()


def test_a_script_reading_stdin_cannot_swallow_the_stop_command(
    runner: Runner, write_script: Callable[[str], Path]
) -> None:
    path = write_script(
        """
        import subprocess
        import sys
        import time
        from oet import scripting

        def run():
            child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"])
            scripting.publish("test.input", got=sys.stdin.read())
            scripting.publish("test.child_started", pid=child.pid)
            time.sleep(3600)
        """
    )
    runner.load_and_start(path)
    assert runner.event("test.input")["payload"] == {"got": ""}  # stdin is /dev/null
    runner.event("test.child_started")
    runner.stop()
    runner.state("STOPPED", timeout=5)


REPORTS_SURROUNDINGS = """
    import os
    from oet import scripting

    def init():
        scripting.publish(
            "test.surroundings", cwd=os.getcwd(), marker=os.environ.get("OET_TEST_MARKER")
        )

    def run():
        pass
"""


def test_a_load_command_with_an_environment_and_cwd_replaces_the_runners_own(
    runner: Runner, write_script: Callable[[str], Path], tmp_path: Path
) -> None:
    path = write_script(REPORTS_SURROUNDINGS)
    runner.load(path, environ={"OET_TEST_MARKER": "from the load"}, cwd=str(tmp_path))
    surroundings = runner.event("test.surroundings")["payload"]
    assert surroundings == {"cwd": str(tmp_path), "marker": "from the load"}


def test_a_load_command_without_them_keeps_the_runners_own(
    runner: Runner, write_script: Callable[[str], Path]
) -> None:
    path = write_script(REPORTS_SURROUNDINGS)
    runner.load(path)  # as a runner started on its own (one per Pod) is loaded
    surroundings = runner.event("test.surroundings")["payload"]
    assert surroundings == {"cwd": str(REPO), "marker": None}
