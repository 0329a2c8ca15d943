"""Boolean options written ``--name=value``, as the 2021 ``oet`` took them.

The user docs' CLI accepts every option as ``--name=value``, booleans too
(``oet stop --run_abort=False``), while click only accepts a bare flag
(``--run_abort``) or its negation (``--no-run_abort``). :class:`OetCommand`
rewrites ``--flag=value`` into the matching bare form before click parses the
line, so both spellings work and click still does everything else. Script
arguments (``--verbose=true`` after ``oet create``) are untouched: only the
command's own boolean options are rewritten.
"""

from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from oet.cli.session import DEFAULT_REST_URI

TRUE = frozenset({"true", "1", "yes", "y", "on", "t"})
FALSE = frozenset({"false", "0", "no", "n", "off", "f"})


def _boolean_flags(params: list[Any]) -> dict[str, tuple[Any, bool]]:
    """Every spelling of the boolean flags: name -> (option, whether it means True)."""
    spellings: dict[str, tuple[Any, bool]] = {}
    for param in params:
        if getattr(param, "is_flag", False) and getattr(param, "is_bool_flag", False):
            spellings.update((name, (param, True)) for name in param.opts)
            spellings.update((name, (param, False)) for name in param.secondary_opts)
    return spellings


def _joined(args: list[str], flags: dict[str, tuple[Any, bool]]) -> list[str]:
    """``--flag VALUE`` as ``--flag=VALUE`` where VALUE reads as true or false."""
    joined: list[str] = []
    words = iter(args)
    for word in words:
        if word == "--":
            return [*joined, word, *words]
        if word in flags and (following := next(words, None)) is not None:
            if following.strip().lower() in TRUE | FALSE:
                joined.append(f"{word}={following}")
                continue
            joined.extend((word, following))
            continue
        joined.append(word)
    return joined


def rewrite_boolean_values(
    args: list[str], params: list[Any], separate_values: bool = False
) -> list[str]:
    """``args`` with each ``--flag=value`` of a boolean option turned into its bare form.

    ``--run_abort=False`` becomes ``--no-run_abort``; ``--wait=1`` becomes
    ``--wait``; ``--wait=0`` (a flag without a negation) is dropped, which
    leaves the default of False. With ``separate_values`` (for commands that
    take no arguments of their own), ``--run_abort False`` is read the same
    way. Raises typer.BadParameter for a value that is neither true nor
    false. Words after ``--`` are left alone.
    """
    flags = _boolean_flags(params)
    if separate_values:
        args = _joined(args, flags)
    rewritten: list[str] = []
    for position, word in enumerate(args):
        if word == "--":
            return rewritten + args[position:]
        name, equals, value = word.partition("=")
        if not equals or name not in flags:
            rewritten.append(word)
            continue
        option, means_true = flags[name]
        if value.strip().lower() in TRUE:
            wanted = means_true
        elif value.strip().lower() in FALSE:
            wanted = not means_true
        else:
            raise typer.BadParameter(
                f"{value!r} is not true or false (use True/False, 1/0, yes/no)",
                param_hint=f"'{name}'",
            )
        if wanted:
            rewritten.append(option.opts[0])
        elif option.secondary_opts:
            rewritten.append(option.secondary_opts[0])
    return rewritten


class OetCommand(TyperCommand):
    """A typer command that also reads its boolean options as ``--name=value``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        """Rewrite ``--flag=value`` words, then parse as click does."""
        try:
            takes_words = self.allow_extra_args or any(
                getattr(p, "param_type_name", "") == "argument" for p in self.params
            )
            rewritten = rewrite_boolean_values(args, list(self.params), not takes_words)
        except typer.BadParameter as exc:
            exc.ctx = ctx
            raise
        result: list[str] = super().parse_args(ctx, rewritten)
        return result


# -- the options several commands share ---------------------------------------------

ServerUrl = Annotated[
    str | None,
    typer.Option(
        "--server-url",
        "--server_url",
        envvar="OET_REST_URI",
        show_default=False,
        help=(
            "The REST server: http://HOST:5000, .../api/v1.0 or .../api/v1.0/procedures."
            f" Default: rest_uri in oet.ini, else {DEFAULT_REST_URI}"
        ),
    ),
]


def pid_option(help: str) -> Any:
    """The ``--pid`` option with ``help``."""
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
