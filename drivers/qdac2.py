"""A QDAC-II style multichannel SCPI voltage source (``sour<ch>:volt``), 24 channels.

Each channel is put in fixed mode (``sour<ch>:volt:mode fix``) on its first write;
connecting only reads the present levels (``sour<ch>:volt?``). Many channels are
set in one line, chained with ``;``. The QDAC-II has no output relay: the safe
state is every channel ramped to 0 V.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from aeqlab.errors import InstrumentError
from drivers.base import DriverOptions, DriverSettings, Ramp, fmt, parse_options, ramped
from drivers.limits import LimitTable
from drivers.scpi import ScpiLink, open_scpi


class QDac2Options(DriverOptions):
    """``instruments.<name>.options`` of a QDAC-II (none yet)."""


class QDac2:
    """QDAC-II: an :class:`~drivers.capabilities.AnalogOutput` of up to 24 channels (ch0 = wire 1)."""

    expect = ("QDAC-II", "QDAC2")
    Options = QDac2Options
    max_channels = 24

    def __init__(self, name: str, link: ScpiLink, n_channels: int, settings: DriverSettings) -> None:
        self.name = name
        self.link = link
        self.n_channels = n_channels
        parse_options(QDac2Options, settings.options, f"instruments.{name}")
        self.ramp: Ramp = settings.ramp
        self.output_limits = LimitTable(name, "voltage", "V", n_channels, *settings.voltage_range, prefix="ch")
        self._fixed = np.zeros(n_channels, bool)
        wire = ";".join(f":sour{c + 1}:volt?" for c in range(n_channels))
        self._setpoint = link.query_floats(wire, n_channels) if n_channels else np.zeros(0)

    @classmethod
    def open(cls, name: str, settings: DriverSettings) -> QDac2:
        n = settings.channels or cls.max_channels
        if not 1 <= n <= cls.max_channels:
            raise InstrumentError(f"{name}: at most {cls.max_channels} channels", where=f"instruments.{name}.channels")
        return open_scpi(name, settings, cls.expect, lambda link: cls(name, link, n, settings))

    def identify(self) -> str:
        return self.link.identify()

    def _send(self, ch: np.ndarray, volts: np.ndarray) -> None:
        self.link.write(";".join(f":sour{int(c) + 1}:volt {fmt(v)}" for c, v in zip(ch, volts)))
        self._setpoint[ch] = volts

    def write(self, channels: ArrayLike, volts: ArrayLike) -> None:
        """Set many channels (V), ramping; limits are checked before anything is sent."""
        ch, v = self.output_limits.check(channels, volts)
        fresh = ch[~self._fixed[ch]]
        if fresh.size:
            self.link.write(";".join(f":sour{int(c) + 1}:volt:mode fix" for c in fresh))
            self._fixed[fresh] = True
        ramped(self._setpoint[ch], v, self.ramp, lambda step: self._send(ch, step))

    def setpoints(self, channels: ArrayLike) -> np.ndarray:
        return self._setpoint[np.asarray(channels, np.intp)].copy()

    def safe_state(self) -> None:
        """Ramp every channel to 0 V."""
        self.link.clear()
        ch = np.flatnonzero(self._setpoint != 0)
        if ch.size:
            ramped(self._setpoint[ch], np.zeros(ch.size), self.ramp, lambda step: self._send(ch, step))

    def state(self) -> dict[str, Any]:
        return {"setpoint_V": self._setpoint.tolist()}

    def close(self) -> None:
        self.link.close()
