"""Emulated channels ↔ twin port elements, with a true SI transfer SI = offset + scale·model.

The twin's instrument non-idealities apply here as in :class:`sim_backends.instruments.SimInstrument`:
reading noise (model units) and the resolution of voltage outputs.
"""

from __future__ import annotations

import threading

import numpy as np
from numpy.typing import ArrayLike

from sim_backends.twin import READABLE, WRITABLE, HopfieldTwin


class TwinChannels:
    """The channels of one emulated instrument and where each meets the twin.

    Unwired channels hold their value and read 0; a nudge channel wired to its output
    node (:meth:`wire_node`) reads that node's voltage, the side its compliance limits.
    All twin access goes through
    ``lock``, shared by every emulator of one twin (they serve on their own threads).

    Parameters
    ----------
    twin
        The twin, or None for an instrument wired to nothing.
    n
        Channel count.
    lock
        The twin's lock.
    """

    def __init__(
        self,
        twin: HopfieldTwin | None,
        n: int,
        lock: threading.RLock | None = None,
        *,
        noise: float = 0.0,
        dac_step: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.twin = twin
        self.n = n
        self.lock = lock or threading.RLock()
        self.noise = noise  # reading noise, model units of the channel's role
        self.dac_step = dac_step  # voltage output resolution (V); 0: exact
        self._rng = np.random.default_rng(seed)
        self.port = np.full(n, "", dtype=object)
        self.index = np.zeros(n, np.intp)
        self.scale = np.ones(n)
        self.offset = np.zeros(n)
        # a current source's measured side: the voltage of the output node it drives (index -1: none)
        self.node = np.full(n, -1, np.intp)
        self.node_scale = np.ones(n)
        self.node_offset = np.zeros(n)

    def wire(self, channels: ArrayLike, port: str, index: ArrayLike, scale: ArrayLike, offset: ArrayLike) -> None:
        """Connect channels to twin port elements."""
        ch = np.asarray(channels, np.intp)
        if np.any(self.port[ch] != ""):
            raise ValueError("an emulated channel is wired twice")
        self.port[ch] = port
        self.index[ch] = np.asarray(index, np.intp)
        self.scale[ch] = scale
        self.offset[ch] = offset

    def wire_node(self, channels: ArrayLike, index: ArrayLike, scale: ArrayLike, offset: ArrayLike) -> None:
        """Nudge channels: their measured side is output node ``index`` (V = offset + scale·model)."""
        ch = np.asarray(channels, np.intp)
        self.node[ch] = np.asarray(index, np.intp)
        self.node_scale[ch] = scale
        self.node_offset[ch] = offset

    def present(self, channels: ArrayLike) -> np.ndarray:
        """SI value the twin's writable ports hold on these channels (0 where unwired)."""
        ch = np.asarray(channels, np.intp)
        out = np.zeros(ch.size)
        with self.lock:
            for port in WRITABLE:
                sel = np.flatnonzero(self.port[ch] == port)
                if sel.size and self.twin is not None:
                    c = ch[sel]
                    out[sel] = self.offset[c] + self.scale[c] * self.twin.ports[port][self.index[c]]
        return out

    def drive(self, channels: ArrayLike, si: ArrayLike) -> None:
        """Apply SI values to the twin on the wired writable channels."""
        ch = np.asarray(channels, np.intp)
        v = np.asarray(si, float)
        if self.twin is None:
            return
        with self.lock:
            for port in WRITABLE:
                sel = np.flatnonzero(self.port[ch] == port)
                if sel.size:
                    c = ch[sel]
                    x = v[sel]
                    if self.dac_step and port != "nudges":
                        x = np.round(x / self.dac_step) * self.dac_step
                    self.twin.write(port, self.index[c], (x - self.offset[c]) / self.scale[c])

    def measure(self, channels: ArrayLike) -> np.ndarray:
        """SI values of the wired readable channels (0 elsewhere)."""
        ch = np.asarray(channels, np.intp)
        out = np.zeros(ch.size)
        if self.twin is None:
            return out
        with self.lock:
            for port in READABLE:
                sel = np.flatnonzero(self.port[ch] == port)
                if sel.size:
                    c = ch[sel]
                    model = self.twin.read(port, self.index[c])
                    if self.noise:
                        model = model + self._rng.normal(0.0, self.noise, model.size)
                    out[sel] = self.offset[c] + self.scale[c] * model
            sel = np.flatnonzero((self.port[ch] == "nudges") & (self.node[ch] >= 0))
            if sel.size:  # a current source measures the voltage its node is at (what its compliance limits)
                c = ch[sel]
                out[sel] = self.node_offset[c] + self.node_scale[c] * self.twin.read("outputs", self.node[c])
        return out
