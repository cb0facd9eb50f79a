"""The physics guard of the twin's speed work: the states it relaxes to are today's.

Every relaxation a short dry run asks of the twin (digits and iris, their protocols as
checked in) is replayed from the same starting states, inputs, knobs and currents with the
solver as it was before the speed work (``hopfield_reference.reference_relax``, a frozen
copy): the states reached must agree within 1e-9, and so must the floating parameters. Run
for the numpy path and, where numba is installed, for the compiled kernel.
"""

from __future__ import annotations

import numpy as np
import pytest
from hopfield_reference import reference_relax

from aeqlab.backends import open_backend
from aeqlab.datasets import load
from aeqlab.engine.plan import execute
from aeqlab.engine.trainer import Trainer
from aeqlab.protocol import load_protocol
from sim_backends.hopfield import HopfieldNetwork, HopfieldSpec, half_xavier

AGREE = 1e-9


def _kernels() -> list[str]:
    from sim_backends.kernels import relax_kernel

    return ["numpy"] + (["numba"] if relax_kernel() is not None else [])


KERNELS = _kernels()


def replay_dry_run(protocol_path, kernel: str, samples: int) -> tuple[int, float, float]:
    """Train ``samples`` samples; every relaxation checked against the reference.
    Returns (relaxations, worst state difference, worst parameter difference)."""
    protocol, _ = load_protocol(protocol_path)
    data = load(protocol.dataset)
    backend = open_backend(protocol, "sim")
    net: HopfieldNetwork = backend.twin.net
    net.kernel = kernel
    relax = net.relax
    worst = [0, 0.0, 0.0]

    def checked(x, u, currents, **kw):
        start = [s.copy() for s in net.states]
        tol = kw.get("tolerance") or net.tolerance
        info = relax(x, u, currents, **kw)
        cap = kw.get("max_sweeps") or net.max_sweeps
        want, _, converged = reference_relax(net.spec, start, x, u, currents, tol, cap)
        if converged:  # (a relaxation cut off by its sweep cap stops wherever its path was)
            worst[0] += 1
            worst[1] = max(worst[1], max(float(np.abs(a - b).max()) for a, b in zip(net.states, want)))
            worst[2] = max(worst[2], float(np.abs(net.theta - net.theta_at(x, u, want)).max()))
        return info

    try:
        trainer = Trainer(protocol, backend.bench, data, oracle=backend.oracle)
        trainer.start()
        net.relax = checked  # (after the start's checks, which relax copies of the network)
        targets = data.targets(data.y_train)
        for i in range(samples):
            execute(trainer.sample_plan(data.x_train[i], targets[i], protocol.method.beta), backend.bench)
        backend.safe_state()
    finally:
        backend.close()
    return worst[0], worst[1], worst[2]


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("name, samples", [("digits_hopfield_sim.yaml", 24), ("iris_hopfield_sim.yaml", 20)])
def test_dry_run_relaxations_agree_with_the_solver_before_the_speed_work(protocols_dir, kernel, name, samples):
    n, states, params = replay_dry_run(protocols_dir / name, kernel, samples)
    assert n >= 8 * samples  # a few hundred relaxations: phases, feedback iterations, new inputs
    assert states <= AGREE, f"states differ by {states:.3g} ({kernel})"
    assert params <= AGREE, f"parameters differ by {params:.3g} ({kernel})"


@pytest.mark.parametrize("kernel", KERNELS)
def test_relaxations_from_far_away_agree_on_deeper_networks(kernel):
    """Cold and perturbed starts, strong knobs and currents, three state layers."""
    rng = np.random.default_rng(7)
    for layers, eps_w, eps_b in (
        ((6, 9, 7, 3), (0.02, 0.01, 0.01), (0.004, 0.002, 0.002)),
        ((8, 12, 4), (0.02, 0.01), (0.004, 0.002)),
        ((5, 3), (0.02,), (0.004,)),
    ):
        spec = HopfieldSpec(layers, eps_w, eps_b)
        net = HopfieldNetwork(spec, tolerance=1e-10, kernel=kernel)
        for trial in range(15):
            u = half_xavier(spec, (1.5,) * spec.n_layers, rng) + rng.normal(0, 0.1, spec.n_params)
            x = rng.uniform(0, 1, layers[0])
            currents = rng.normal(0, 0.5, layers[-1])
            start = [rng.uniform(-0.5, 1.5, n) for n in layers[1:]] if trial % 2 else [np.zeros(n) for n in layers[1:]]
            net.states = [s.copy() for s in start]
            info = net.relax(x, u, currents)
            want, sweeps, converged = reference_relax(spec, start, x, u, currents, 1e-10)
            assert info.converged and converged
            assert info.sweeps == sweeps
            for a, b in zip(net.states, want):
                np.testing.assert_allclose(a, b, rtol=0, atol=AGREE, err_msg=f"{layers} trial {trial}")
            np.testing.assert_allclose(net.theta, net.theta_at(x, u, want), rtol=0, atol=AGREE)


@pytest.mark.parametrize("kernel", KERNELS)
def test_relax_leaves_the_arrays_it_replaces_alone(kernel):
    spec = HopfieldSpec((8, 12, 4), (0.02, 0.01), (0.004, 0.002))
    net = HopfieldNetwork(spec, kernel=kernel)
    rng = np.random.default_rng(1)
    u = half_xavier(spec, (1.5, 1.5), rng)
    net.relax(rng.uniform(0, 1, 8), u, np.zeros(4))
    states, theta = net.states, net.theta
    kept = [s.copy() for s in states], theta.copy()
    net.relax(rng.uniform(0, 1, 8), u, rng.normal(0, 0.3, 4))
    assert all(np.array_equal(a, b) for a, b in zip(states, kept[0])) and np.array_equal(theta, kept[1])
