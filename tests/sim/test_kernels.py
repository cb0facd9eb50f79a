"""The compiled relaxation kernel is optional and lazy: no compiler at start-up, numpy without it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sim_backends.hopfield import HopfieldNetwork, HopfieldSpec, half_xavier

ROOT = Path(__file__).resolve().parents[2]


def _python(code: str, **env: str) -> str:
    full = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), **env}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, cwd=ROOT, check=True)
    return out.stdout.strip()


def test_the_cli_and_the_twin_import_no_compiler():
    code = (
        "import sys, aeqlab.cli, aeqlab.backends.sim, sim_backends.hopfield, sim_backends.twin, sim_backends.kernels; "
        "print('numba' in sys.modules)"
    )
    assert _python(code) == "False"


def test_the_environment_can_switch_the_kernel_off():
    code = (
        "import numpy as np; from sim_backends.hopfield import HopfieldNetwork, HopfieldSpec; "
        "from sim_backends.kernels import kernel_status; import sys; "
        "net = HopfieldNetwork(HopfieldSpec((3, 4, 2), (0.01, 0.01), (0.01, 0.01))); "
        "net.relax(np.ones(3), np.zeros(net.spec.n_params), np.zeros(2)); "
        "print(kernel_status(), 'numba' in sys.modules)"
    )
    assert _python(code, AEQLAB_KERNEL="numpy") == "numpy (disabled by AEQLAB_KERNEL) False"


def test_a_network_checks_its_kernel_name():
    with pytest.raises(ValueError, match="kernel"):
        HopfieldNetwork(HopfieldSpec((3, 2), (0.01,), (0.01,)), kernel="fortran")


def test_both_paths_report_the_same_relaxation():
    spec = HopfieldSpec((8, 12, 4), (0.02, 0.01), (0.004, 0.002))
    rng = np.random.default_rng(4)
    u = half_xavier(spec, (1.5, 1.5), rng)
    x, currents = rng.uniform(0, 1, 8), rng.normal(0, 0.3, 4)
    runs = {}
    for kernel in ("numpy", "auto"):
        net = HopfieldNetwork(spec, tolerance=1e-10, kernel=kernel)
        info = net.relax(x, u, currents)
        runs[kernel] = (info.sweeps, info.converged, net.last_moves, np.concatenate(net.states))
    (sw_a, conv_a, moves_a, s_a), (sw_b, conv_b, moves_b, s_b) = runs.values()
    assert (sw_a, conv_a) == (sw_b, conv_b)
    np.testing.assert_allclose(moves_a, moves_b, atol=1e-12)
    np.testing.assert_allclose(s_a, s_b, atol=1e-12)
    np.testing.assert_allclose(moves_a, [float(np.abs(v).max()) for v in np.split(s_a, [12])], atol=1e-15)
