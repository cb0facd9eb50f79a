"""Emulated QDAC-II style multichannel voltage source (``sour<ch>:volt``), 24 channels."""

from __future__ import annotations

import numpy as np

from sim_backends.emulators.scpi_server import ScpiEmulator, ScpiError, number
from sim_backends.emulators.wiring import TwinChannels


class QDac2Emulator(ScpiEmulator):
    """Channels 1..n on the wire; a set in range is applied to the twin at once."""

    def __init__(self, name: str, channels: TwinChannels, serial: str = "13", span: float = 10.0) -> None:
        super().__init__(name, channels, f"QDevil,QDAC-II,{serial},13-1.57")
        self.span = span
        self.level = channels.present(np.arange(channels.n))
        self.mode = ["fix"] * channels.n
        self.on(r"sour(?:ce)?(\d+):volt(?:age)?:mode (fix|swe|list|awg)", self._mode)
        self.on(r"sour(?:ce)?(\d+):volt(?:age)?(?::imm)? (\S+)", self._set)
        self.on(r"sour(?:ce)?(\d+):volt(?:age)?(?::last)?\?", lambda m: f"{self.level[self._k(m[1])]:.12g}")

    def _k(self, text: str) -> int:
        k = int(text) - 1
        if not 0 <= k < self.channels.n:
            raise ScpiError(-114, "Header suffix out of range")
        return k

    def _mode(self, m) -> None:
        self.mode[self._k(m[1])] = m[2].lower()

    def _set(self, m) -> None:
        k = self._k(m[1])
        v = number(m[2])
        if abs(v) > self.span:
            raise ScpiError(-222, "Data out of range")
        self.level[k] = v
        self.channels.drive(np.array([k]), np.array([v]))

    def reset(self) -> None:
        self.level[:] = 0.0
        self.channels.drive(np.arange(self.channels.n), self.level)

    def output_state(self) -> dict[str, np.ndarray]:
        return {"level": self.level.copy(), "on": np.ones(self.channels.n, bool)}
