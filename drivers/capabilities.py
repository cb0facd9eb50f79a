"""Capability Protocols: what the engine may ask of an instrument.

An instrument class implements whichever capabilities it can (an SMU is a
:class:`CurrentSource` and an :class:`AnalogInput`). Channels are addressed by integer
index within the instrument; values are arrays in SI units (volts, amperes). Every
call takes many channels at once, so a driver can batch them into one transaction.

Every value sent must pass the source's :class:`drivers.guard.SourceGuard` (limits
after rounding, slew) *before* anything leaves the process.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike

from drivers.limits import LimitTable


@runtime_checkable
class Instrument(Protocol):
    """Lifecycle common to every instrument."""

    name: str

    def identify(self) -> str:
        """The instrument's identity (``*IDN?`` or its equivalent)."""
        ...

    def safe_state(self, mode: str = "zero") -> list[str]:
        """Sources to their safe values and outputs off (``hold``: voltages kept, currents off).

        Returns one failure string per channel not confirmed safe ([] when all are).
        Must never raise on a healthy link.
        """
        ...

    def close(self) -> None:
        """Release the connection. Does not change outputs."""
        ...


@runtime_checkable
class AnalogOutput(Instrument, Protocol):
    """Voltage outputs (a DAC, a multichannel source)."""

    output_limits: LimitTable

    def write(self, channels: ArrayLike, volts: ArrayLike) -> None:
        """Set many channels in one call. Raises LimitError before sending if any value is out of range."""
        ...

    def setpoints(self, channels: ArrayLike) -> np.ndarray:
        """The values last set on these channels, in volts."""
        ...


@runtime_checkable
class AnalogInput(Instrument, Protocol):
    """Voltage inputs (an ADC, a DMM, an SMU's measure side)."""

    def read(self, channels: ArrayLike) -> np.ndarray:
        """Read many channels in one call, in volts."""
        ...


@runtime_checkable
class CurrentSource(Instrument, Protocol):
    """Current outputs (an SMU sourcing current with a voltage compliance)."""

    current_limits: LimitTable

    def set_currents(self, channels: ArrayLike, amps: ArrayLike) -> None:
        """Set the source level of many channels. Raises LimitError before sending if out of range."""
        ...

    def enable(self, channels: ArrayLike, on: bool) -> None:
        """Switch the outputs of these channels on or off (compliance and level come first)."""
        ...


class Clock(Protocol):
    """The clock a bench runs on. A twin's is simulated; a real bench's is the wall clock."""

    def now(self) -> float:
        """Seconds since an arbitrary origin."""
        ...

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` pass."""
        ...


SPIN_S = 2e-4  # the last stretch of a long wait, spun: time.sleep wakes up ~0.1 ms late
SHORT_WAIT_S = 0.02  # waits up to this long are spun whole


def precise_sleep(seconds: float) -> None:
    """Wait ``seconds`` on the wall clock to within a few microseconds (for real-time pacing of a twin).

    ``time.sleep`` wakes up 0.05–0.1 ms late on Linux, and a thread that slept runs
    its next computation on cold caches and a slowed core: with the millisecond
    settle waits of a training sample the host's own computing took three times as
    long between waits as without them (measured on digits, L = τ = 1 ms). Waits up to
    :data:`SHORT_WAIT_S` are therefore spun on ``perf_counter``; longer ones sleep all
    but their last :data:`SPIN_S` and spin the rest. A spin holds the interpreter, so
    this is for a twin paced in one thread (``SimulatedClock(realtime=True)``), not
    for a bench's clock, whose instrument threads must run (:class:`WallClock` sleeps).
    """
    if seconds <= 0:
        return
    deadline = time.perf_counter() + seconds
    if seconds > SHORT_WAIT_S:
        time.sleep(seconds - SPIN_S)
    while time.perf_counter() < deadline:
        pass


class WallClock:
    """The wall clock, for real benches and real-time pacing."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:  # time.sleep: waking 0.1 ms late is harmless on a bench, and other threads keep running
            time.sleep(seconds)
