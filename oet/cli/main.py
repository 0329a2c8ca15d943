"""The ``oet`` command: the REST Client of the user docs.

Each command is one or two calls on :class:`~oet.cli.client.ProcedureClient`
and prints what the docs show. Failures are mapped to one ``Error: ...`` line
on standard error and exit code 1 in one place, :func:`_session`; nothing a
user can provoke ends in a traceback.

The HTTP transport can be injected through the root context's ``obj``
(``CliRunner().invoke(app, [...], obj=httpx.MockTransport(...))``), so the
commands can be exercised without a server.
"""

import contextlib
from collections.abc import Iterator
from typing import Annotated, Any, NoReturn

import httpx
import pydantic
import typer

from oet.cli.arguments import parse_script_args
from oet.cli.client import NoProcedure, ProcedureClient, StreamEvent
from oet.cli.formatting import describe as describe_text
from oet.cli.formatting import event_lines, procedure_table
from oet.cli.listening import follow
from oet.config import Settings
from oet.domain import OETError, ProcedureInput

DEFAULT_REST_URI = "http://oet-rest:5000/api/v1.0/procedures"
_TIMEOUT = httpx.Timeout(60.0, connect=5.0)  # a stop may wait for the script and the abort
_EXTRA_ARGS = {"allow_extra_args": True, "ignore_unknown_options": True}

app = typer.Typer(
    name="oet",
    help=(
        "Observation Execution Tool client: load, start, stop and follow telescope"
        " procedures on an OET REST server."
    ),
    epilog=(
        "The server is --server-url, else $OET_REST_URI, else rest_uri in oet.ini,"
        f" else {DEFAULT_REST_URI}."
    ),
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

ServerUrl = Annotated[
    str | None,
    typer.Option(
        "--server-url",
        envvar="OET_REST_URI",
        show_default=False,
        help=(
            "URL of the REST server's procedures collection. Default: rest_uri in"
            f" oet.ini, else {DEFAULT_REST_URI}"
        ),
    ),
]


def _pid_option(help: str) -> Any:
    return typer.Option("--pid", help=help, show_default=False)


ScriptArgs = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="ARGS",
        help=(
            "Arguments for the script: words are positional, --key=value are keyword"
            " arguments, --flag means flag=True. Python literals keep their type"
            " (--count=3 is an int, --dishes=[1,2] a list); other values are strings."
        ),
        show_default=False,
    ),
]


@contextlib.contextmanager
def _session(ctx: typer.Context, server_url: str | None) -> Iterator[ProcedureClient]:
    """A client for the chosen server; turns every failure into one line and exit 1."""
    try:
        url = server_url or Settings().rest_uri
        transport = ctx.obj if isinstance(ctx.obj, httpx.BaseTransport) else None
        with httpx.Client(transport=transport, timeout=_TIMEOUT) as http:
            yield ProcedureClient(http, url)
    except OETError as exc:
        _fail(str(exc))
    except pydantic.ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        _fail(f"OET configuration is invalid: {where}: {problem['msg']}")
    except (httpx.HTTPError, httpx.InvalidURL) as exc:  # anything the client did not map
        _fail(f"{type(exc).__name__}: {exc}")


def _fail(message: str) -> NoReturn:
    typer.echo(f"Error: {' '.join(message.split())}", err=True)
    raise typer.Exit(1)


def _newest(client: ProcedureClient) -> int:
    procedures = client.list()
    if not procedures:
        raise NoProcedure("There are no procedures: create one with 'oet create'")
    return procedures[-1].id


@app.callback(invoke_without_command=True)
def _root(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())


@app.command(context_settings=_EXTRA_ARGS)
def create(
    ctx: typer.Context,
    script_uri: Annotated[
        str,
        typer.Argument(
            metavar="SCRIPT_URI",
            help="URI of the script to load, e.g. file:///scripts/observe.py",
            show_default=False,
        ),
    ],
    script_args: ScriptArgs = None,
    server_url: ServerUrl = None,
) -> None:
    """Prepare a new procedure: load a script and call its init().

    ARGS are passed to init(), with subarray_id=1 unless --subarray_id is
    given. The procedure is then ready to start. OET keeps the 10 newest
    procedures: creating an 11th drops the oldest finished one.
    """
    given = parse_script_args(script_args or [])
    init = ProcedureInput(given.args, {"subarray_id": 1, **given.kwargs})
    with _session(ctx, server_url) as client:
        procedure = client.create(script_uri, init)
        typer.echo(procedure_table([procedure]))
        if procedure.state == "FAILED":
            _fail(
                f"Procedure {procedure.id} failed while loading: {procedure.reason};"
                f" see 'oet describe --pid={procedure.id}'"
            )


@app.command("list")
def list_procedures(
    ctx: typer.Context,
    pid: Annotated[int | None, _pid_option("ID of the one procedure to list.")] = None,
    server_url: ServerUrl = None,
) -> None:
    """List procedures: the 10 newest, or only the one given by --pid."""
    with _session(ctx, server_url) as client:
        procedures = client.list() if pid is None else [client.get(pid)]
        typer.echo(procedure_table(procedures))


@app.command(context_settings=_EXTRA_ARGS)
def start(
    ctx: typer.Context,
    script_args: ScriptArgs = None,
    pid: Annotated[
        int | None, _pid_option("ID of the procedure to start. Default: the last one created.")
    ] = None,
    server_url: ServerUrl = None,
) -> None:
    """Start a procedure executing: call its script's run().

    ARGS are passed to run(); without any, run() gets those given at creation
    (none by default). Only one procedure can be executing at any time.
    """
    run = parse_script_args(script_args) if script_args else None
    with _session(ctx, server_url) as client:
        procedure = client.start(_newest(client) if pid is None else pid, run)
        typer.echo(procedure_table([procedure]))


def _running(client: ProcedureClient) -> int:
    running = [p for p in client.list() if p.state == "RUNNING"]
    if not running:
        raise NoProcedure("No procedure is running: there is nothing to stop")
    return running[-1].id


@app.command()
def stop(
    ctx: typer.Context,
    pid: Annotated[
        int | None, _pid_option("ID of the procedure to stop. Default: the one that is running.")
    ] = None,
    run_abort: Annotated[
        bool,
        typer.Option(
            "--run_abort/--no-run_abort",
            "--run-abort/--no-run-abort",
            help="Also send Abort to the subarray the procedure was created for.",
        ),
    ] = True,
    server_url: ServerUrl = None,
) -> None:
    """Stop procedure execution, aborting the subarray by default.

    The script is interrupted; with --run_abort (the default) OET then sends
    Abort to the subarray the procedure was created for. Prints what the
    server did, including whether the Abort reached the subarray.
    """
    with _session(ctx, server_url) as client:
        typer.echo(client.stop(_running(client) if pid is None else pid, run_abort))


@app.command()
def describe(
    ctx: typer.Context,
    pid: Annotated[
        int | None, _pid_option("ID of the procedure to describe. Default: the last one created.")
    ] = None,
    server_url: ServerUrl = None,
) -> None:
    """Investigate a procedure: arguments, state history, stack trace.

    Shows the script, the arguments given to init() and run(), when the
    procedure entered each state and, if it failed, the reason and stack trace.
    """
    with _session(ctx, server_url) as client:
        procedure = client.get(_newest(client) if pid is None else pid)
        typer.echo(describe_text(procedure))


@app.command()
def listen(
    ctx: typer.Context,
    topic: Annotated[
        list[str] | None,
        typer.Option(
            "--topic",
            metavar="PREFIX",
            help="Show only events whose topic starts with PREFIX (repeatable).",
            show_default=False,
        ),
    ] = None,
    pid: Annotated[int | None, _pid_option("Show only events about this procedure.")] = None,
    server_url: ServerUrl = None,
) -> None:
    """Follow real-time events of OET and its scripts until Ctrl-C.

    Each event is printed as an 'event:' line (its topic) and a 'data:' line
    (JSON with id, topic, time, procedure_id, source and payload). If the
    server restarts, listen reconnects and carries on without missing events,
    for up to listen_reconnect seconds (OET_LISTEN_RECONNECT, default 60).
    """
    prefixes = tuple(topic or ())

    def wanted(event: StreamEvent) -> bool:
        if prefixes and not event.topic.startswith(prefixes):
            return False
        return pid is None or event.procedure_id == pid

    with _session(ctx, server_url) as client, contextlib.suppress(KeyboardInterrupt):
        follow(
            client,
            wanted,
            show=lambda event: typer.echo(event_lines(event)),
            notice=lambda message: typer.echo(message, err=True),
            reconnect_for=Settings().listen_reconnect,
        )


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``oet`` console script.

    Usage mistakes (an unknown command, ``--pid=two``) are reported like every
    other failure: one ``Error:`` line on stderr, here with exit code 2.
    """
    try:
        code = app(argv, prog_name="oet", standalone_mode=False)
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:
        # typer's usage errors are click exceptions; only their interface is public.
        format_message = getattr(exc, "format_message", None)
        if format_message is None or not isinstance(getattr(exc, "exit_code", None), int):
            raise
        command = getattr(getattr(exc, "ctx", None), "command_path", None) or "oet"
        typer.echo(f"Error: {format_message()} (see '{command} --help')", err=True)
        code = exc.exit_code  # type: ignore[attr-defined]
    raise SystemExit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
