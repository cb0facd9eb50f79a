"""The exact oracle against finite differences of the twin itself."""

from __future__ import annotations

import numpy as np
import pytest

from sim_backends import oracle
from sim_backends.hopfield import HopfieldNetwork, HopfieldSpec, half_xavier


def make_net(eps_w=(0.02, 0.01), eps_b=(0.004, 0.002), layers=(6, 9, 3), seed=3, tol=1e-14):
    spec = HopfieldSpec(layers, eps_w, eps_b)
    net = HopfieldNetwork(spec, tolerance=tol, max_sweeps=200_000)
    theta = half_xavier(spec, (1.0, 1.0), np.random.default_rng(seed))
    rng = np.random.default_rng(seed + 1)
    theta[-sum(layers[1:]) :] = rng.uniform(0.1, 0.4, sum(layers[1:]))  # biases keep units unclipped
    x = rng.uniform(0.0, 1.0, layers[0])
    return net, theta, x


def relax_fixed(net: HopfieldNetwork, theta: np.ndarray, x: np.ndarray, currents=None) -> list[np.ndarray]:
    """States at fixed parameters: the same network with couplings so stiff that θ cannot move."""
    stiff = HopfieldNetwork(
        HopfieldSpec(net.spec.layers, (1e-15,) * net.spec.n_layers, (1e-15,) * net.spec.n_layers),
        tolerance=1e-15,
        max_sweeps=200_000,
    )
    stiff.states = [s.copy() for s in net.states]
    stiff.relax(x, theta, np.zeros(net.spec.n_outputs) if currents is None else currents)
    return stiff.states


def test_loss_gradient_matches_central_differences():
    net, theta, x = make_net()
    y = np.array([1.0, 0.0, 0.0])
    net.states = relax_fixed(net, theta, x)
    net.theta = theta.copy()
    assert net.free_mask().sum() >= 6, "the check needs unclipped units (clipped ones have zero sensitivity)"
    lin = oracle.linearise(net, x)
    grad = oracle.loss_gradient(lin, net.states[-1], y)

    def loss(th):
        return 0.5 * float(np.sum((relax_fixed(net, th, x)[-1] - y) ** 2))

    h = 1e-6
    picks = np.random.default_rng(0).choice(theta.size, 25, replace=False)
    fd = np.array([(loss(theta + h * e) - loss(theta - h * e)) / (2 * h) for e in np.eye(theta.size)[picks]])
    np.testing.assert_allclose(grad[picks], fd, rtol=1e-5, atol=1e-9)


def test_parameter_velocity_matches_finite_differences_of_the_joint_equilibrium():
    """dθ/dβ at fixed knobs, for the floating parameters, against the twin relaxed at ±h."""
    net, u, x = make_net(eps_w=(0.05, 0.03), eps_b=(0.02, 0.01))
    y = np.array([0.0, 1.0, 0.0])
    zero = np.zeros(3)
    net.relax(x, u, zero)
    start = [s.copy() for s in net.states]
    lin = oracle.linearise(net, x)
    out0 = net.states[-1].copy()
    predicted = oracle.theta_velocity(lin, out0, y)
    force = y - out0  # d(current)/dβ at β = 0, for tracking and linearized nudging alike
    h = 1e-6
    thetas = []
    for sign in (+1, -1):
        net.states = [s.copy() for s in start]
        net.relax(x, u, sign * h * force)
        thetas.append(net.theta.copy())
    fd = (thetas[0] - thetas[1]) / (2 * h)
    np.testing.assert_allclose(predicted, fd, rtol=1e-5, atol=1e-10)
    # and it is not the plain gradient step: the floating parameters amplify it
    plain = -lin.eps * oracle.loss_gradient(lin, out0, y)
    assert np.linalg.norm(predicted - plain) > 1e-3 * np.linalg.norm(plain)


def test_closed_form_gram_matches_dense_jacobian_and_gives_rho():
    net, u, x = make_net(eps_w=(0.05, 0.03), eps_b=(0.02, 0.01))
    net.relax(x, u, np.zeros(3))
    J = oracle.mixed_jacobian(net, x, net.states)
    dense = J.T @ (net.spec.eps_vector()[:, None] * J)
    np.testing.assert_allclose(oracle.gram_closed_form(net, x), dense, atol=1e-14)
    lin = oracle.linearise(net, x)
    assert oracle.fast_stability_ratio(net, x) == pytest.approx(oracle.stability_ratio(lin), rel=1e-10)


def test_rho_is_proportional_to_the_coupling_at_a_given_state():
    net, u, x = make_net()
    net.relax(x, u, np.zeros(3))
    rho = oracle.fast_stability_ratio(net, x)
    softer, _, _ = make_net(eps_w=(0.04, 0.02), eps_b=(0.008, 0.004))
    softer.states, softer.theta = net.states, net.theta
    assert 0 < rho < 1
    assert oracle.fast_stability_ratio(softer, x) == pytest.approx(2 * rho, rel=1e-12)


@pytest.mark.parametrize("sigma", [0.9, 0.98, 1.02, 1.1])
def test_the_state_hessian_fails_when_the_output_layers_coupling_reaches_one_at_any_epsilon(sigma):
    """docs/protocols.md, "When ρ grows whatever ε": with every unit free, the states' own curvature
    (parameters held) is I − [[0, W], [Wᵀ, 0]] between the last two layers, whose smallest eigenvalue
    is 1 − σ_max(W). Past σ_max = 1, ρ is infinite however small ε is."""
    from sim_backends.hopfield_spec import split_params

    u, _, vt = np.linalg.svd(np.random.default_rng(7).normal(size=(12, 2)), full_matrices=False)
    readings = []
    for eps in (1e-6, 0.02):
        spec = HopfieldSpec((2, 12, 2), (eps, eps), (eps, eps))
        net = HopfieldNetwork(spec)
        theta = half_xavier(spec, (3.0, 0.3), np.random.default_rng(0))
        weights, _ = split_params(spec, theta)  # views into theta
        weights[1][:] = u @ np.diag([sigma, 0.3 * sigma]) @ vt
        net.theta = theta
        net.states = [np.full(12, 0.5), np.full(2, 0.25)]  # inside the boxes [0, 1] and [-1, 2]: all free
        assert net.free_mask().all()
        H = oracle.state_hessian(net, theta)
        assert np.linalg.eigvalsh(H)[0] == pytest.approx(1.0 - sigma, abs=1e-12)
        readings.append(oracle.fast_stability_ratio(net, np.array([0.5, -0.5])))
    if sigma < 1:
        assert 0 < readings[0] < 1e-3 < readings[1] < np.inf  # ρ proportional to ε: tiny ε, tiny ρ
        assert readings[1] == pytest.approx(readings[0] * 0.02 / 1e-6, rel=1e-9)
    else:
        assert readings == [np.inf, np.inf]
