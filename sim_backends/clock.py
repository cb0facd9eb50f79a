"""Simulated time: settling and latency advance it, nothing sleeps."""

from __future__ import annotations

from drivers.capabilities import precise_sleep


class SimulatedClock:
    """A clock shared by a twin and its simulated instruments.

    Parameters
    ----------
    realtime
        When true, :meth:`sleep` also waits on the wall clock (real-time pacing).
    """

    def __init__(self, realtime: bool = False):
        self._t = 0.0
        self.realtime = realtime

    def now(self) -> float:
        return self._t

    def set(self, t: float) -> None:
        """Restore the time (resuming a twin from its snapshot)."""
        self._t = float(t)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._t += seconds
            if self.realtime:
                precise_sleep(seconds)
