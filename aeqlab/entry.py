"""The console entry point: Ctrl-C at any moment, from the first import on, ends with exit 130 and one line.

It imports nothing heavy itself: the command line (typer, rich, numpy, the drivers)
is imported inside the ``try``, so a Ctrl-C while it loads is caught like one during
a command.
"""

from __future__ import annotations

import sys


def _command() -> None:
    try:
        from aeqlab.cli import main as cli_main

        cli_main()
    except KeyboardInterrupt:
        try:
            sys.stderr.write("interrupted\n")
            sys.stderr.flush()
        finally:
            sys.exit(130)


def main() -> None:
    from aeqlab.signals import run_then_hand_back  # signal and threading only

    run_then_hand_back(_command)  # a press during the interpreter's own shutdown: no traceback
