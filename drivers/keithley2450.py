"""Keithley 2450 SourceMeter in its native SCPI mode (one channel).

Commands: Keithley 2450 reference manual, SCPI command reference (SOURce, SENSe, OUTPut).
The 2450 speaks SCPI or TSP (``*LANG?``); this driver refuses TSP (and the 2400
emulation mode) with the fix. Compliance: ``:SOUR:CURR:VLIM:TRIP?`` when sourcing
current, ``:SOUR:VOLT:ILIM:TRIP?`` when sourcing voltage (1 when the limit is hit).
"""

from __future__ import annotations

from drivers.base import fmt
from drivers.errors import InstrumentError
from drivers.hardware import HardwareRange
from drivers.smu import KEITHLEY_OFF_MODES, KeithleySingleChannel


class Keithley2450(KeithleySingleChannel):
    """Keithley 2450: current source with a voltage limit (or voltage source with a current limit)."""

    expect = ("2450",)
    hardware = HardwareRange(
        voltage=(-210.0, 210.0),
        current=(-1.05, 1.05),
        source="Keithley 2450 reference manual, specifications: ±210 V, ±1.05 A",
    )

    def check_mode(self) -> None:
        """Refuse a 2450 that is not in SCPI mode (its commands would mean nothing there)."""
        lang = self.link.query("*LANG?").strip().upper()
        if lang != "SCPI":
            raise InstrumentError(
                f"{self.name}: the 2450 is in {lang[:20] or 'an unknown'} command mode, not SCPI",
                where=f"instruments.{self.name}",
                hint="switch the 2450 to SCPI: MENU > System > Settings > Command Set, or send *LANG SCPI "
                "and power-cycle",
            )

    def trip_query(self, c: int) -> str:
        limit = "VLIM" if self.sources == "CURR" else "ILIM"
        return f":SOUR:{self.sources}:{limit}:TRIP?"

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
