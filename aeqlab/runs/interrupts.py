"""Stopping a run: the first Ctrl-C asks it to stop, the second stops it at once; the way out is shielded.

The first SIGINT (or SIGTERM) only sets a flag. The run engine looks at it between two
samples, so the instrument action in flight and the sample in flight finish, the
sample is committed, and the sources go to their safe state on the way out. A
second SIGINT raises :class:`KeyboardInterrupt` wherever the process is; the run
engine's cleanup still puts every source in its safe state, and while it does,
further Ctrl-C only print a note (:func:`shielded`). Outside the main thread (a Dask
worker's task, a notebook's thread) no handler can be installed: a run there stops
on the caller's :class:`threading.Event` or a callback's request.

The handlers that were installed before are always put back: importing and using
aeqlab changes no process-wide state.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from aeqlab.signals import can_install as _can_install
from aeqlab.signals import going_safe, put_back, shielded  # noqa: F401 - shielded is re-exported


class StopRequest:
    """A flag a run polls between samples: set by a signal, a callback, code, or the caller's event."""

    def __init__(self, event: threading.Event | None = None) -> None:
        self.reason: str | None = None
        self.event = event

    @property
    def requested(self) -> bool:
        if self.reason is None and self.event is not None and self.event.is_set():
            self.reason = "stopped by the caller's stop event"
        return self.reason is not None

    def request(self, reason: str = "interrupted") -> None:
        """Ask the run to stop at its next sample boundary (the first request wins)."""
        if self.reason is None:
            self.reason = reason

    def __call__(self) -> bool:
        return self.requested


@contextmanager
def deferred_interrupts(
    stop: StopRequest, notify: Callable[[str], None] | None = None, enabled: bool = True
) -> Iterator[StopRequest]:
    """Within the block, the first SIGINT/SIGTERM sets ``stop``; a second SIGINT raises at once.

    Parameters
    ----------
    stop
        The flag to set.
    notify
        Called with a short message when a signal arrives.
    enabled
        False leaves the process's handlers alone (as outside the main thread).
    """
    if not (enabled and _can_install()):
        yield stop
        return

    def on_signal(signum: int, frame) -> None:  # noqa: ARG001 - signal handler signature
        if stop.requested and signum == signal.SIGINT:
            signal.signal(signal.SIGINT, going_safe(notify))  # the way out must not be cut short
            raise KeyboardInterrupt
        stop.request("interrupted")
        if notify is not None:
            notify("stopping after the sample in flight (press Ctrl-C again to stop at once)")

    previous_int = signal.signal(signal.SIGINT, on_signal)
    previous_term = signal.signal(signal.SIGTERM, on_signal)
    try:
        yield stop
    finally:
        put_back(signal.SIGINT, previous_int)
        put_back(signal.SIGTERM, previous_term)
