"""Ctrl-C on the way to the safe state: a block no SIGINT or SIGTERM cuts short.

The lowest layer of aeqlab, so that every path that puts sources in their safe state
(the run engine's exit, a backend's way out, a start-up that failed) can shield
itself. Handlers are installed only in the main thread (elsewhere the block runs as
it is), and the ones found are always put back.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def put_back(signum: int, previous) -> None:
    """Reinstall the handler ``signal.signal`` returned when ours went in.

    ``None`` means it was installed by C code, not from Python, and cannot be put back;
    the default action is then the closest (restoring ``None`` would raise instead).
    """
    signal.signal(signum, signal.SIG_DFL if previous is None else previous)


def can_install() -> bool:
    """Signal handlers can be changed here (the main thread only)."""
    return threading.current_thread() is threading.main_thread()


def going_safe(notify: Callable[[str], None] | None):
    def handler(signum: int, frame) -> None:  # noqa: ARG001 - signal handler signature
        if notify is not None:
            notify("already stopping: every source is being put in its safe state")

    return handler


@contextmanager
def shielded(notify: Callable[[str], None] | None = None, enabled: bool = True) -> Iterator[None]:
    """Ctrl-C and SIGTERM only print a note within the block (the safe state and the journal's last words)."""
    if not (enabled and can_install()):
        yield
        return
    handler = going_safe(notify)
    previous_int = signal.signal(signal.SIGINT, handler)
    previous_term = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        put_back(signal.SIGINT, previous_int)
        put_back(signal.SIGTERM, previous_term)


def hand_back_at_exit() -> None:
    """For a process's entry point, once the command is over: a late Ctrl-C ends the process quietly.

    The command has put every source in its safe state and recorded everything by then;
    a press that lands while the interpreter shuts down would otherwise raise
    KeyboardInterrupt inside that shutdown and print a traceback. Output is flushed
    first, then SIGINT gets the system's default action (the process ends, status −2).
    It changes process state and never puts it back, so it does nothing where the process
    goes on after the command: an interactive interpreter or an IPython kernel (a notebook
    running ``%run -m aeqlab`` keeps its own Ctrl-C), or a thread other than the main one.
    """
    import sys

    if hasattr(sys, "ps1") or sys.flags.interactive or "IPython" in sys.modules:
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):  # closed or replaced streams: nothing to flush
            pass
    if can_install():
        signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_then_hand_back(command: Callable[[], None]) -> None:
    """Run a process's entry point ``command``, then :func:`hand_back_at_exit`, whatever it raised.

    A press that lands after ``command`` is over but before SIGINT is handed back raises
    KeyboardInterrupt on the way into the hand-back: it is ignored (the command has finished,
    its exit status stands) and the hand-back is tried again. The loop lives here, inside the
    ``finally`` of this frame, so it covers every press after the command started.
    """
    try:
        command()
    finally:
        while True:
            try:
                hand_back_at_exit()
                break
            except KeyboardInterrupt:
                continue
