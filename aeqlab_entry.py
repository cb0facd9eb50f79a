"""The console script's first module: a Ctrl-C from here on ends with exit 130 and one line, never a traceback.

Until the command line is imported (typer, rich, numpy: a few hundred milliseconds)
nothing is open, so a Ctrl-C then just says so and exits. From then on the command
line's own handling takes over (a run defers it to the next sample boundary and puts
every source in its safe state).
"""

import os
import signal


def _before_start(signum, frame):  # noqa: ARG001 - signal handler signature
    os.write(2, b"interrupted\n")
    os._exit(130)


_previous = signal.signal(signal.SIGINT, _before_start)


def main() -> None:
    from aeqlab.entry import main as entry

    signal.signal(signal.SIGINT, _previous if callable(_previous) else signal.default_int_handler)
    entry()
