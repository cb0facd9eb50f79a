"""Common behaviour of SCPI source-measure units (Keithley 2450/2400, Keysight B2900).

A model subclass only says how its commands are spelled. This class owns the safety
rules: limits are checked before any byte is sent; the first source operation
configures compliance, then range, then level, and only :meth:`enable` turns an
output on; every level goes through the source's :class:`~drivers.guard.SourceGuard`
(limits after rounding, ``ramp.step``/``ramp.rate`` and the safety slew);
:meth:`safe_state` brings every level to its safe value and turns every output off,
each channel and each step attempted on its own, and confirms both by reading them
back. After each nudge the compliance-tripped state is read (:meth:`compliance_tripped`).
Connecting reads the present state and changes nothing.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike
from pydantic import Field

from drivers.base import DriverOptions, DriverSettings, Ramp, fmt, parse_options
from drivers.errors import InstrumentError
from drivers.guard import SourceGuard
from drivers.limits import LimitTable
from drivers.safe import levels_to_safe
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
        self._tripped = np.zeros(n_channels, bool)
        self.source_guard = SourceGuard(self._source_table(), self.ramp.step, self.ramp.rate)
        self.check_mode()
        self._read_state()

    @property
    def current_guard(self) -> SourceGuard | None:
        return self.source_guard if self.options.source == "current" else None

    @property
    def output_guard(self) -> SourceGuard | None:
        return self.source_guard if self.options.source == "voltage" else None

    @property
    def _level(self) -> np.ndarray:
        return self.source_guard.present

    def check_mode(self) -> None:
        """Refuse an instrument in a command language this driver does not speak (none by default)."""

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

    def level_command(self, c: int, value: float | str) -> str:
        """The command setting wire channel c's level (``value`` already formatted when a str)."""
        raise NotImplementedError

    def output_command(self, c: int, on: bool) -> str:
        raise NotImplementedError

    def state_queries(self, c: int) -> tuple[str, str]:
        """Queries of (output on?, source level) for wire channel c."""
        raise NotImplementedError

    def measure_query(self, wire: list[int]) -> str:
        raise NotImplementedError

    def trip_query(self, c: int) -> str:
        """Query of wire channel c's compliance-tripped state (``1`` when the source is limited)."""
        raise NotImplementedError

    # --------------------------------------------------------------- state
    def _read_state(self) -> None:
        for ch in range(self.n_channels):
            self._on[ch] = self._read_output(ch)
        self.source_guard.know(np.arange(self.n_channels), self._read_levels(np.arange(self.n_channels)))

    def _read_output(self, ch: int) -> bool:
        q_on = self.state_queries(ch + 1)[0]
        on = self.link.query(q_on)
        if on not in ("0", "1", "ON", "OFF"):
            raise InstrumentError(f"{self.name}: {q_on} answered {on[:40]!r}")
        return on in ("1", "ON")

    def _read_levels(self, ch: np.ndarray) -> np.ndarray:
        return np.array([self.link.query_floats(self.state_queries(int(c) + 1)[1], 1)[0] for c in ch])

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

    def _send(self, ch: np.ndarray, values: np.ndarray, texts: list[str] | None) -> None:
        self.link.write(";".join(self.level_command(int(c) + 1, t) for c, t in zip(ch, texts or [])))

    def _learn(self, ch: np.ndarray) -> None:
        lost = self.source_guard.unknown(ch)
        if lost.size:
            self.source_guard.know(lost, self._read_levels(lost))

    def _set_levels(self, channels: ArrayLike, values: ArrayLike) -> None:
        ch, _, _ = self.source_guard.admit(channels, values)
        self._configure()
        self._learn(ch)
        self.source_guard.move(ch, values, self._send)
        on = ch[self._on[ch]]
        if on.size and self.options.source == "current":
            self._tripped[on] = [self._read_trip(int(c)) for c in on]

    def _read_trip(self, c: int) -> bool:
        q = self.trip_query(c + 1)
        reply = self.link.query(q)
        if reply not in ("0", "1"):
            raise InstrumentError(f"{self.name}: {q} answered {reply[:40]!r}", hint="check the instrument's mode")
        return reply == "1"

    def compliance_tripped(self) -> list[bool]:
        """Per channel: did the last nudge hit the compliance limit (read after each nudge)."""
        return self._tripped.tolist()

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
        """Switch outputs on (after compliance, range and level) or off.

        An output switches at its safe level when a slew is declared: the level ramps
        there first and (switching on) back afterwards, so the switch is no jump.
        """
        ch = np.asarray(channels, np.intp).reshape(-1)
        self._source_table().indices(ch)
        self._configure()
        self._learn(ch)
        guard = self.source_guard
        level = guard.present[ch].copy()
        safe = guard.safe_values(ch)
        ramped = np.isfinite(guard.rate[ch]) & (level != safe) & (self._on[ch] != on)
        if ramped.any():
            guard.move(ch[ramped], safe[ramped], self._send)
        self.link.write(";".join(self.output_command(int(c) + 1, on) for c in ch))
        self._on[ch] = on
        self._tripped[ch] = False
        if on and ramped.any():
            guard.move(ch[ramped], level[ramped], self._send)

    def read(self, channels: ArrayLike) -> np.ndarray:
        """Measure (V when sourcing current, A when sourcing voltage)."""
        ch = np.asarray(channels, np.intp).reshape(-1)
        self._source_table().indices(ch)
        self._configure()
        return self.link.query_floats(self.measure_query([int(c) + 1 for c in ch]), ch.size, limits=self.measure_range)

    def safe_state(self, mode: str = "zero") -> list[str]:
        """Levels to their safe values, then outputs off; every channel and step on its own, all confirmed.

        ``hold`` keeps a voltage source's level and output (voltages are held) and
        brings a current source to 0 A and off. Returns one failure per channel that
        could not be confirmed safe ([] when all were).
        """
        if not self.link.clear_or_reconnect():
            return [f"{self.name}: link lost and not re-established; output and level unknown"]
        if mode == "hold" and self.options.source == "voltage":
            return []
        ch = np.arange(self.n_channels)
        failures = levels_to_safe(self.source_guard, ch, self._send, self._read_levels, self._label)
        failures += self._outputs_off(ch)
        return failures

    def _label(self, c: int) -> str:
        return f"{self.name}/ch{c}"

    def _outputs_off(self, ch: np.ndarray) -> list[str]:
        failed: dict[int, str] = {}
        try:
            self.link.write(";".join(self.output_command(int(c) + 1, False) for c in ch))
        except Exception as exc:  # noqa: BLE001 - then one channel at a time (unless the link is silent)
            for c in [] if "no reply" in str(exc) else ch:
                try:
                    self.link.write(self.output_command(int(c) + 1, False))
                except Exception as exc:  # noqa: BLE001
                    failed[int(c)] = f"{self._label(int(c))}: output-off not confirmed ({exc})"
        silent = False
        for c in ch:
            if silent:
                failed.setdefault(int(c), f"{self._label(int(c))}: output state not confirmed (no reply)")
                continue
            try:
                self._on[c] = self._read_output(int(c))
                if self._on[c]:
                    failed.setdefault(int(c), f"{self._label(int(c))}: output still on after output-off")
            except Exception as exc:  # noqa: BLE001
                failed.setdefault(int(c), f"{self._label(int(c))}: output state not confirmed ({exc})")
                silent = "no reply" in str(exc)
        return [failed[c] for c in sorted(failed)]

    def state(self) -> dict[str, Any]:
        """Present state as last read or set (for ``aeqlab instruments``)."""
        unit = "A" if self.options.source == "current" else "V"
        return {"output_on": self._on.tolist(), f"level_{unit}": self._level.tolist()}

    def close(self) -> None:
        self.link.close()


KEITHLEY_OFF_MODES = {"himp": "HIMP", "normal": "NORM", "zero": "ZERO"}


class KeithleySingleChannel(ScpiSmu):
    """What the single-channel Keithley source-measure units (2400 series, 2450) say alike."""

    def output_command(self, c: int, on: bool) -> str:
        return f":OUTP {'ON' if on else 'OFF'}"

    def state_queries(self, c: int) -> tuple[str, str]:
        return ":OUTP?", f":SOUR:{self.sources}:LEV?"

    def trip_query(self, c: int) -> str:
        return f":SENS:{self.measures}:PROT:TRIP?"

    def measure_query(self, wire: list[int]) -> str:
        return ":READ?"

    def level_command(self, c: int, value: float | str) -> str:
        return f":SOUR:{self.sources}:LEV {value if isinstance(value, str) else fmt(value)}"
