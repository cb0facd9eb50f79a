"""Common behaviour of SCPI source-measure units (Keithley 2450/2400, Keysight B2900).

A model subclass only says how its commands are spelled. This class owns the safety
rules: limits are checked before any byte is sent; the first source operation
configures compliance, then range, then level, and only :meth:`enable` turns an
output on; levels ramp by ``ramp.step`` and ``ramp.rate``; :meth:`safe_state` ramps
to zero and turns the outputs off (high-impedance off-mode where configured).
Connecting reads the present state and changes nothing.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike
from pydantic import Field

from aeqlab.errors import InstrumentError
from drivers.base import DriverOptions, DriverSettings, Ramp, fmt, parse_options, ramped
from drivers.limits import LimitTable
from drivers.scpi import ScpiLink, open_scpi


class SmuOptions(DriverOptions):
    """``instruments.<name>.options`` of an SMU driver."""

    source: Literal["current", "voltage"] = Field("current", description="what the SMU sources")
    compliance: float | None = Field(
        None, gt=0, description="voltage limit (V) when sourcing current, current limit (A) when sourcing voltage"
    )
    nplc: float = Field(1.0, ge=0.01, le=10.0, description="measurement integration time in power-line cycles")
    off_mode: Literal["himp", "normal", "zero"] = Field("himp", description="output state when switched off")


class ScpiSmu:
    """A source-measure unit over SCPI (model-specific spelling in subclasses).

    Channels are numbered from 0 in aeqlab and from 1 on the wire.

    Parameters
    ----------
    name
        The instrument's name in the protocol.
    link
        An identified :class:`~drivers.scpi.ScpiLink`.
    n_channels
        Number of SMU channels.
    settings
        Ranges, ramp and options.
    """

    expect: tuple[str, ...] = ()
    Options = SmuOptions
    max_channels = 1

    def __init__(self, name: str, link: ScpiLink, n_channels: int, settings: DriverSettings) -> None:
        self.name = name
        self.link = link
        self.n_channels = n_channels
        self.options: SmuOptions = parse_options(self.Options, settings.options, f"instruments.{name}")
        self.ramp: Ramp = settings.ramp
        self.current_limits = LimitTable(name, "current", "A", n_channels, *settings.current_range, prefix="ch")
        self.output_limits = LimitTable(name, "voltage", "V", n_channels, *settings.voltage_range, prefix="ch")
        self.measure_range = tuple(settings.voltage_range if self.measures == "VOLT" else settings.current_range)
        self._configured = False
        self._on = np.zeros(n_channels, bool)
        self._level = np.zeros(n_channels)
        self._read_state()

    @classmethod
    def open(cls, name: str, settings: DriverSettings) -> ScpiSmu:
        """Connect, check ``*IDN?`` and read the present state (changes nothing)."""
        n = settings.channels or cls.max_channels
        if not 1 <= n <= cls.max_channels:
            raise InstrumentError(
                f"{name}: this instrument has at most {cls.max_channels} channels, not {n}",
                where=f"instruments.{name}.channels",
            )
        return open_scpi(name, settings, cls.expect, lambda link: cls(name, link, n, settings))

    # ------------------------------------------------------ model spelling
    @property
    def sources(self) -> str:
        return "CURR" if self.options.source == "current" else "VOLT"

    @property
    def measures(self) -> str:
        return "VOLT" if self.options.source == "current" else "CURR"

    def configure_commands(self, c: int, source_range: float) -> list[str]:
        """Commands that set function, compliance, range, integration and off-mode of wire channel c."""
        raise NotImplementedError

    def level_command(self, c: int, value: float) -> str:
        raise NotImplementedError

    def output_command(self, c: int, on: bool) -> str:
        raise NotImplementedError

    def state_queries(self, c: int) -> tuple[str, str]:
        """Queries of (output on?, source level) for wire channel c."""
        raise NotImplementedError

    def measure_query(self, wire: list[int]) -> str:
        raise NotImplementedError

    # --------------------------------------------------------------- state
    def _read_state(self) -> None:
        for ch in range(self.n_channels):
            q_on, q_level = self.state_queries(ch + 1)
            on = self.link.query(q_on)
            if on not in ("0", "1", "ON", "OFF"):
                raise InstrumentError(f"{self.name}: {q_on} answered {on[:40]!r}")
            self._on[ch] = on in ("1", "ON")
            self._level[ch] = self.link.query_floats(q_level, 1)[0]

    @property
    def compliance(self) -> float:
        if self.options.compliance is not None:
            return self.options.compliance
        rng = self.output_limits if self.options.source == "current" else self.current_limits
        return float(max(abs(rng.low.min()), abs(rng.high.max())))

    def _source_table(self) -> LimitTable:
        return self.current_limits if self.options.source == "current" else self.output_limits

    def _configure(self) -> None:
        if self._configured:
            return
        table = self._source_table()
        for ch in range(self.n_channels):
            source_range = float(max(abs(table.low[ch]), abs(table.high[ch])))
            for command in self.configure_commands(ch + 1, source_range):
                self.link.write(command)
        self.link.check_errors("configuring the source")
        self._configured = True

    def _set_levels(self, channels: ArrayLike, values: ArrayLike) -> None:
        ch, v = self._source_table().check(channels, values)
        self._configure()

        def send(step: np.ndarray) -> None:
            self.link.write(";".join(self.level_command(int(c) + 1, x) for c, x in zip(ch, step)))
            self._level[ch] = step

        ramped(self._level[ch], v, self.ramp, send)

    # -------------------------------------------------------- capabilities
    def identify(self) -> str:
        return self.link.identify()

    def set_currents(self, channels: ArrayLike, amps: ArrayLike) -> None:
        """Set current levels (A), ramping; checks limits before sending anything."""
        if self.options.source != "current":
            raise InstrumentError(f"{self.name}: configured to source voltage", hint="set options.source: current")
        self._set_levels(channels, amps)

    def write(self, channels: ArrayLike, volts: ArrayLike) -> None:
        """Set voltage levels (V), ramping; checks limits before sending anything."""
        if self.options.source != "voltage":
            raise InstrumentError(f"{self.name}: configured to source current", hint="set options.source: voltage")
        self._set_levels(channels, volts)

    def setpoints(self, channels: ArrayLike) -> np.ndarray:
        return self._level[np.asarray(channels, np.intp)].copy()

    def enable(self, channels: ArrayLike, on: bool) -> None:
        """Switch outputs on (after compliance, range and level) or off."""
        ch = np.asarray(channels, np.intp).reshape(-1)
        self._source_table().indices(ch)
        self._configure()
        self.link.write(";".join(self.output_command(int(c) + 1, on) for c in ch))
        self._on[ch] = on

    def read(self, channels: ArrayLike) -> np.ndarray:
        """Measure (V when sourcing current, A when sourcing voltage)."""
        ch = np.asarray(channels, np.intp).reshape(-1)
        self._source_table().indices(ch)
        self._configure()
        return self.link.query_floats(self.measure_query([int(c) + 1 for c in ch]), ch.size, limits=self.measure_range)

    def safe_state(self) -> None:
        """Ramp every level to zero, then switch every output off."""
        self.link.clear()
        ch = np.arange(self.n_channels)
        if np.any(self._level != 0):

            def send(step: np.ndarray) -> None:
                self.link.write(";".join(self.level_command(int(c) + 1, x) for c, x in zip(ch, step)))
                self._level[ch] = step

            ramped(self._level.copy(), np.zeros(self.n_channels), self.ramp, send)
        self.link.write(";".join(self.output_command(int(c) + 1, False) for c in ch))
        self._on[:] = False

    def state(self) -> dict[str, Any]:
        """Present state as last read or set (for ``aeqlab instruments``)."""
        unit = "A" if self.options.source == "current" else "V"
        return {"output_on": self._on.tolist(), f"level_{unit}": self._level.tolist()}

    def close(self) -> None:
        self.link.close()


KEITHLEY_OFF_MODES = {"himp": "HIMP", "normal": "NORM", "zero": "ZERO"}


class KeithleySingleChannel(ScpiSmu):
    """What the single-channel Keithley source-measure units (2400 series, 2450) say alike."""

    def level_command(self, c: int, value: float) -> str:
        return f":SOUR:{self.sources}:LEV {fmt(value)}"

    def output_command(self, c: int, on: bool) -> str:
        return f":OUTP {'ON' if on else 'OFF'}"

    def state_queries(self, c: int) -> tuple[str, str]:
        return ":OUTP?", f":SOUR:{self.sources}:LEV?"

    def measure_query(self, wire: list[int]) -> str:
        return ":READ?"
