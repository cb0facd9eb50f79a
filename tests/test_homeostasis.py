"""Homeostasis: a feedback loop on measured parameters, told nothing about the bench."""

from __future__ import annotations

import numpy as np
import pytest

from aeqlab.backends import open_backend
from aeqlab.datasets import load
from aeqlab.engine.methods.aeqprop import train_sample
from aeqlab.engine.plan import execute
from aeqlab.engine.trainer import Trainer
from aeqlab.protocol import load_protocol


def with_changes(protocol, *, method=None, simulation=None, knobs_limits=None):
    update = {}
    if method:
        update["method"] = protocol.method.model_copy(update=method)
    if simulation:
        update["simulation"] = protocol.simulation.model_copy(update=simulation)
    if knobs_limits:
        knobs = protocol.roles.knobs.model_copy(update={"limits": knobs_limits})
        update["roles"] = protocol.roles.model_copy(update={"knobs": knobs})
    return protocol.model_copy(update=update)


def run_samples(protocol, n):
    backend = open_backend(protocol, "sim")
    data = load(protocol.dataset)
    trainer = Trainer(protocol, backend.bench, data)
    trainer.start()
    targets = data.targets(data.y_train)
    records = [
        execute(
            train_sample(trainer.state, data.x_train[i], targets[i], protocol.method, protocol.method.beta),
            backend.bench,
        )
        for i in range(n)
    ]
    return records, trainer, backend


@pytest.fixture(scope="module")
def iris(protocols_dir):
    return load_protocol(protocols_dir / "iris_hopfield_sim.yaml")[0]


def test_homeostasis_converges_with_unknown_gains_and_offsets(iris):
    errors = iris.simulation.knob_errors.model_copy(
        update={"gain_low": 0.3, "gain_high": 3.0, "offset": 0.05, "seed": 1}
    )
    protocol = with_changes(iris, simulation={"knob_errors": errors})
    records, trainer, backend = run_samples(protocol, 120)
    tol = protocol.method.homeostasis.tolerance
    for rec in records:
        assert rec.free.converged and rec.homeostatic.converged
        assert rec.free.residual <= tol and rec.homeostatic.residual <= tol
    # the engine was told nothing: its calibration is the nominal one ...
    assert protocol.roles.knobs.calibration.scale == 1.0
    # ... and the gains it measured are the twin's true ones, for knobs that moved
    true_scale = backend.bench.instruments["dac"]._scale[4:135]
    true_gain = protocol.roles.knobs.calibration.scale / true_scale
    learnt = trainer.state.memory.knob_gains.gain
    moved = learnt != 1.0
    assert moved.sum() > 50
    np.testing.assert_allclose(learnt[moved], true_gain[moved], rtol=0.15)  # coupling blurs a secant a little


def test_every_sample_of_the_demo_converges(iris):
    records, _, _ = run_samples(iris, 120)
    assert all(r.converged for r in records)
    assert max(r.homeostasis_iterations for r in records) < 40


def test_non_convergence_is_reported_not_silent(iris):
    method = {"homeostasis": iris.method.homeostasis.model_copy(update={"max_iterations": 1})}
    records, _, _ = run_samples(with_changes(iris, method=method), 5)
    assert not any(r.converged for r in records)
    assert all(r.free.residual > iris.method.homeostasis.tolerance for r in records)


def test_a_knob_that_would_pass_its_limit_is_held_there_and_flagged(iris):
    from aeqlab.protocol import Limits

    records, trainer, backend = run_samples(with_changes(iris, knobs_limits=Limits(low=-0.1, high=0.1)), 10)
    assert any(r.saturated for r in records)
    setpoints = backend.bench.setpoints("knobs")
    assert setpoints.max() <= 0.1 + 1e-12 and setpoints.min() >= -0.1 - 1e-12


def test_averaged_readings_let_homeostasis_converge_on_noisy_readbacks(iris):
    """Each step copies the reading noise into the knobs; averaging four readings halves it."""
    noisy = with_changes(iris, simulation={"adc_noise": 2e-3})
    tight = {"homeostasis": iris.method.homeostasis.model_copy(update={"tolerance": 5e-3, "max_iterations": 30})}
    single, _, _ = run_samples(with_changes(noisy, method=tight), 20)
    averaged_method = {"homeostasis": tight["homeostasis"].model_copy(update={"averages": 8})}
    averaged, _, _ = run_samples(with_changes(noisy, method=averaged_method), 20)
    assert sum(r.homeostatic.converged for r in averaged) > sum(r.homeostatic.converged for r in single)
    assert all(r.homeostatic.converged for r in averaged)


def test_the_first_tracking_current_solves_tracking_for_a_linear_output():
    from aeqlab.engine.methods.aeqprop import tracking_guess
    from aeqlab.engine.methods.phases import FeedbackMemory

    rng = np.random.default_rng(0)
    chi = np.eye(3) * 0.9 + rng.normal(0, 0.05, (3, 3))
    y0, i0, y = rng.normal(0, 0.3, 3), rng.normal(0, 0.1, 3), np.array([1.0, -1.0, -1.0])

    def output(current):  # the outputs respond linearly to the currents
        return y0 + chi @ (current - i0)

    memory = FeedbackMemory(knob_gains=None, susceptibility=chi, knob_low=None, knob_high=None)
    for beta in (-0.5, 0.5, 1.0):
        guess = tracking_guess(memory, beta, y, output(i0), i0)
        np.testing.assert_allclose(guess, beta * (y - output(guess)), atol=1e-12)
    # near 1 + βχ = 0 the linear model asks for huge currents: the correction stays within |β|
    memory.susceptibility = np.eye(3) * 1.999
    beta = -0.5
    guess = tracking_guess(memory, beta, y, y0, np.zeros(3))
    assert np.max(np.abs(guess - beta * (y - y0))) <= abs(beta) + 1e-12


def test_tracking_phases_need_fewer_steps_with_the_learnt_susceptibility(protocols_dir):
    protocol = load_protocol(protocols_dir / "digits_hopfield_sim.yaml")[0]
    records, trainer, backend = run_samples(protocol, 30)
    backend.close()
    learnt = [r.homeostatic.iterations + r.clamped.iterations for r in records[10:]]
    # the engine's guess from the susceptibility it learnt; β(y − ŷ) alone needs more steps
    import aeqlab.engine.methods.aeqprop as aeqprop

    plain = aeqprop.tracking_guess
    try:
        aeqprop.tracking_guess = lambda memory, beta, y, outputs, current: beta * (y - outputs)
        records2, _, backend2 = run_samples(protocol, 30)
        backend2.close()
    finally:
        aeqprop.tracking_guess = plain
    naive = [r.homeostatic.iterations + r.clamped.iterations for r in records2[10:]]
    assert np.mean(learnt) < np.mean(naive) - 1.0


def test_holding_and_tracking_together_converge_in_few_steps_where_the_loops_couple(protocols_dir):
    """At ε × 1.5 on digits, moving the knobs moves the outputs and moving the currents moves θ.

    Two separate loops (knobs by Anderson, currents by Broyden) needed 8.1 iterations a
    homeostatic phase over these 60 samples, up to 24; one mixing over (u, I) needs about 5.
    """
    protocol = load_protocol(protocols_dir / "digits_hopfield_sim.yaml")[0]
    sim = protocol.simulation
    eps = sim.epsilon.model_copy(update={"weights": [0.015, 0.0075]})  # ε × 1.5 of the protocol before it
    protocol = with_changes(protocol, simulation={"epsilon": eps})
    records, _, backend = run_samples(protocol, 60)
    backend.close()
    h, t = protocol.method.homeostasis, protocol.method.tracking
    b1 = -protocol.method.beta / 2
    data = load(protocol.dataset)
    for r, y in zip(records, data.targets(data.y_train)):
        phase = r.homeostatic
        assert phase.converged
        # both conditions, from the phase's own last readings: θ at its targets, I = β₁(y − ŷ)
        assert phase.residual <= h.tolerance
        assert np.max(np.abs(phase.currents - b1 * (y - phase.outputs))) <= t.tolerance
    iterations = [r.homeostatic.iterations for r in records]
    assert np.mean(iterations) <= 6.5 and max(iterations) <= 12


def test_a_joint_step_moves_each_current_by_at_most_beta():
    from aeqlab.engine.feedback import Anderson, SecantGains
    from aeqlab.engine.methods.phases import FeedbackMemory, Nudge, joint_step
    from aeqlab.protocol import Homeostasis

    n, m, beta = 6, 3, 0.5
    memory = FeedbackMemory(SecantGains(n), np.zeros((m, m)), np.full(n, -1.0), np.full(n, 1.0))
    nudge = Nudge(beta, np.array([1.0, 0.0, 0.0]), np.zeros(m), True)
    u, current = np.zeros(n), np.zeros(m)
    outputs = np.array([-5.0, 3.0, 0.0])  # far from the target: the plain step would be 3 and -1.5
    z_u, i_new = joint_step(Anderson(5), np.eye(m), u, current, np.full(n, 1e-3), outputs, nudge, Homeostasis(), memory)
    assert np.max(np.abs(i_new - current)) <= beta + 1e-15
    assert np.allclose(z_u, 1e-3)  # the knobs: a diagonal Newton step at unit gains
    assert i_new[0] > 0 > i_new[1]  # toward β(y − ŷ)


def test_a_tracking_current_past_the_nudge_window_is_held_at_its_edge_and_flagged(protocols_dir):
    protocol = load_protocol(protocols_dir / "digits_hopfield_sim.yaml")[0]
    records, trainer, backend = run_samples(protocol, 1)
    backend.close()
    low, high = trainer.state.memory.nudge_bounds
    # roles.nudges.limits are ±1e-5 A, 1 µA a model unit: ±10
    assert np.allclose(low, -10.0) and np.allclose(high, 10.0)
    held, flagged = trainer.state.memory.bound_currents(np.array([0.5, -12.0, 30.0, 0, 0, 0, 0, 0, 0, 0]))
    assert flagged and held[0] == 0.5 and held[1] == low[1] and held[2] == high[2]
    same, flagged = trainer.state.memory.bound_currents(np.full(10, 9.5))
    assert not flagged and (same == 9.5).all()
