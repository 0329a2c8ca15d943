"""The ``oet`` command: the REST Client of the user docs.

Each command is one or two calls on :class:`~oet.cli.client.ProcedureClient`
and prints what the docs show. Every option also reads as ``--name=value``,
booleans included (:mod:`oet.cli.options`); failures become one line and a
non-zero exit in :func:`oet.cli.session.session`.

The HTTP transport can be injected through the root context's ``obj``
(``CliRunner().invoke(app, [...], obj=httpx.MockTransport(...))``), so the
commands can be exercised without a server.
"""

import contextlib
from typing import Annotated

import typer

from oet.cli.arguments import parse_script_args
from oet.cli.client import StreamEvent
from oet.cli.formatting import describe as describe_text
from oet.cli.formatting import event_line, event_lines, procedure_table
from oet.cli.listening import follow
from oet.cli.options import OetCommand, ScriptArgs, ServerUrl, pid_option
from oet.cli.session import DEFAULT_REST_URI, fail, newest, running, session
from oet.cli.waiting import final_state, follow_procedure, outcome
from oet.config import Settings
from oet.domain import ProcedureInput

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


@app.callback(invoke_without_command=True)
def _root(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())


@app.command(cls=OetCommand, context_settings=_EXTRA_ARGS)
def create(
    ctx: typer.Context,
    script_uri: Annotated[
        str | None,
        typer.Argument(
            metavar="SCRIPT_URI",
            help="URI of the script to load, e.g. file:///scripts/observe.py",
            show_default=False,
        ),
    ] = None,
    script_args: ScriptArgs = None,
    script_uri_option: Annotated[
        str | None,
        typer.Option(
            "--script-uri",
            "--script_uri",
            metavar="SCRIPT_URI",
            help="The script to load, given as an option instead of first.",
            show_default=False,
        ),
    ] = None,
    server_url: ServerUrl = None,
) -> None:
    """Prepare a new procedure: load a script and call its init().

    ARGS are passed to init(), with subarray_id=1 unless --subarray_id is
    given. The procedure is then ready to start. OET keeps the 10 newest
    procedures: creating an 11th drops the oldest finished one.
    """
    words = list(script_args or [])
    if script_uri_option is not None:
        words = [script_uri, *words] if script_uri is not None else words
        script_uri = script_uri_option
    if script_uri is None:
        ctx.fail("Missing argument 'SCRIPT_URI'.")
    given = parse_script_args(words)
    init = ProcedureInput(given.args, {"subarray_id": 1, **given.kwargs})
    with session(ctx, server_url) as client:
        procedure = client.create(script_uri, init)
        typer.echo(procedure_table([procedure]))
        if procedure.state == "FAILED":
            fail(
                f"Procedure {procedure.id} failed while loading: {procedure.reason};"
                f" see 'oet describe --pid={procedure.id}'"
            )


@app.command("list", cls=OetCommand)
def list_procedures(
    ctx: typer.Context,
    pid: Annotated[int | None, pid_option("ID of the one procedure to list.")] = None,
    server_url: ServerUrl = None,
) -> None:
    """List procedures: the 10 newest, or only the one given by --pid."""
    with session(ctx, server_url) as client:
        procedures = client.list() if pid is None else [client.get(pid)]
        typer.echo(procedure_table(procedures))


@app.command(cls=OetCommand, context_settings=_EXTRA_ARGS)
def start(
    ctx: typer.Context,
    script_args: ScriptArgs = None,
    pid: Annotated[
        int | None, pid_option("ID of the procedure to start. Default: the last one created.")
    ] = None,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help=(
                "Follow the procedure's events until it ends; exit 0 if it COMPLETED,"
                " 1 if it FAILED, 3 if it was STOPPED."
            ),
        ),
    ] = False,
    server_url: ServerUrl = None,
) -> None:
    """Start a procedure executing: call its script's run().

    ARGS are passed to run(); without any, run() gets those given at creation
    (none by default). --pid, --wait and --server-url are oet's own options;
    every other --key=value goes to run(). Only one procedure can be executing
    at any time. With --wait, follow it until it ends and exit with how it
    ended.
    """
    run = parse_script_args(script_args) if script_args else None
    with session(ctx, server_url) as client:
        target = newest(client) if pid is None else pid
        if not wait:
            typer.echo(procedure_table([client.start(target, run)]))
            return
        try:
            with client.event_stream() as events:  # connected first: no event is missed
                typer.echo(procedure_table([client.start(target, run)]))
                follow_procedure(events, target, lambda event: typer.echo(event_line(event)))
        except KeyboardInterrupt:
            fail(f"Stopped waiting; procedure {target} goes on (oet stop --pid={target})", 130)
        code, problem = outcome(final_state(client, target))
        if problem is not None:
            fail(problem, code)


@app.command(cls=OetCommand)
def stop(
    ctx: typer.Context,
    pid: Annotated[
        int | None, pid_option("ID of the procedure to stop. Default: the one that is running.")
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
    """Stop a running procedure's script, aborting the subarray by default.

    The script is interrupted; with --run_abort (the default; also
    --run_abort=True/False) OET then sends Abort to the subarray the procedure
    was created for. Prints what the server did, including whether the Abort
    reached the subarray. A procedure that is not executing (CREATED, or
    ended) cannot be stopped: nothing is sent and the command fails.
    """
    with session(ctx, server_url) as client:
        typer.echo(client.stop(running(client) if pid is None else pid, run_abort))


@app.command(cls=OetCommand)
def discard(
    ctx: typer.Context,
    pid: Annotated[int, pid_option("ID of the procedure to discard (required).")],
    server_url: ServerUrl = None,
) -> None:
    """Discard a procedure that is not executing: a CREATED or ended one.

    The procedure is forgotten and its idle runner ends. Nothing is ever
    aborted. A running procedure must be stopped first.
    """
    with session(ctx, server_url) as client:
        procedure = client.discard(pid)
        typer.echo(f"Discarded procedure {procedure.id} ({procedure.state}); nothing was aborted")


@app.command(cls=OetCommand)
def describe(
    ctx: typer.Context,
    pid: Annotated[
        int | None, pid_option("ID of the procedure to describe. Default: the last one created.")
    ] = None,
    server_url: ServerUrl = None,
) -> None:
    """Investigate a procedure: arguments, state history, stack trace.

    Shows the script, the arguments given to init() and run(), when the
    procedure entered each state and, if it failed, the reason and stack trace.
    """
    with session(ctx, server_url) as client:
        procedure = client.get(newest(client) if pid is None else pid)
        typer.echo(describe_text(procedure))


@app.command(cls=OetCommand)
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
    pid: Annotated[int | None, pid_option("Show only events about this procedure.")] = None,
    raw: Annotated[
        bool,
        typer.Option(
            "--raw", help="Print each event's Server-Sent Events lines (id, event, data) as sent."
        ),
    ] = False,
    server_url: ServerUrl = None,
) -> None:
    """Follow real-time events of OET and its scripts until Ctrl-C.

    Each event is one line: local time, topic, procedure ID and the message's
    fields. With --raw, its 'id:', 'event:' and 'data:' lines (JSON) instead.
    If the server restarts, listen reconnects and carries on without missing
    events, for up to listen_reconnect seconds (OET_LISTEN_RECONNECT, default 60).
    """
    prefixes = tuple(topic or ())

    def wanted(event: StreamEvent) -> bool:
        if prefixes and not event.topic.startswith(prefixes):
            return False
        return pid is None or event.procedure_id == pid

    with session(ctx, server_url) as client, contextlib.suppress(KeyboardInterrupt):
        follow(
            client,
            wanted,
            show=lambda event: typer.echo(event_lines(event) if raw else event_line(event)),
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
