"""A stand-in for physics where there is none: what ``aeqlab plan`` drives for a bench protocol without a twin.

It latches what is written and answers every reading with a *placeholder*: each parameter
readback equals the value its knob was set to (the parameters follow their knobs exactly,
so every homeostasis loop stops at its first check) and every output reads 0. The numbers a
plan computes from readings are therefore not predictions; the order of the actions, the
values taken from the data and the protocol, the limits and the ramps are.
"""

from __future__ import annotations

import numpy as np

from sim_backends.clock import SimulatedClock


class BlindSystem:
    """Ports like a twin's (``inputs``, ``knobs``, ``nudges`` writable; ``outputs``, ``params`` readable)."""

    def __init__(self, sizes: dict[str, int]):
        self.clock = SimulatedClock(False)
        self.ports = {p: np.zeros(int(sizes[p])) for p in ("inputs", "knobs", "nudges")}
        self._sizes = dict(sizes)
        self.reads = 0

    @property
    def sizes(self) -> dict[str, int]:
        return dict(self._sizes)

    def write(self, port: str, index, values) -> None:
        self.ports[port][index] = values

    def read(self, port: str, index) -> np.ndarray:
        self.reads += 1
        if port == "params":
            return self.ports["knobs"][index].copy()
        return np.zeros(self._sizes["outputs"])[index]
