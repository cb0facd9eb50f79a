"""The spring network: a physical system of another kind, with the same oracle contract."""

from __future__ import annotations

import numpy as np
import pytest

from sim_backends.spring import SpringNetwork, triangular_network


@pytest.fixture
def net():
    spec = triangular_network(4, 4, eps=0.05, seed=1, inputs=2, outputs=2)
    return SpringNetwork(spec, tolerance=1e-12)


def test_rest_state_is_an_equilibrium_and_the_network_is_rigid(net):
    u = net.spec.rest_lengths()
    info = net.relax(np.zeros(2), u, np.zeros(2))
    assert info.converged and info.sweeps == 1
    np.testing.assert_allclose(net.r, net.spec.positions, atol=1e-12)
    np.testing.assert_allclose(net.theta, u, atol=1e-12)


def test_relaxation_balances_forces_and_rest_lengths_sit_at_their_optimum(net):
    u = net.spec.rest_lengths() * (1 + 0.05 * np.random.default_rng(0).uniform(-1, 1, net.spec.n_params))
    info = net.relax(np.array([0.1, -0.05]), u, np.array([0.02, -0.01]))
    assert info.converged
    k, eps = net.spec.stiffness, net.spec.eps
    d = net.distances()
    # dE/dℓ = −k(d − ℓ) + (ℓ − u)/ε = 0 for every edge
    np.testing.assert_allclose(-k * (d - net.theta) + (net.theta - u) / eps, 0, atol=1e-10)


def test_outputs_respond_nonlinearly_to_inputs(net):
    u = net.spec.rest_lengths()
    outs = []
    for a in (-0.2, 0.0, 0.2):
        net.relax(np.array([a, 0.0]), u, np.zeros(2))
        outs.append(net.outputs.copy())
    curvature = outs[0] + outs[2] - 2 * outs[1]
    assert np.max(np.abs(curvature)) > 1e-4  # geometric nonlinearity


def test_linear_response_matches_finite_differences(net):
    rng = np.random.default_rng(3)
    u = net.spec.rest_lengths() * (1 + 0.03 * rng.uniform(-1, 1, net.spec.n_params))
    x = np.array([0.08, -0.04])
    y = np.array([1.0, 2.0])
    net.relax(x, u, np.zeros(2))
    start = net.r.copy()
    out0 = net.outputs.copy()
    dtheta, grad, eps = net.linear_response(x, out0, y)
    h = 1e-6
    thetas = []
    for sign in (+1, -1):
        net.r = start.copy()
        net.relax(x, u, sign * h * (y - out0))
        thetas.append(net.theta.copy())
    np.testing.assert_allclose(dtheta, (thetas[0] - thetas[1]) / (2 * h), rtol=1e-5, atol=1e-11)

    # ∇L at fixed rest lengths: springs so stiffly coupled that ℓ cannot move
    net.r = start.copy()
    theta = net.theta.copy()
    stiff = SpringNetwork(type(net.spec)(**{**net.spec.__dict__, "eps": 1e-12}), tolerance=1e-13)

    def loss(th):
        stiff.r = start.copy()
        stiff.relax(x, th, np.zeros(2))
        return 0.5 * float(np.sum((stiff.outputs - y) ** 2))

    picks = rng.choice(theta.size, 12, replace=False)
    fd = [(loss(theta + h * e) - loss(theta - h * e)) / (2 * h) for e in np.eye(theta.size)[picks]]
    np.testing.assert_allclose(grad[picks], fd, rtol=1e-4, atol=1e-9)
