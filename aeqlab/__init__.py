"""aeqlab: train physical systems on a lab bench with Agnostic Equilibrium Propagation.

The public API (``docs/api.md``)::

    import aeqlab
    protocol = aeqlab.load_protocol("protocols/iris_hopfield_sim.yaml")
    with aeqlab.open_bench(protocol, backend="sim") as bench:
        run = aeqlab.train(protocol, bench, epochs=2, seed=0, out="runs")
    run.summary, run.samples(), run.epochs(), run.to_xarray()

Names are imported on first use, so ``import aeqlab`` stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

try:
    from importlib.metadata import PackageNotFoundError, version

    __version__ = version("aeqlab")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "unknown"

_API = {
    "load_protocol": "aeqlab.api",
    "protocol_from_dict": "aeqlab.api",
    "example": "aeqlab.api",
    "examples": "aeqlab.api",
    "open_bench": "aeqlab.api",
    "train": "aeqlab.api",
    "resume": "aeqlab.api",
    "open_run": "aeqlab.api",
    "preview": "aeqlab.api",
    "gradcheck": "aeqlab.api",
    "sweep": "aeqlab.api",
    "Protocol": "aeqlab.protocol",
    "Run": "aeqlab.runs.run",
    "Backend": "aeqlab.engine.backend",
    "AeqlabError": "aeqlab.errors",
    "InputError": "aeqlab.errors",
    "ProtocolError": "aeqlab.errors",
    "InstrumentError": "aeqlab.errors",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'aeqlab' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
