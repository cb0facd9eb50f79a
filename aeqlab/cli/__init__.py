"""The command line: a thin shell over the API.

Errors are one line; exit codes: 2 bad input, 1 runtime failure, 130 interrupted.
"""

from __future__ import annotations

import os
import sys

import typer

from aeqlab.cli import (  # noqa: F401  (each module registers its commands on the app)
    advise,
    authoring,
    hardware,
    runs,
    sweep,
    train,
    watch,
)
from aeqlab.cli.app import Exited, app, err, quiet_flag_types
from aeqlab.errors import AeqlabError


def main(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors, never a traceback (set AEQLAB_DEBUG=1 to see one)."""
    from threadpoolctl import threadpool_limits

    Exited.raised = False
    try:
        # the twin's linear algebra is small: BLAS threads only contend (measured 2x slower on 2 cores)
        with threadpool_limits(limits=1, user_api="blas"):
            command = typer.main.get_command(app)
            quiet_flag_types(command)
            code = command.main(args=argv, prog_name="aeqlab", standalone_mode=False)
        if code == 130 and not Exited.raised:  # Typer turns a Ctrl-C in a command into a silent exit 130
            err.print("interrupted")
        sys.exit(code if isinstance(code, int) else 0)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except AeqlabError as exc:  # raised outside a command body
        err.print(f"error: {exc.one_line()}", markup=False)
        sys.exit(exc.exit_code)
    except Exception as exc:  # noqa: BLE001 - the last line of defence against tracebacks
        # Typer's command-line errors (a click-style UsageError and friends), recognised by
        # their interface rather than by class, as Typer may vendor its own copy of click
        name = type(exc).__name__
        if name == "NoArgsIsHelpError":  # bare 'aeqlab': the help was printed, nothing went wrong
            sys.exit(0)
        if name == "Abort":
            err.print("interrupted")
            sys.exit(130)
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            ctx = getattr(exc, "ctx", None)
            where = f"aeqlab {ctx.info_name}" if ctx is not None and ctx.info_name != "aeqlab" else "aeqlab"
            err.print(f"error: {where}: {exc.format_message()} (see --help)", markup=False)
            sys.exit(2)
        if os.environ.get("AEQLAB_DEBUG"):
            raise
        err.print(
            f"internal error: {exc.__class__.__name__}: {exc} (rerun with AEQLAB_DEBUG=1 for details)", markup=False
        )
        sys.exit(1)
