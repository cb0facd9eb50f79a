"""Emulated source-measure units: Keithley 2450, Keithley 2400, Keysight B2900.

Sourcing is applied to the twin only while the output is on; an output that is off
drives nothing (0 A / 0 V). Levels beyond the source range or the instrument's
capability go to the error queue (-222) and are not applied. Each channel reports its
compliance state (``...:TRIP?``): tripped when the measured value driven by a current
source reaches the compliance limit. The 2450 answers ``*LANG?`` (``lang`` attribute,
``SCPI`` by default; set ``TSP`` to emulate an instrument in TSP mode, which then
answers nothing else but ``*LANG?`` and ``*IDN?``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from sim_backends.emulators.scpi_server import ScpiEmulator, ScpiError, number
from sim_backends.emulators.wiring import TwinChannels

MAX = {"CURR": 1.05, "VOLT": 210.0}


@dataclass
class SmuChannel:
    """The front-panel state of one SMU channel."""

    func: str = "VOLT"
    level: dict[str, float] = field(default_factory=lambda: {"CURR": 0.0, "VOLT": 0.0})
    range: dict[str, float] = field(default_factory=lambda: {"CURR": 1e-4, "VOLT": 20.0})
    limit: float = 0.0
    on: bool = False
    off_mode: str = "NORM"
    nplc: float = 1.0


class SmuEmulator(ScpiEmulator):
    """Common state and actions of the emulated SMUs (channel 1 is ``channels`` index 0)."""

    def __init__(self, name: str, channels: TwinChannels, idn: str) -> None:
        super().__init__(name, channels, idn)
        self.ch = [SmuChannel() for _ in range(channels.n)]
        present = channels.present(np.arange(channels.n))
        for c, value in zip(self.ch, present):
            if value:
                c.func = "CURR" if abs(value) < 1 else "VOLT"
                c.level[c.func] = float(value)

    def _c(self, text: str | None) -> SmuChannel:
        k = int(text) if text else 1
        if not 1 <= k <= len(self.ch):
            raise ScpiError(-114, "Header suffix out of range")
        return self.ch[k - 1]

    def _apply(self) -> None:
        values = np.array([c.level[c.func] if c.on else 0.0 for c in self.ch])
        self.channels.drive(np.arange(len(self.ch)), values)

    def set_level(self, c: SmuChannel, func: str, value: float) -> None:
        func = func.upper()[:4]
        if abs(value) > MAX[func] or abs(value) > c.range[func] * 1.05:
            raise ScpiError(-222, "Data out of range")
        c.level[func] = value
        self._apply()

    def set_output(self, c: SmuChannel, on: str) -> None:
        c.on = on.upper() in ("ON", "1")
        self._apply()

    def measure(self, k: int) -> float:
        return float(self.channels.measure(np.array([k]))[0])

    def tripped(self, c: SmuChannel) -> str:
        """``1`` when channel c's output is on and its measured side has reached the compliance limit."""
        if not c.on or c.limit <= 0:
            return "0"
        k = next(i for i, x in enumerate(self.ch) if x is c)
        return "1" if abs(self.measure(k)) >= c.limit else "0"

    def reset(self) -> None:
        for c in self.ch:
            c.on = False
            c.level = {"CURR": 0.0, "VOLT": 0.0}
        self._apply()

    def output_state(self) -> dict[str, np.ndarray]:
        """Levels of the source function and output switches, per channel (as a front panel shows)."""
        return {
            "level": np.array([c.level[c.func] for c in self.ch]),
            "on": np.array([c.on for c in self.ch]),
        }


def _f(text: str) -> str:
    return text.upper()[:4]


_FN = r"(CURR|VOLT)(?:ent|age)?"  # a source function, abbreviated or not


class _KeithleySingleChannel(SmuEmulator):
    """Commands the single-channel Keithley SMUs (2400 series, 2450) answer alike."""

    def _keithley_source_commands(self, c) -> None:
        fn = _FN
        self.on(r"SOUR(?:ce)?:FUNC(?:tion)? " + fn, lambda m: setattr(c, "func", _f(m[1])))
        self.on(r"SOUR(?:ce)?:FUNC(?:tion)?\?", lambda m: c.func)
        self.on(rf"SOUR:{fn}:RANG(?:e)? (\S+)", lambda m: c.range.__setitem__(_f(m[1]), number(m[2])))
        self.on(rf"SOUR:{fn}(?::LEV(?:el)?)? (\S+)", lambda m: self.set_level(c, m[1], number(m[2])))
        self.on(rf"SOUR:{fn}(?::LEV(?:el)?)?\?", lambda m: f"{c.level[_f(m[1])]:.12g}")
        self.on(rf"SENS:{fn}:NPLC (\S+)", lambda m: setattr(c, "nplc", number(m[2])))
        self.on(r"OUTP(?:ut)?(?::STAT(?:e)?)? (ON|OFF|1|0)", lambda m: self.set_output(c, m[1]))
        self.on(r"OUTP(?:ut)?(?::STAT(?:e)?)?\?", lambda m: "1" if c.on else "0")


class Keithley2450Emulator(_KeithleySingleChannel):
    """Keithley 2450 in SCPI mode."""

    def __init__(self, name: str, channels: TwinChannels, serial: str = "04455001") -> None:
        super().__init__(name, channels, f"KEITHLEY INSTRUMENTS,MODEL 2450,{serial},1.7.12b")
        self.lang = "SCPI"
        c = self.ch[0]
        fn = _FN
        self.on(r"\*LANG\?", lambda m: self.lang)
        self.on(r"\*LANG (SCPI|TSP|SCPI2400)", lambda m: setattr(self, "lang", m[1].upper()))
        self.on(rf"SOUR:{fn}:(?:VLIM|ILIM):TRIP(?:ped)?\?", lambda m: self.tripped(c))
        self._keithley_source_commands(c)
        self.on(rf"SOUR:{fn}:(VLIM|ILIM) (\S+)", lambda m: setattr(c, "limit", number(m[3])))
        self.on(rf"SOUR:{fn}:RANG:AUTO (\S+)", lambda m: None)
        self.on(r'SENS(?:e)?:FUNC(?:tion)? "(VOLT|CURR)(?::DC)?"', lambda m: None)
        self.on(rf"SENS:{fn}:RANG:AUTO (\S+)", lambda m: None)
        self.on(rf"OUTP:{fn}:SMOD (HIMP|NORM|ZERO|GUAR)", lambda m: setattr(c, "off_mode", m[2].upper()))
        self.on(r"READ\?|MEAS:VOLT\?", lambda m: f"{self.measure(0):.12g}")


class Keithley2400Emulator(_KeithleySingleChannel):
    """Keithley 2400 (compliance under ``:SENS:<meas>:PROT``)."""

    def __init__(self, name: str, channels: TwinChannels, serial: str = "1234567") -> None:
        super().__init__(name, channels, f"KEITHLEY INSTRUMENTS INC.,MODEL 2400,{serial},C32 Oct 4 2010 14:20:11/A02")
        c = self.ch[0]
        fn = _FN
        self._keithley_source_commands(c)
        self.on(rf"SOUR:{fn}:MODE FIX(?:ed)?", lambda m: None)
        self.on(rf"SENS:{fn}:PROT(?:ection)? (\S+)", lambda m: setattr(c, "limit", number(m[2])))
        self.on(r"SENS(?:e)?:FUNC(?:tion)? '(VOLT|CURR)(?::DC)?'", lambda m: None)
        self.on(r"FORM:ELEM (VOLT|CURR)", lambda m: None)
        self.on(r"OUTP:SMOD (HIMP|NORM|ZERO|GUAR)", lambda m: setattr(c, "off_mode", m[1].upper()))
        self.on(rf"SENS:{fn}:PROT(?:ection)?:TRIP(?:ped)?\?", lambda m: self.tripped(c))
        self.on(r"READ\?", lambda m: f"{self.measure(0):.12g}")


class B2900Emulator(SmuEmulator):
    """Keysight B2902A (two channels; the channel number rides on each subsystem)."""

    def __init__(self, name: str, channels: TwinChannels, serial: str = "MY51140001") -> None:
        model = "B2902A" if channels.n > 1 else "B2901A"
        super().__init__(name, channels, f"Keysight Technologies,{model},{serial},3.4.2011.5100")
        fn = _FN
        self.on(r"SOUR(\d?):FUNC:MODE " + fn, lambda m: setattr(self._c(m[1]), "func", _f(m[2])))
        self.on(r"SOUR(\d?):FUNC:MODE\?", lambda m: self._c(m[1]).func)
        self.on(rf"SENS(\d?):{fn}:PROT (\S+)", lambda m: setattr(self._c(m[1]), "limit", number(m[3])))
        self.on(rf"SENS(\d?):{fn}:PROT:TRIP\?", lambda m: self.tripped(self._c(m[1])))
        self.on(rf"SOUR(\d?):{fn}:RANG (\S+)", lambda m: self._c(m[1]).range.__setitem__(_f(m[2]), number(m[3])))
        self.on(rf"SENS(\d?):{fn}:NPLC (\S+)", lambda m: setattr(self._c(m[1]), "nplc", number(m[3])))
        self.on(r"OUTP(\d?):OFF:MODE (HIZ|NORM|ZERO)", lambda m: setattr(self._c(m[1]), "off_mode", m[2].upper()))
        self.on(
            rf"SOUR(\d?):{fn}(?::LEV(?::IMM(?::AMPL)?)?)? (\S+)",
            lambda m: self.set_level(self._c(m[1]), m[2], number(m[3])),
        )
        self.on(rf"SOUR(\d?):{fn}(?::LEV(?::IMM(?::AMPL)?)?)?\?", lambda m: f"{self._c(m[1]).level[_f(m[2])]:.12g}")
        self.on(r"OUTP(\d?)(?::STAT)? (ON|OFF|1|0)", lambda m: self.set_output(self._c(m[1]), m[2]))
        self.on(r"OUTP(\d?)(?::STAT)?\?", lambda m: "1" if self._c(m[1]).on else "0")
        self.on(rf"MEAS:{fn}\? \(@([\d,]+)\)", self._meas)

    def _meas(self, m: re.Match) -> str:
        wire = [int(x) for x in m[2].split(",")]
        for k in wire:
            self._c(str(k))
        values = self.channels.measure(np.array(wire) - 1)
        return ",".join(f"{v:.12g}" for v in values)
