"""Learning on an imperfect bench: noisy readings, coarse DACs, knob gain errors and drift together."""

from __future__ import annotations

import numpy as np
import pytest

from aeqlab.backends import open_backend
from aeqlab.datasets import load
from aeqlab.engine.methods.aeqprop import train_sample
from aeqlab.engine.plan import execute
from aeqlab.engine.trainer import Trainer
from aeqlab.protocol import load_protocol
from tests.test_homeostasis import with_changes

STEP12 = 20.0 / 2**12  # one step of a 12-bit DAC over ±10 V, in knob model units (1 V per unit)


def test_the_realistic_digits_protocol_has_every_non_ideality_and_the_mitigations(protocols_dir):
    p, _ = load_protocol(protocols_dir / "digits_bench_realistic_sim.yaml")
    sim, h = p.simulation, p.method.homeostasis
    assert sim.layers == [64, 128, 10] and sim.adc_noise == 1e-3 and sim.dac_bits == 12 and sim.drift > 0
    assert (sim.knob_errors.gain_low, sim.knob_errors.gain_high) == (0.8, 1.2) and sim.knob_errors.offset > 0
    assert h.targets == "incremental" and h.dither == pytest.approx(STEP12) and h.averages > 1
    # the loop's floor: half a DAC step at the largest gain, and the averaged noise's max-norm
    sigma = sim.adc_noise / np.sqrt(h.averages)
    floor = 0.5 * STEP12 * sim.knob_errors.gain_high + sigma * np.sqrt(2 * np.log(2 * p.roles.params.size))
    assert floor < h.tolerance < 2 * floor


def realistic_iris(protocols_dir, *, averages=4, targets="incremental", dither=STEP12, drift=1e-4):
    """Iris on the realistic bench of the digits protocol (σ 1e-3, 12 bits, ±20 % gains, drift)."""
    p, _ = load_protocol(protocols_dir / "iris_hopfield_sim.yaml")
    errors = p.simulation.knob_errors.model_copy(update={"gain_low": 0.8, "gain_high": 1.2, "offset": 0.05})
    sim = {"adc_noise": 1e-3, "dac_bits": 12, "knob_errors": errors, "drift": drift}
    h = p.method.homeostasis.model_copy(
        update={"tolerance": 7.5e-3, "averages": averages, "targets": targets, "dither": dither}
    )
    method = {"homeostasis": h, "tracking": p.method.tracking.model_copy(update={"tolerance": 7.2e-4})}
    return with_changes(p, simulation=sim, method=method)


def train(protocol, epochs):
    """Train on a fresh twin; the test accuracy before and after, and the twin's simulated time."""
    backend = open_backend(protocol, "sim")
    data = load(protocol.dataset)
    trainer = Trainer(protocol, backend.bench, data)
    trainer.start()
    before = trainer.evaluate(data.x_test, data.y_test).accuracy
    y = data.targets(data.y_train)
    m = protocol.method
    for e in range(epochs):
        order = np.random.default_rng(e).permutation(len(y))
        for i in order:
            execute(train_sample(trainer.state, data.x_train[i], y[i], m, m.beta * 0.99**e), backend.bench)
    after = trainer.evaluate(data.x_test, data.y_test).accuracy
    backend.close()
    return before, after


def test_a_short_run_on_the_realistic_bench_learns(protocols_dir):
    before, after = train(realistic_iris(protocols_dir), epochs=2)
    assert before < 0.5 and after >= 0.8, (before, after)
