"""Keithley 2400-series SourceMeter (one channel); compliance lives under SENSe.

Commands: Keithley 2400 series user's manual, SCPI reference (SOURce, SENSe:PROTection, OUTPut);
the compliance state is ``:SENS:<meas>:PROT:TRIP?`` (1 when the source is in compliance).
"""

from __future__ import annotations

from drivers.base import fmt
from drivers.hardware import HardwareRange
from drivers.smu import KEITHLEY_OFF_MODES, KeithleySingleChannel


class Keithley2400(KeithleySingleChannel):
    """Keithley 2400/2401/2410/2420: compliance set with ``:SENS:<meas>:PROT``."""

    expect = ("2400", "2401", "2410", "2420", "2440")
    hardware = HardwareRange(
        voltage=(-210.0, 210.0),
        current=(-1.05, 1.05),
        source="Keithley 2400 series user's manual, specifications: ±210 V, ±1.05 A (2400)",
    )

    def configure_commands(self, c: int, source_range: float) -> list[str]:
        f, m = self.sources, self.measures
        return [
            f":SOUR:FUNC {f}",
            f":SOUR:{f}:MODE FIX",
            f":SENS:{m}:PROT {fmt(self.compliance)}",
            f":SOUR:{f}:RANG {fmt(source_range)}",
            f":SENS:FUNC '{m}'",
            f":SENS:{m}:NPLC {fmt(self.options.nplc)}",
            f":FORM:ELEM {m}",
            f":OUTP:SMOD {KEITHLEY_OFF_MODES[self.options.off_mode]}",
        ]
