"""``python -m oet.runner.zygote FD``: forks ready-made runners for the embedded server.

A runner started as a fresh interpreter holds about 8.5 MB of memory of its
own (PSS) while it waits. Forked from one parent that has already imported
the runner, it shares those pages with its parent and its siblings until it
writes to them, and costs a few MB instead. This process is that parent: it
imports what a runner imports before its load command, then waits on the
control socket ``FD`` (a Unix ``SOCK_SEQPACKET`` socket shared with the
server). Each message carries three descriptors — the new runner's stdin,
stdout and stderr, pipes whose other ends the server holds — and is answered
with the new runner's process ID (or ``error: ...``).

Each runner is forked twice (fork, fork, the middle process exits at once),
so it is re-parented to the server, which made itself a child subreaper
before it started this process: the server is the runner's parent, as if it
had started the runner itself, and sees its exit code or signal.

Nothing of one procedure can reach the next: this process never loads a
script, so every runner starts from the state it had after its imports. It
exits when the server closes its end of the socket (the server is gone).
"""

import gc

gc.disable()  # until the fork: a collection would leave holes that runners' objects fill

import os  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

_REQUEST_SIZE = 64
_SIGINT_AT_START = signal.getsignal(signal.SIGINT)
try:
    _NAME_AT_START = Path("/proc/self/comm").read_text().strip()
except OSError:
    _NAME_AT_START = "python3"


def _become_runner(control: socket.socket, fds: list[int]) -> None:
    """In the forked runner: take the given stdio, look like a fresh runner, run, exit."""
    code = 1
    try:
        signal.signal(signal.SIGINT, _SIGINT_AT_START)  # as a fresh interpreter has it
        from oet.process_tree import name_process

        name_process(_NAME_AT_START)  # not taken for the zygote while it waits to be let go
        control.close()
        gc.enable()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)  # inheritable, as a fresh process's 0, 1 and 2 are
            os.close(fd)
        from oet.runner import __main__ as runner_main
        from oet.runner.channels.stdio import StdioChannel
        from oet.runner.process import run_procedure

        _warm_up()
        # Held until the server has taken this runner in (it writes one newline):
        # only then may it look like a spare, ready to be handed a procedure.
        os.read(0, 1)
        name_process(runner_main.SPARE_NAME)  # as a runner started on its own names itself
        sys.argv = [runner_main.__file__ or "oet-runner"]
        # What ``python -m oet.runner`` runs, without argparse: parsing would write to
        # megabytes of pages shared with the zygote, and a runner has no options here.
        code = run_procedure(StdioChannel.from_process_stdio())
        sys.stderr.flush()
    except KeyboardInterrupt:  # die of the signal, as an interpreter does
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    except SystemExit as exc:  # the exit code an interpreter would give
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # as an interpreter would: the traceback reaches the server's log
        traceback.print_exc()
        sys.stderr.flush()
    finally:
        os._exit(code)


def _warm_up() -> None:
    """Copy now, in the spare, pages every load writes to, so a create does not wait for it.

    A forked runner copies each shared page it first writes to. Starting a
    thread, encoding and decoding JSON and compiling a script are what every
    load does; done once here, nothing a script can see is left (no thread
    remains, and ``_thread`` leaves no name counter behind).
    """
    import _thread
    import json

    done = _thread.allocate_lock()
    done.acquire()
    _thread.start_new_thread(done.release, ())
    done.acquire()
    json.loads(json.dumps({"cmd": "load", "environ": dict(os.environ), "init": {"kwargs": {}}}))
    compile("def init():\n    pass\n", "<oet-warm-up>", "exec")


def _fork_runner(control: socket.socket, fds: list[int]) -> int:
    """Fork a runner that is re-parented to the server; return its process ID."""
    read, write = os.pipe()
    middle = os.fork()
    if middle == 0:
        code = 1
        try:
            os.close(read)
            runner = os.fork()
            if runner == 0:
                os.close(write)
                _become_runner(control, fds)
            os.write(write, str(runner).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    try:
        os.waitpid(middle, 0)  # once it has gone, the runner belongs to the server
        answer = os.read(read, _REQUEST_SIZE)
    finally:
        os.close(read)
    if not answer:
        raise OSError("the runner could not be forked")
    return int(answer)


def serve(control: socket.socket) -> int:
    """Answer fork requests until the server closes the socket; return the exit code."""
    while True:
        message, fds, _flags, _address = socket.recv_fds(control, _REQUEST_SIZE, 3)
        if not message:
            return 0
        try:
            if len(fds) != 3:
                raise OSError(f"a fork request needs 3 descriptors, it carried {len(fds)}")
            answer = str(_fork_runner(control, fds))
        except OSError as exc:
            answer = f"error: {exc}"
        finally:
            for fd in fds:
                os.close(fd)
        control.send(answer.encode())


def main(argv: list[str] | None = None) -> int:
    """Import the runner, say ``ready`` on the control socket, then serve fork requests."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        print("usage: python -m oet.runner.zygote CONTROL_FD", file=sys.stderr)
        return 2
    # A Ctrl-C in the server's terminal reaches its whole process group: the server
    # shuts down and closes the zygote itself. Runners get the usual handler back.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    control = socket.socket(fileno=int(args[0]))
    # What a runner imports before its load command (oet.runner.process imports pubsub there).
    import pubsub.pub  # noqa: F401

    import oet.runner.__main__
    import oet.runner.channels.stdio
    import oet.runner.process  # noqa: F401
    from oet.process_tree import name_process

    name_process("oet-zygote")
    gc.freeze()  # the runners' collector never writes to these objects: their pages stay shared
    try:
        control.send(b"ready")
        return serve(control)
    except (BrokenPipeError, ConnectionError):
        return 0


if __name__ == "__main__":
    sys.exit(main())
