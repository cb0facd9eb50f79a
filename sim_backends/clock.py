"""Simulated time: settling and latency advance it, nothing sleeps (unless paced in real time)."""

from __future__ import annotations

import time
from collections.abc import Callable

from drivers.capabilities import precise_sleep


class SimulatedClock:
    """A clock shared by a twin and its simulated instruments.

    Parameters
    ----------
    realtime
        When true, :meth:`sleep` also waits on the wall clock (real-time pacing). The
        work registered with :meth:`during_waits` (a twin's relaxation) is then done
        at the start of each wait and its computing time taken out of the wait: on a
        bench the physics settles while the host waits, at no cost to the host. Only
        the wall clock sees this; simulated time and the physics are those of a run
        that is not paced.
    """

    def __init__(self, realtime: bool = False):
        self._t = 0.0
        self.realtime = realtime
        self._during_waits: list[Callable[[bool], None]] = []

    def during_waits(self, work: Callable[[bool], None]) -> None:
        """Do ``work(settling)`` at the start of every real-time wait, inside it (see :meth:`sleep`)."""
        self._during_waits.append(work)

    def now(self) -> float:
        return self._t

    def set(self, t: float) -> None:
        """Restore the time (resuming a twin from its snapshot)."""
        self._t = float(t)

    def sleep(self, seconds: float, *, settling: bool = True) -> None:
        """Let ``seconds`` pass: a settle wait, or (``settling=False``) an instrument call's latency."""
        if seconds > 0:
            self._t += seconds
            if self.realtime:
                start = time.perf_counter()
                for work in self._during_waits:
                    work(settling)
                precise_sleep(seconds - (time.perf_counter() - start))
