"""A simulated backend's snapshot includes its instruments: a noisy run resumes bit for bit."""

from __future__ import annotations

import copy

import numpy as np

from aeqlab.backends import open_backend
from aeqlab.datasets import load
from aeqlab.engine.plan import execute
from aeqlab.engine.trainer import Checkpoint, EpochTotals, Trainer
from aeqlab.journal import pack, unpack
from aeqlab.protocol import load_protocol


def noisy(protocols_dir):
    protocol, _ = load_protocol(protocols_dir / "iris_hopfield_sim.yaml")
    sim = protocol.simulation.model_copy(update={"adc_noise": 1e-3})
    method = protocol.method.model_copy(
        update={"homeostasis": protocol.method.homeostasis.model_copy(update={"tolerance": 5e-3, "averages": 2})}
    )
    return protocol.model_copy(update={"simulation": sim, "method": method})


def run(protocol, backend, trainer, data, samples):
    targets = data.targets(data.y_train)
    for i in samples:
        execute(trainer.sample_plan(data.x_train[i], targets[i], protocol.method.beta), backend.bench)
    return trainer.state.targets.copy()


def test_a_noisy_twin_resumed_from_its_snapshot_goes_on_bit_for_bit(protocols_dir):
    protocol = noisy(protocols_dir)
    assert protocol.simulation.adc_noise > 0
    data = load(protocol.dataset)
    backend = open_backend(protocol, "sim")
    trainer = Trainer(protocol, backend.bench, data)
    trainer.start()
    run(protocol, backend, trainer, data, range(5))
    skeleton, blob = pack(backend.snapshot())  # as the journal stores it
    state = copy.deepcopy(trainer.state)
    straight = run(protocol, backend, trainer, data, range(5, 10))
    backend.close()

    resumed_backend = open_backend(protocol, "sim")
    resumed_backend.restore(unpack(skeleton, blob))
    resumed = Trainer(protocol, resumed_backend.bench, data)
    resumed.resume(
        Checkpoint(epoch=1, done=5, samples_done=5, beta=1.0, rng_state=None, totals=EpochTotals(), state=state),
        rehome=False,
    )
    again = run(protocol, resumed_backend, resumed, data, range(5, 10))
    resumed_backend.close()
    np.testing.assert_array_equal(again, straight)
