"""The console entry point: Ctrl-C at any moment, from the first import on, ends with exit 130 and one line.

It imports nothing heavy itself: the command line (typer, rich, numpy, the drivers)
is imported inside the ``try``, so a Ctrl-C while it loads is caught like one during
a command.
"""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from aeqlab.cli import main as cli_main

        cli_main()
    except KeyboardInterrupt:
        try:
            sys.stderr.write("interrupted\n")
            sys.stderr.flush()
        finally:
            sys.exit(130)
    finally:  # a press during the interpreter's own shutdown: no traceback (inline, as in aeqlab/cli/__main__.py:
        # a press can land on the entry of any function called here, so a shared helper would not do)
        while True:
            try:
                from aeqlab.signals import hand_back_at_exit

                hand_back_at_exit()
                break
            except KeyboardInterrupt:  # a press before SIGINT was handed back: the command is over, go on
                continue
