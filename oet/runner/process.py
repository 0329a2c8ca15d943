"""The life of one runner: load, init, wait for start, run, report.

Stopping works by raising :class:`StopRequested` in the script's thread (the
main thread), from a SIGTERM handler. A signal interrupts ``time.sleep`` and
pure-Python busy loops alike, so a stop takes effect within milliseconds. A
script that swallows the exception is killed by the supervisor after a grace
period; that path does not depend on anything here.

The runner is the subreaper of everything its script starts
(:mod:`oet.process_tree`): when the procedure ends — completed, failed or
stopped — every process the script left behind is killed before the final
state is reported. The script itself is loaded only from the real path of a
file inside the allowed script directories, checked here again.
"""

import contextlib
import importlib.util
import os
import queue
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

from oet import scripting
from oet.domain.events import clashes
from oet.process_tree import become_subreaper, kill_descendants, name_process
from oet.runner.abort import send_abort
from oet.runner.channels import Channel
from oet.script_files import allowed_script


class StopRequested(BaseException):
    """Raised inside the script when an operator stops the procedure.

    A BaseException, so that a script's ``except Exception`` does not swallow it.
    """


_OET = Path(__file__).resolve().parent.parent
_OWN_FILES = (str(_OET / "runner"), str(_OET / "script_files.py"), "<frozen importlib")


def load_script(path: str | Path) -> ModuleType:
    """Import the script at ``path`` as a fresh module."""
    script = Path(path)
    spec = importlib.util.spec_from_file_location(f"oet_script_{script.stem}", script)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} cannot be loaded as a Python script")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(script.parent))  # scripts may import their neighbours
    spec.loader.exec_module(module)
    return module


class _Runner:
    def __init__(self, channel: Channel, load: dict[str, Any]) -> None:
        self.channel = channel
        self.load = load
        self.starts: queue.Queue[dict[str, Any]] = queue.Queue()
        self.stop_requested = threading.Event()
        self.abort_requested = False
        self.interruptible = False
        self.main_thread = threading.main_thread()
        self.warned: set[tuple[str, ...]] = set()
        self.in_script = False  # script code (not a wait of the runner's) is executing
        self.stopped_script = False  # a stop interrupted script code

    # -- reports ----------------------------------------------------------
    def report_state(self, state: str, **extra: Any) -> None:
        self.channel.send({"type": "state", "state": state, "time": time.time(), **extra})

    def report_event(self, topic: str, payload: dict[str, Any], when: float) -> None:
        if (shadowed := clashes(payload)) and (topic, *shadowed) not in self.warned:
            self.warned.add((topic, *shadowed))
            print(
                f"oet runner: event {topic!r} uses {', '.join(shadowed)}, which OET sets on"
                " every event; on the stream the script's value is only under 'payload'",
                file=sys.stderr,
            )
        self.channel.send({"type": "event", "topic": topic, "payload": payload, "time": when})

    def forward_pubsub(self) -> None:
        """Forward every pypubsub message the script sends, as SKA scripts use it."""
        from pubsub import pub

        # An unlikely parameter name, so that a message may carry a ``topic`` field.
        def listener(oet_pubsub_topic: Any = pub.AUTO_TOPIC, **kwargs: Any) -> None:
            self.report_event(oet_pubsub_topic.getName(), kwargs, time.time())

        self._pubsub_listener = listener  # pypubsub holds listeners weakly
        pub.subscribe(listener, pub.ALL_TOPICS)

    # -- commands ---------------------------------------------------------
    def read_commands(self) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # deliver to main only
        while True:
            try:
                command = self.channel.receive()
            except ValueError:
                continue  # an unreadable line is ignored, not fatal
            if command is None:  # supervisor gone: stop, and do not outlive it
                self.request_stop(abort=False)
                time.sleep(self.load.get("stop_grace", 3.0))
                kill_descendants(os.getpid())
                os._exit(3)
            if command.get("cmd") == "start":
                self.starts.put(command)
            elif command.get("cmd") == "stop":
                self.request_stop(abort=bool(command.get("abort")))

    def request_stop(self, abort: bool) -> None:
        self.abort_requested = self.abort_requested or abort
        self.stop_requested.set()
        if self.main_thread.ident is not None:
            signal.pthread_kill(self.main_thread.ident, signal.SIGTERM)

    def on_sigterm(self, signum: int, frame: object) -> None:
        self.stop_requested.set()
        if self.interruptible:
            self.interruptible = False
            raise StopRequested

    # -- the procedure ------------------------------------------------------
    def call(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Call script code so that a stop interrupts it."""
        return self._interruptible(True, fn, args, kwargs)

    def wait(self, fn: Any) -> Any:
        """Call ``fn``, a wait of the runner's own (not script code), interruptibly."""
        return self._interruptible(False, fn, (), {})

    def _interruptible(
        self, script: bool, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """Remembers whether a stop interrupted script code: only then may Abort be sent."""
        self.interruptible = True
        try:
            if self.stop_requested.is_set():
                raise StopRequested
            self.in_script = script
            return fn(*args, **kwargs)
        except StopRequested:
            self.stopped_script = self.in_script
            raise
        finally:
            self.interruptible = False
            self.in_script = False

    def script_path(self) -> Path:
        """The script to load, refused unless it lies inside an allowed directory."""
        dirs = self.load.get("script_dirs")
        if isinstance(dirs, list):
            allowed = [Path(d) for d in dirs]
        else:  # read here, not at import: pydantic costs a runner 20 MB and 0.1 s
            from oet.config import get_settings

            allowed = get_settings().allowed_script_dirs()
        path = str(self.load["script_path"])
        return allowed_script(path, allowed, shown=Path(path).name)

    def stopped(self) -> int:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # nothing may interrupt the abort
        kill_descendants(os.getpid())
        self.channel.send({"type": "interrupted", "time": time.time()})
        abort = None
        if self.abort_requested and not self.stopped_script:
            # Abort is for a subarray this script was commanding; it never ran here.
            message = "Abort not sent: the script was not executing when the stop arrived"
            abort = {"sent": False, "message": message}
        elif self.abort_requested:
            settings = self.load.get("abort", {})
            sent, message = send_abort(
                self.load.get("subarray_id"),
                settings.get("fqdn_template", "ska_mid/tm_subarray_node/{subarray_id}"),
                float(settings.get("timeout", 5.0)),
            )
            abort = {"sent": sent, "message": message}
        self.report_state("STOPPED", abort=abort)
        return 0

    def failed(self, exc: BaseException) -> int:
        kill_descendants(os.getpid())
        self.report_state(
            "FAILED",
            stacktrace="".join(traceback.format_exception(_from_script_frames(exc))),
            reason=f"{type(exc).__name__}: {exc}",
        )
        return 1

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.on_sigterm)
        become_subreaper()
        threading.Thread(target=self.read_commands, name="oet-commands", daemon=True).start()
        scripting.set_sink(self.report_event)
        try:
            self.forward_pubsub()
            module = self.call(load_script, self.script_path())
            init = getattr(module, "init", None)
            if callable(init):
                init_args = self.load.get("init", {})
                self.call(init, *init_args.get("args", []), **init_args.get("kwargs", {}))
            entry = getattr(module, "run", None) or getattr(module, "main", None)
            if not callable(entry):
                raise AttributeError("the script defines neither run() nor main()")
            self.report_state("CREATED")
            start = self.wait(self.starts.get)
            self.call(entry, *start.get("args", []), **start.get("kwargs", {}))
        except StopRequested:
            return self.stopped()
        except SystemExit as exc:
            if exc.code not in (None, 0):
                return self.failed(exc)
        except BaseException as exc:
            return self.failed(exc)
        kill_descendants(os.getpid())
        self.report_state("COMPLETED")
        return 0


def _from_script_frames(exc: BaseException) -> BaseException:
    """``exc`` with the runner's own frames (and importlib's) cut from its traceback's top."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_OWN_FILES):
        tb = tb.tb_next
    return exc.with_traceback(tb)


def adopt_surroundings(load: dict[str, Any]) -> None:
    """Take the environment and working directory the load command gives, if any.

    A spare runner is started before anyone knows what it will run; the
    supervisor sends what it would have started the runner with at load time,
    so a spare started earlier never passes an old environment to a script.
    """
    environ = load.get("environ")
    if isinstance(environ, dict):
        os.environ.clear()
        os.environ.update({str(k): str(v) for k, v in environ.items()})
    cwd = load.get("cwd")
    if isinstance(cwd, str):
        with contextlib.suppress(OSError):  # gone meanwhile: stay where the spare started
            os.chdir(cwd)


def run_procedure(channel: Channel) -> int:
    """Run the procedure described by the channel's first message; return the exit code.

    The process exits hard afterwards, so threads a script left behind cannot
    keep a finished procedure's runner alive.
    """
    import pubsub.pub  # noqa: F401  (imported before the load command: a spare has it ready)

    load = channel.receive()
    if load is None or load.get("cmd") != "load":
        print("oet runner: expected a load command first", file=sys.stderr)
        return 2
    # Nothing of the script has run yet: a runner that dies before saying so may be replaced.
    channel.send({"type": "loaded", "time": time.time()})
    adopt_surroundings(load)
    name_process(f"oet-runner-{load.get('procedure_id', '')}")
    code = _Runner(channel, load).run()
    sys.stderr.flush()
    os._exit(code)
