"""The memory a run will need, checked before the twin, the bench or the data are allocated.

``validate`` caps every size (channels, layers, parameters, data rows and bytes: see
``docs/protocols.md``); within the caps a protocol may still need more memory than the
machine has. :func:`check_memory` estimates it from the protocol alone and refuses in
one line, naming the part to reduce, before :func:`aeqlab.backends.open_backend` builds
anything. The figures are upper estimates:

* the twin, the bench and the engine's state: :data:`BYTES_PER_PARAM` per trainable
  parameter (every parameter is a knob channel and a readback channel, each with its
  limits, guard and setpoint, the engine's targets, gains and checkpoint copies). Measured
  with ``tracemalloc`` at about 630 bytes on the sim backend (Hopfield 64-H-10, H from
  128 to 800: open, start, one sample, a packed checkpoint); rounded up;
* a Hopfield twin's stability check before the run: :data:`STATE_MATRICES` dense
  matrices of states × states (state Hessian, Gram matrix, their solve, the eigenvalue
  work), on the backends that have a twin;
* the data: :data:`DATA_COPIES` float64 copies of every value (read, split, scaled,
  targets); a CSV file's values are at most half its bytes, an NPZ file's array shapes
  are read from its headers (a compressed file may expand far beyond its size).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aeqlab.datasets.files import npz_shapes
from aeqlab.errors import InputError
from aeqlab.protocol import Protocol

GIB = 2**30
BYTES_PER_PARAM = 1024
STATE_MATRICES = 4
DATA_COPIES = 4
BUILTIN_VALUES = {"iris": 150 * (4 + 3), "digits": 1797 * (64 + 10), "xor": 4 * (2 + 2)}  # per example: x and y


@dataclass(frozen=True)
class Need:
    """One part of a run's memory: what it is, its bytes, and the protocol field that sets it."""

    what: str
    bytes: int
    field: str
    fix: str


def available_bytes() -> int | None:
    """Memory this process may still allocate, in bytes (None when the system does not say).

    Linux: ``MemAvailable`` of ``/proc/meminfo`` (free memory and the page cache the
    kernel can reclaim); elsewhere the free physical pages ``os.sysconf`` reports.
    """
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def _npz_values(path: Path) -> int | None:
    """Values of every array in an NPZ file, from the arrays' headers (None when they cannot be read)."""
    arrays = npz_shapes(path)
    return None if arrays is None else sum(math.prod(shape) for shape, _ in arrays.values())


def _data_values(protocol: Protocol) -> int:
    ds = protocol.dataset
    if ds.path is None:
        return BUILTIN_VALUES.get(ds.name or "", 0)
    path = Path(ds.path)
    try:
        size = path.stat().st_size
    except OSError:
        return 0
    if path.suffix.lower() == ".npz":
        values = _npz_values(path)
        return size if values is None else values
    return size // 2  # every CSV value takes at least one character and a separator


def needs(protocol: Protocol, kind: str) -> list[Need]:
    """The parts of the memory a run of ``protocol`` on backend ``kind`` needs (bytes, upper estimates)."""
    sim = protocol.simulation
    roles = protocol.roles
    n_params = max(roles.knobs.size, roles.params.size)
    if sim is not None and kind != "bench" and sim.n_params is not None:
        n_params = max(n_params, sim.n_params)  # an energy or plug-in twin's size is known once built: the roles'
    channels = sum(getattr(roles, r).size for r in ("inputs", "outputs", "nudges"))
    out = [
        Need(
            "the twin, bench and engine state",
            (n_params + channels) * BYTES_PER_PARAM,
            "simulation.layers" if sim is not None and sim.model == "hopfield" else "roles.knobs.channels",
            "fewer parameters",
        )
    ]
    if sim is not None and sim.model == "hopfield" and kind != "bench":
        n_states = sum(sim.layers[1:])
        out.append(
            Need(
                "the twin's stability check (states × states matrices)",
                STATE_MATRICES * n_states * n_states * 8,
                "simulation.layers",
                "fewer units in the layers after the inputs",
            )
        )
    out.append(
        Need(
            "the data set",
            DATA_COPIES * 8 * _data_values(protocol),
            "dataset.path" if protocol.dataset.path else "dataset.name",
            "a sample of the data",
        )
    )
    return out


def _layers_hint(protocol: Protocol) -> str:
    layers = protocol.simulation.layers if protocol.simulation is not None else None
    if not layers:
        return ""
    i = int(np.argmax(layers[1:])) + 1
    return f" (the largest is layers[{i}] = {layers[i]})"


def check_memory(protocol: Protocol, kind: str, available: int | None = None) -> None:
    """Refuse, in one line, a run that needs more memory than is available (nothing is allocated yet)."""
    avail = available_bytes() if available is None else available
    if avail is None:
        return  # the system does not say: allocation errors remain the only guard
    parts = needs(protocol, kind)
    total = sum(p.bytes for p in parts)
    if total <= avail:
        return
    big = max(parts, key=lambda p: p.bytes)
    detail = _layers_hint(protocol) if big.field == "simulation.layers" else ""
    raise InputError(
        f"the run needs about {total / GIB:.2f} GiB of memory ({big.what}: {big.bytes / GIB:.2f} GiB), "
        f"and {avail / GIB:.2f} GiB is available",
        where=big.field,
        hint=f"reduce {big.field}{detail}: {big.fix}; or free memory",
    )
