"""Keysight B2900 series precision SMUs (B2901/02/11/12/61/62), one or two channels.

Each subsystem carries the channel number (``:SOUR2:CURR``); measurements take a
channel list (``:MEAS:VOLT? (@1,2)``). Commands: Keysight B2900 SCPI command reference.
"""

from __future__ import annotations

from drivers.base import fmt
from drivers.hardware import HardwareRange
from drivers.smu import ScpiSmu

_OFF = {"himp": "HIZ", "normal": "NORM", "zero": "ZERO"}


class KeysightB2900(ScpiSmu):
    """Keysight B2900: per-channel ``:SOURn``/``:SENSn``/``:OUTPn`` subsystems."""

    expect = ("B290",)
    max_channels = 2
    hardware = HardwareRange(
        voltage=(-210.0, 210.0),
        current=(-3.03, 3.03),
        source="Keysight B2900 user's guide, source output ranges: ±210 V; ±3.03 A DC at |V| ≤ 6 V",
    )

    def configure_commands(self, c: int, source_range: float) -> list[str]:
        f, m = self.sources, self.measures
        return [
            f":SOUR{c}:FUNC:MODE {f}",
            f":SENS{c}:{m}:PROT {fmt(self.compliance)}",
            f":SOUR{c}:{f}:RANG {fmt(source_range)}",
            f":SENS{c}:{m}:NPLC {fmt(self.options.nplc)}",
            f":OUTP{c}:OFF:MODE {_OFF[self.options.off_mode]}",
        ]

    def level_command(self, c: int, value: float | str) -> str:
        return f":SOUR{c}:{self.sources} {value if isinstance(value, str) else fmt(value)}"

    def trip_query(self, c: int) -> str:
        return f":SENS{c}:{self.measures}:PROT:TRIP?"

    def output_command(self, c: int, on: bool) -> str:
        return f":OUTP{c} {1 if on else 0}"

    def state_queries(self, c: int) -> tuple[str, str]:
        return f":OUTP{c}?", f":SOUR{c}:{self.sources}?"

    def measure_query(self, wire: list[int]) -> str:
        return f":MEAS:{self.measures}? (@{','.join(str(c) for c in wire)})"
