"""The shared Typer application and the CLI's error handling.

Command modules (``aeqlab.cli``, and those it imports) register their commands on
:data:`app`. Errors are one line on stderr; exit codes: 2 bad input, 1 runtime
failure, 130 interrupted.
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

from aeqlab.errors import AeqlabError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Train physical systems on a lab bench with Agnostic Equilibrium Propagation.",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class Exited(typer.Exit):
    """An exit whose reason a command already printed (the entry point adds nothing to it)."""

    raised = False  # since the entry point last looked

    def __init__(self, code: int = 0) -> None:
        Exited.raised = True
        super().__init__(code)


def fail(exc: AeqlabError) -> None:
    """Print an error (one line per problem) and exit with its code."""
    lines = exc.message.splitlines() if "\n" in exc.message else [exc.one_line()]
    for line in lines:
        err.print(f"[red]error:[/red] {escape(line)}", soft_wrap=True, markup=True)
    raise Exited(exc.exit_code)


def version_callback(value: bool) -> None:
    if value:
        from aeqlab import __version__

        typer.echo(f"aeqlab {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", "-V", callback=version_callback, is_eager=True, help="show the version and exit"
    ),
) -> None:
    """Train physical systems on a lab bench with Agnostic Equilibrium Propagation."""


def quiet_flag_types(command) -> None:
    """No ``<bool>`` beside a flag in ``--help`` (a flag takes no value); applied to every command once."""
    for param in getattr(command, "params", []):
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    help_option = command.get_help_option

    def quiet_help_option(ctx):
        option = help_option(ctx)
        if option is not None and option.metavar is None:
            option.metavar = ""
        return option

    command.get_help_option = quiet_help_option
    for sub in getattr(command, "commands", {}).values():
        quiet_flag_types(sub)
