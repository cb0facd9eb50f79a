"""Deferred interrupts: the first Ctrl-C asks the run to stop, the second stops it at once.

The first SIGINT (or SIGTERM) only sets a flag. The engine looks at it between two
samples, so the instrument action in flight and the sample in flight finish, the
sample is committed, and the sources go to their safe state on the way out. A
second SIGINT raises :class:`KeyboardInterrupt` wherever the process is; the
engine's cleanup still puts every source in its safe state.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class StopRequest:
    """A flag a run polls between samples; set by the first Ctrl-C or by code."""

    def __init__(self) -> None:
        self.reason: str | None = None

    @property
    def requested(self) -> bool:
        return self.reason is not None

    def request(self, reason: str = "interrupted") -> None:
        """Ask the run to stop at its next sample boundary (the first request wins)."""
        if self.reason is None:
            self.reason = reason

    def __call__(self) -> bool:
        return self.requested


@contextmanager
def deferred_interrupts(stop: StopRequest, notify: Callable[[str], None] | None = None) -> Iterator[StopRequest]:
    """Within the block, the first SIGINT/SIGTERM sets ``stop``; a second SIGINT raises at once.

    Outside the main thread (where Python cannot install signal handlers) the block
    runs with the default handlers.

    Parameters
    ----------
    stop
        The flag to set.
    notify
        Called with a short message when the first signal arrives.
    """
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def going_safe(signum: int, frame) -> None:  # noqa: ARG001 - signal handler signature
        if notify is not None:
            notify("already stopping: every source is being put in its safe state")

    def on_signal(signum: int, frame) -> None:  # noqa: ARG001 - signal handler signature
        if stop.requested and signum == signal.SIGINT:
            # from here on Ctrl-C no longer interrupts: the way out puts the sources in their safe state
            signal.signal(signal.SIGINT, going_safe)
            raise KeyboardInterrupt
        stop.request("interrupted")
        if notify is not None:
            notify("stopping after the sample in flight (press Ctrl-C again to stop at once)")

    previous_int = signal.signal(signal.SIGINT, on_signal)
    previous_term = signal.signal(signal.SIGTERM, on_signal)
    try:
        yield stop
    finally:
        # once a stop was asked for, the process is on its way out: a late Ctrl-C must not cut that short
        signal.signal(signal.SIGINT, going_safe if stop.requested else previous_int)
        signal.signal(signal.SIGTERM, previous_term)
