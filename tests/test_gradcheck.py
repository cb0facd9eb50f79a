"""Gradient fidelity: real Aeqprop steps through the simulated instruments vs the oracle."""

from __future__ import annotations

import numpy as np
import pytest

from aeqlab.protocol import load_protocol
from aeqlab.tools.gradcheck import gradcheck
from sim_backends.instruments import SimInstrument


@pytest.fixture(scope="module")
def iris(protocols_dir):
    protocol, _ = load_protocol(protocols_dir / "iris_hopfield_sim.yaml")
    return protocol


def mean_error(protocol, beta, variant, nudging, samples=2):
    return float(
        np.mean(
            [
                s.relative_error
                for s in gradcheck(protocol, beta=beta, variant=variant, nudging=nudging, samples=samples)
            ]
        )
    )


def test_centered_tracking_step_matches_the_finite_epsilon_prediction(iris):
    results = gradcheck(iris, beta=1e-3, variant="centered", nudging="tracking", samples=3)
    for r in results:
        assert r.relative_error <= 1e-3
        assert r.cosine > 0.999999
        assert r.cosine_to_gradient > 0.99  # close to the plain gradient step too, at this small epsilon


@pytest.mark.parametrize(
    ("variant", "order"),
    [("centered", 2), ("optimistic", 1), ("pessimistic", 1)],
)
def test_error_shrinks_with_beta_at_the_order_of_the_variant(iris, variant, order):
    """Halving β divides the error by about 4 for centered and 2 for one-sided (tracking nudging)."""
    e1 = mean_error(iris, 0.02, variant, "tracking")
    e2 = mean_error(iris, 0.01, variant, "tracking")
    assert e1 / e2 == pytest.approx(2**order, rel=0.15)


def test_centered_linearized_step_is_exact_on_a_piecewise_linear_twin(iris):
    """With the second-layer weights held stiff the twin is piecewise linear in the currents, so the
    centered linearized step equals the prediction to numerical precision even at a large β."""
    sim = iris.simulation
    stiff = sim.model_copy(update={"epsilon": sim.epsilon.model_copy(update={"weights": [0.02, 1e-12]})})
    protocol = iris.model_copy(update={"simulation": stiff})
    for r in gradcheck(protocol, beta=0.1, variant="centered", nudging="linearized", samples=2):
        assert r.relative_error < 1e-10


def test_centered_linearized_error_is_second_order_and_small_with_floating_weights(iris):
    """With every weight floating, the ‖h‖²‖o‖² coupling leaves an O(β²) error, far below tracking's."""
    lin1, lin2 = mean_error(iris, 0.02, "centered", "linearized"), mean_error(iris, 0.01, "centered", "linearized")
    assert lin1 / lin2 == pytest.approx(4, rel=0.15)
    assert lin2 < 0.1 * mean_error(iris, 0.01, "centered", "tracking")


def test_gradcheck_steps_go_through_the_simulated_instruments(iris, monkeypatch):
    reads: list[np.ndarray] = []
    writes: list[str] = []
    real_read, real_write, real_currents = SimInstrument.read, SimInstrument.write, SimInstrument.set_currents

    def read(self, channels):
        values = real_read(self, channels)
        if self.name == "adc" and len(values) == 131:
            reads.append(values.copy())
        return values

    def write(self, channels, volts):
        writes.append(f"{self.name}:write:{len(channels)}")
        return real_write(self, channels, volts)

    def set_currents(self, channels, amps):
        writes.append(f"{self.name}:set_currents:{len(channels)}")
        return real_currents(self, channels, amps)

    monkeypatch.setattr(SimInstrument, "read", read)
    monkeypatch.setattr(SimInstrument, "write", write)
    monkeypatch.setattr(SimInstrument, "set_currents", set_currents)
    (result,) = gradcheck(iris, beta=1e-3, variant="centered", nudging="tracking", samples=1)
    assert result.instrument_calls > 10
    assert "dac:write:131" in writes  # homeostasis moved the knobs
    assert "smu:set_currents:3" in writes  # nudging went through the source
    # the measured step is the difference of two parameter readings taken by the ADC
    step_norms = [np.linalg.norm(reads[-1] - r) for r in reads[:-1]]
    assert min(abs(n - result.step_norm) for n in step_norms) < 1e-15


def noisy(protocol, sigma, averages=1):
    """The protocol on a twin with ADC noise σ, with the tolerances such a bench can reach."""
    h, t = protocol.method.homeostasis, protocol.method.tracking
    floor = 6 * sigma / np.sqrt(averages)
    method = protocol.method.model_copy(
        update={
            "homeostasis": h.model_copy(update={"tolerance": max(h.tolerance, floor), "averages": averages}),
            "tracking": t.model_copy(update={"tolerance": max(t.tolerance, 6 * sigma)}),
        }
    )
    sim = protocol.simulation.model_copy(update={"adc_noise": sigma})
    return protocol.model_copy(update={"simulation": sim, "method": method})


def mean_cosine(protocol, samples=4):
    return float(np.mean([s.cosine for s in gradcheck(protocol, beta=0.5, samples=samples)]))


def test_the_cosine_to_the_exact_step_drops_as_adc_noise_rises(iris):
    """Each measured step is two noisy readbacks apart: its cosine to the oracle's step falls with σ."""
    c = [mean_cosine(noisy(iris, sigma)) for sigma in (1e-4, 1e-3, 1e-2)]
    assert c[0] > 0.9  # a step of about 6e-3 over 131 parameters stands well above σ = 1e-4
    assert c[0] - c[1] > 0.3 and c[1] - c[2] > 0.15, c
    # averaging 16 readings per homeostasis step divides the noise by 4: the cosine comes back
    assert mean_cosine(noisy(iris, 1e-3, averages=16)) > c[1] + 0.3


def test_a_noisy_twin_is_checked_with_the_protocols_own_feedback(iris, monkeypatch):
    """The check's exact tolerances are out of a noisy bench's reach: the protocol's are used."""
    import aeqlab.tools.gradcheck as gc

    seen = []
    real = gc.train_sample

    def spy(state, x, y, method, beta):
        seen.append((method.homeostasis.tolerance, method.tracking.tolerance))
        return real(state, x, y, method, beta)

    monkeypatch.setattr(gc, "train_sample", spy)
    protocol = noisy(iris, 1e-3)
    gradcheck(protocol, beta=0.5, samples=1)
    gradcheck(iris, beta=0.5, samples=1)
    assert seen == [(protocol.method.homeostasis.tolerance, protocol.method.tracking.tolerance), (1e-12, 5e-12)]
