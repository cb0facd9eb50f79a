"""Keithley 2400-series SourceMeter (one channel); compliance lives under SENSe.

Commands: Keithley 2400 series user's manual, SCPI reference (SOURce, SENSe:PROTection, OUTPut).
"""

from __future__ import annotations

from drivers.base import fmt
from drivers.smu import KEITHLEY_OFF_MODES, KeithleySingleChannel


class Keithley2400(KeithleySingleChannel):
    """Keithley 2400/2401/2410/2420: compliance set with ``:SENS:<meas>:PROT``."""

    expect = ("2400", "2401", "2410", "2420", "2440")

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
