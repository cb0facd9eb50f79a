"""Keysight 34465A / 34461A digital multimeters: one DC-voltage input.

``CONF:VOLT:DC`` sets function and range, ``VOLT:DC:NPLC`` the integration time;
readings come from ``READ?`` or from ``INIT`` then ``FETC?``. Commands: Keysight
Truevolt series operating and service guide, SCPI reference (CONFigure, SENSe, READ?).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike
from pydantic import Field

from drivers.base import DriverOptions, DriverSettings, fmt, parse_options
from drivers.errors import InstrumentError
from drivers.hardware import HardwareRange
from drivers.limits import LimitTable
from drivers.scpi import ScpiLink, open_scpi

NPLC = {"34461A": (0.02, 0.2, 1, 10, 100), "34465A": (0.02, 0.06, 0.2, 1, 10, 100)}


class DmmOptions(DriverOptions):
    """``instruments.<name>.options`` of a 344xx DMM."""

    nplc: float = Field(1.0, description="integration time (1, 10 or 100 reject line noise)")
    range: float | Literal["auto"] = Field("auto", description="DC voltage range (V) or auto")
    trigger: Literal["read", "init_fetch"] = Field("read", description="READ? or INIT then FETC?")


class Keysight344xx:
    """A 34465A or 34461A DMM as a one-channel :class:`~drivers.capabilities.AnalogInput`."""

    expect = ("34465A", "34461A")
    Options = DmmOptions
    hardware = HardwareRange(
        voltage=(-1000.0, 1000.0), source="Keysight Truevolt 34461A/34465A data sheet: DC voltage inputs up to 1000 V"
    )

    def __init__(self, name: str, link: ScpiLink, settings: DriverSettings) -> None:
        self.name = name
        self.link = link
        self.n_channels = 1
        self.options: DmmOptions = parse_options(DmmOptions, settings.options, f"instruments.{name}")
        self.input_limits = LimitTable(name, "voltage", "V", 1, *settings.voltage_range, prefix="ch")
        model = link.identity.split(",")[1].strip().upper() if "," in link.identity else ""
        allowed = NPLC.get(model)
        if allowed and self.options.nplc not in allowed:
            raise InstrumentError(
                f"{name}: the {model} does not offer NPLC {self.options.nplc:g}",
                where=f"instruments.{name}.options.nplc",
                hint=f"use one of {', '.join(f'{x:g}' for x in allowed)}",
            )
        self._configured = False

    @classmethod
    def open(cls, name: str, settings: DriverSettings) -> Keysight344xx:
        if (settings.channels or 1) != 1:
            raise InstrumentError(f"{name}: a DMM has one channel", where=f"instruments.{name}.channels")
        return open_scpi(name, settings, cls.expect, lambda link: cls(name, link, settings))

    def _configure(self) -> None:
        if self._configured:
            return
        rng = "AUTO" if self.options.range == "auto" else fmt(self.options.range)
        self.link.write(f"CONF:VOLT:DC {rng}")
        self.link.write(f"VOLT:DC:NPLC {fmt(self.options.nplc)}")
        self.link.check_errors("configuring DC voltage")
        self._configured = True

    def identify(self) -> str:
        return self.link.identify()

    def read(self, channels: ArrayLike) -> np.ndarray:
        """One DC-voltage reading per requested channel (all channel 0)."""
        ch = self.input_limits.indices(channels)
        self._configure()
        limits = (float(self.input_limits.low[0]), float(self.input_limits.high[0]))
        if self.options.trigger == "read":
            value = self.link.query_floats("READ?", 1, limits=limits)[0]
        else:
            self.link.write("INIT")
            value = self.link.query_floats("FETC?", 1, limits=limits)[0]
        return np.full(ch.size, value)

    def safe_state(self, mode: str = "zero") -> list[str]:
        """A DMM has no source: only drop what the session holds (nothing can be unsafe)."""
        self.link.clear_or_reconnect()
        return []

    def state(self) -> dict[str, Any]:
        """The present measurement configuration, as the instrument reports it (changes nothing)."""
        return {
            "configuration": self.link.query("CONF?").strip('"'),
            "nplc": float(self.link.query_floats("VOLT:DC:NPLC?", 1)[0]),
        }

    def close(self) -> None:
        self.link.close()
