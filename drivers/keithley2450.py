"""Keithley 2450 SourceMeter in its native SCPI mode (one channel).

Commands: Keithley 2450 reference manual, SCPI command reference (SOURce, SENSe, OUTPut).
"""

from __future__ import annotations

from drivers.base import fmt
from drivers.smu import KEITHLEY_OFF_MODES, KeithleySingleChannel


class Keithley2450(KeithleySingleChannel):
    """Keithley 2450: current source with a voltage limit (or voltage source with a current limit)."""

    expect = ("2450",)

    def configure_commands(self, c: int, source_range: float) -> list[str]:
        f, m = self.sources, self.measures
        limit = "VLIM" if f == "CURR" else "ILIM"
        return [
            f":SOUR:FUNC {f}",
            f":SOUR:{f}:{limit} {fmt(self.compliance)}",
            f":SOUR:{f}:RANG {fmt(source_range)}",
            f':SENS:FUNC "{m}"',
            f":SENS:{m}:NPLC {fmt(self.options.nplc)}",
            f":SENS:{m}:RANG:AUTO 1",
            f":OUTP:{f}:SMOD {KEITHLEY_OFF_MODES[self.options.off_mode]}",
        ]
