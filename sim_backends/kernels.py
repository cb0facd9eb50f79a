"""Compiled kernel of the Hopfield twin's joint relaxation (numba), loaded lazily.

The same algorithm as the plain-numpy path of :meth:`HopfieldNetwork.relax
<sim_backends.hopfield.HopfieldNetwork.relax>` (exact block-coordinate sweeps on the
reduced state energy; a Newton polish by block elimination when the set of clipped units
changed and every fourth sweep, accepted only when it lowers the energy; the same stopping
rules), written as loops over flat arrays so that one call does a whole relaxation, the
parameters θ = u − ε∂θE(s) included, without the Python overhead of a few hundred small
numpy operations.

numba is optional. Nothing here imports it at module import: :func:`relax_kernel`
compiles on first use (cached on disk next to this file, so later processes load the
machine code in well under a second) and returns None when numba is missing, fails to
compile, or ``AEQLAB_KERNEL=numpy`` is set; the caller then falls back to numpy. The CLI's
start-up therefore never pays for it: only a process that relaxes a Hopfield twin does.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

_lock = threading.Lock()
_kernel: Callable | None = None
_tried = False
_error: str | None = None


def relax_kernel() -> Callable | None:
    """The compiled relaxation, or None (numba unavailable or disabled): compile once per process."""
    global _kernel, _tried, _error
    if _tried:
        return _kernel
    with _lock:
        if _tried:
            return _kernel
        if os.environ.get("AEQLAB_KERNEL", "auto").lower() in ("numpy", "off", "0", "no"):
            _error = "disabled by AEQLAB_KERNEL"
        else:
            try:
                _kernel = _compile()
            except Exception as exc:  # no numba, or a numba that cannot compile this: numpy it is
                _kernel, _error = None, f"{type(exc).__name__}: {exc}"
        _tried = True
    return _kernel


def kernel_status() -> str:
    """'numba' when the compiled kernel is in use, else why not (for diagnostics and benchmarks)."""
    return "numba" if relax_kernel() is not None else f"numpy ({_error})"


def _compile() -> Callable:
    """Import the kernel and run it once on a tiny network (numba compiles, or loads its cache, at the
    first call: a failure shows here, where it can still fall back, not in the middle of a run)."""
    import numpy as np

    from sim_backends import _relax_numba

    fn = _relax_numba.relax
    sizes = np.array([2, 2, 1], np.int64)
    wo, bo = np.array([0, 4], np.int64), np.array([6, 8], np.int64)
    eps = np.array([0.01, 0.01])
    lo, hi = np.array([0.0, -1.0]), np.array([1.0, 2.0])
    u = np.array([0.5, -0.2, 0.3, 0.4, 0.6, -0.5, 0.1, 0.0, 0.2])
    theta, moved = np.empty(9), np.empty(2)
    states, sweeps, converged, _ = fn(
        np.array([0.7, 0.2]),
        u,
        np.array([0.1]),
        np.zeros(3),
        sizes,
        wo,
        bo,
        eps,
        eps,
        lo,
        hi,
        1e-12,
        1000,
        theta,
        moved,
    )
    if not converged or states.shape != (3,) or not np.all(np.isfinite(theta)):
        raise RuntimeError("the compiled relaxation failed its self-test")
    return fn
