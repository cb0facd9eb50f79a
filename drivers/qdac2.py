"""A QDAC-II style multichannel SCPI voltage source (``sour<ch>:volt``), 24 channels.

Each channel is put in fixed mode (``sour<ch>:volt:mode fix``) on its first write;
connecting only reads the present levels (``sour<ch>:volt?``). Many channels are
set in one line, chained with ``;``. The QDAC-II has no output relay: the safe
state is every channel ramped to its safe value (0 V, or the window's point nearest
0); with ``hold`` the levels stay. Every value goes through the channel's
:class:`~drivers.guard.SourceGuard`; a set is confirmed by ``*OPC?``, the safe state
by reading every level back.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from drivers.base import DriverOptions, DriverSettings, Ramp, parse_options
from drivers.errors import InstrumentError
from drivers.guard import SourceGuard
from drivers.hardware import HardwareRange
from drivers.limits import LimitTable
from drivers.safe import levels_to_safe
from drivers.scpi import ScpiLink, open_scpi


class QDac2Options(DriverOptions):
    """``instruments.<name>.options`` of a QDAC-II (none yet)."""


class QDac2:
    """QDAC-II: an :class:`~drivers.capabilities.AnalogOutput` of up to 24 channels (ch0 = wire 1)."""

    expect = ("QDAC-II", "QDAC2")
    Options = QDac2Options
    max_channels = 24
    hardware = HardwareRange(voltage=(-10.0, 10.0), source="QDAC-II user manual: output range ±10 V")

    def __init__(self, name: str, link: ScpiLink, n_channels: int, settings: DriverSettings) -> None:
        self.name = name
        self.link = link
        self.n_channels = n_channels
        parse_options(QDac2Options, settings.options, f"instruments.{name}")
        self.ramp: Ramp = settings.ramp
        self.output_limits = LimitTable(name, "voltage", "V", n_channels, *settings.voltage_range, prefix="ch")
        self._fixed = np.zeros(n_channels, bool)
        self.output_guard = SourceGuard(self.output_limits, self.ramp.step, self.ramp.rate)
        self.output_guard.know(np.arange(n_channels), self._read_levels(np.arange(n_channels)))

    @classmethod
    def open(cls, name: str, settings: DriverSettings) -> QDac2:
        n = settings.channels or cls.max_channels
        if not 1 <= n <= cls.max_channels:
            raise InstrumentError(f"{name}: at most {cls.max_channels} channels", where=f"instruments.{name}.channels")
        return open_scpi(name, settings, cls.expect, lambda link: cls(name, link, n, settings))

    def identify(self) -> str:
        return self.link.identify()

    def _read_levels(self, ch: np.ndarray) -> np.ndarray:
        return self.link.query_floats(";".join(f":sour{int(c) + 1}:volt?" for c in ch), ch.size)

    def _send(self, ch: np.ndarray, volts: np.ndarray, texts: list[str] | None) -> None:
        self.link.write(";".join(f":sour{int(c) + 1}:volt {t}" for c, t in zip(ch, texts or [])))

    @property
    def _setpoint(self) -> np.ndarray:
        return self.output_guard.present

    def write(self, channels: ArrayLike, volts: ArrayLike) -> None:
        """Set many channels (V) through the guard (limits, rounding, slew) before anything is sent."""
        ch, _, _ = self.output_guard.admit(channels, volts)
        self._learn(ch)
        fresh = ch[~self._fixed[ch]]
        if fresh.size:
            self.link.write(";".join(f":sour{int(c) + 1}:volt:mode fix" for c in fresh))
            self._fixed[fresh] = True
        self.output_guard.move(ch, volts, self._send)

    def _learn(self, ch: np.ndarray) -> None:
        """Read back the levels of channels whose value is unknown (a lost confirmation)."""
        lost = self.output_guard.unknown(ch)
        if lost.size:
            self.output_guard.know(lost, self._read_levels(lost))

    def setpoints(self, channels: ArrayLike) -> np.ndarray:
        ch = np.asarray(channels, np.intp)
        self._learn(ch.reshape(-1))
        return self._setpoint[ch].copy()

    def safe_state(self, mode: str = "zero") -> list[str]:
        """Every channel to its safe value, confirmed by reading it back (``hold``: levels stay).

        Returns one failure per channel not confirmed safe ([] when all are).
        """
        if not self.link.clear_or_reconnect():
            return [f"{self.name}: link lost and not re-established; every channel's level is unknown"]
        if mode == "hold":
            return []
        return levels_to_safe(
            self.output_guard, np.arange(self.n_channels), self._send, self._read_levels, lambda c: f"{self.name}/ch{c}"
        )

    def state(self) -> dict[str, Any]:
        return {"setpoint_V": self._setpoint.tolist()}

    def close(self) -> None:
        self.link.close()
