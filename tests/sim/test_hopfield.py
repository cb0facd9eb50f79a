"""The twin's physics: joint relaxation reaches the minimum of the total energy."""

from __future__ import annotations

import numpy as np

from sim_backends.hopfield import HopfieldNetwork, HopfieldSpec, half_xavier, split_params


def setup(layers=(8, 12, 4), seed=0):
    spec = HopfieldSpec(layers, (0.02, 0.01), (0.004, 0.002))
    net = HopfieldNetwork(spec, tolerance=1e-13, max_sweeps=100_000)
    rng = np.random.default_rng(seed)
    u = half_xavier(spec, (1.5, 1.5), rng)
    x = rng.uniform(0, 1, layers[0])
    currents = rng.normal(0, 0.3, layers[-1])
    return net, u, x, currents


def test_reduced_energy_equals_total_energy_at_the_minimising_parameters():
    net, u, x, currents = setup()
    rng = np.random.default_rng(5)
    states = [rng.uniform(0, 1, 12), rng.uniform(-1, 2, 4)]
    theta = net.theta_at(x, u, states)
    total = net.energy(theta, x, states, currents) + 0.5 * np.sum((u - theta) ** 2 / net.spec.eps_vector())
    assert np.isclose(net.total_energy(x, u, currents, states), total, rtol=1e-13)


def test_relaxation_reaches_a_constrained_stationary_point_of_the_joint_energy():
    net, u, x, currents = setup()
    info = net.relax(x, u, currents)
    assert info.converged
    # θ is at its own optimum given the states
    np.testing.assert_allclose(net.theta, net.theta_at(x, u, net.states), atol=1e-15)
    # every state unit: zero gradient inside its box, gradient pointing outward at a clip
    w, b = split_params(net.spec, net.theta)
    h, o = net.states
    grad_h = h - b[0] - x @ w[0] - w[1] @ o
    grad_o = o - b[1] - h @ w[1] - currents
    for g, s, (lo, hi) in ((grad_h, h, net.spec.hidden_clip), (grad_o, o, net.spec.output_clip)):
        inside = (s > lo) & (s < hi)
        assert np.all(np.abs(g[inside]) < 1e-9)
        assert np.all(g[s <= lo] >= -1e-9) and np.all(g[s >= hi] <= 1e-9)


def test_relaxation_never_raises_the_energy_and_is_a_local_minimum():
    net, u, x, currents = setup(seed=2)
    e0 = net.total_energy(x, u, currents, net.states)
    net.relax(x, u, currents)
    e1 = net.total_energy(x, u, currents, net.states)
    assert e1 <= e0
    rng = np.random.default_rng(0)
    for _ in range(20):  # small feasible perturbations do not lower it
        trial = [
            np.clip(s + rng.normal(0, 1e-4, s.size), lo, hi)
            for s, (lo, hi) in zip(net.states, (net.spec.hidden_clip, net.spec.output_clip))
        ]
        assert net.total_energy(x, u, currents, trial) >= e1 - 1e-12


def test_relaxation_keeps_its_state_between_calls():
    net, u, x, currents = setup()
    net.relax(x, u, currents)
    info = net.relax(x, u, currents)
    assert info.sweeps == 1 and info.converged


def test_block_tridiagonal_elimination_solves_the_assembled_system():
    from sim_backends.hopfield import _block_tridiagonal_solve

    rng = np.random.default_rng(3)
    for sizes in ((7,), (9, 4), (6, 5, 3), (5, 0, 4), (0, 3)):
        curv = rng.uniform(0.5, 1.5, len(sizes))
        coupling = [rng.normal(0, 0.2, (a, b)) for a, b in zip(sizes[:-1], sizes[1:])]
        rhs = [rng.normal(size=n) for n in sizes]
        off = np.concatenate([[0], np.cumsum(sizes)])
        H = np.diag(np.repeat(curv, sizes))
        for l, B in enumerate(coupling):
            H[off[l] : off[l + 1], off[l + 1] : off[l + 2]] = B
            H[off[l + 1] : off[l + 2], off[l] : off[l + 1]] = B.T
        got = np.concatenate(_block_tridiagonal_solve(curv, coupling, rhs))
        np.testing.assert_allclose(got, np.linalg.solve(H, np.concatenate(rhs)), atol=1e-12, err_msg=str(sizes))


def test_relaxation_of_a_deeper_network_is_a_constrained_stationary_point():
    spec = HopfieldSpec((6, 9, 7, 3), (0.02, 0.01, 0.01), (0.004, 0.002, 0.002))
    net = HopfieldNetwork(spec, tolerance=1e-12, max_sweeps=100_000)
    rng = np.random.default_rng(1)
    u = half_xavier(spec, (1.5, 1.5, 1.5), rng)
    x = rng.uniform(0, 1, 6)
    currents = rng.normal(0, 0.3, 3)
    assert net.relax(x, u, currents).converged
    w, b = split_params(spec, net.theta)
    s = net.states
    pre = [x] + s[:-1]
    for l in range(3):
        g = s[l] - b[l] - pre[l] @ w[l] - (w[l + 1] @ s[l + 1] if l < 2 else currents)
        lo, hi = spec.clip_bounds(l + 1)
        inside = (s[l] > lo) & (s[l] < hi)
        assert np.all(np.abs(g[inside]) < 1e-9)
        assert np.all(g[s[l] <= lo] >= -1e-9) and np.all(g[s[l] >= hi] <= 1e-9)
