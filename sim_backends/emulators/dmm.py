"""Emulated Keysight 34465A / 34461A DMM: one DC-voltage input wired to a twin readable port."""

from __future__ import annotations

import numpy as np

from sim_backends.emulators.scpi_server import ScpiEmulator, ScpiError, number
from sim_backends.emulators.wiring import TwinChannels

OVERLOAD = 9.9e37


class Keysight344xxEmulator(ScpiEmulator):
    """A 34465A (default) or 34461A; ``READ?`` or ``INIT`` + ``FETC?``; overload reads 9.9E37."""

    def __init__(self, name: str, channels: TwinChannels, model: str = "34465A", serial: str = "MY57000001") -> None:
        super().__init__(name, channels, f"Keysight Technologies,{model},{serial},A.03.01-02.40-03.01-00.52-02-01")
        self.range: float | None = None  # None = auto
        self.nplc = 10.0
        self.fetched: float | None = None
        self.on(r"CONF(?:igure)?:VOLT(?:age)?(?::DC)?(?: (\S+?))?(?:,\S+)?", self._conf)
        self.on(r"(?:SENS:)?VOLT(?:age)?(?::DC)?:NPLC (\S+)", lambda m: setattr(self, "nplc", number(m[1])))
        self.on(r"(?:SENS:)?VOLT(?:age)?(?::DC)?:RANG(?:e)?:AUTO (ON|1)", lambda m: setattr(self, "range", None))
        self.on(r"READ\?", lambda m: f"{self._reading():.12g}")
        self.on(r"INIT(?:iate)?(?::IMM)?", lambda m: setattr(self, "fetched", self._reading()))
        self.on(r"FETC(?:h)?\?", self._fetch)
        self.on(r"CONF(?:igure)?\?", self._conf_query)
        self.on(r"(?:SENS:)?VOLT(?:age)?(?::DC)?:NPLC\?", lambda m: f"{self.nplc:+.8E}")

    def _conf(self, m) -> None:
        arg = (m[1] or "AUTO").upper()
        self.range = None if arg in ("AUTO", "DEF") else number(arg)

    def _conf_query(self, m) -> str:
        rng = self.range if self.range is not None else 10.0
        return f'"VOLT {rng:+.6E},+3.000000E-06"'

    def _reading(self) -> float:
        v = float(self.channels.measure(np.array([0]))[0])
        if self.range is not None and abs(v) > 1.2 * self.range:
            return OVERLOAD
        return v

    def _fetch(self, m) -> str:
        if self.fetched is None:
            raise ScpiError(-230, "Data corrupt or stale")
        return f"{self.fetched:.12g}"
