"""Real-time pacing: the twin relaxes inside the waits, and the physics is that of an unpaced run."""

from __future__ import annotations

import numpy as np
import pytest

import sim_backends.clock as clock_module
from aeqlab.backends import open_backend
from aeqlab.datasets import load
from aeqlab.engine.plan import execute
from aeqlab.engine.trainer import Trainer
from aeqlab.protocol import load_protocol
from sim_backends.clock import SimulatedClock


def test_work_done_in_a_wait_is_taken_out_of_it(monkeypatch):
    now = [0.0]
    asked: list[float] = []
    monkeypatch.setattr(clock_module.time, "perf_counter", lambda: now[0])
    monkeypatch.setattr(clock_module, "precise_sleep", lambda s: asked.append(s))
    clock = SimulatedClock(realtime=True)
    seen: list[bool] = []

    def work(settling: bool) -> None:
        seen.append(settling)
        now[0] += 3e-4  # the work takes 0.3 ms of wall time

    clock.during_waits(work)
    clock.sleep(1e-3)
    clock.sleep(2e-3, settling=False)
    assert seen == [True, False]
    assert asked == [1e-3 - 3e-4, 2e-3 - 3e-4]
    assert clock.now() == 3e-3  # simulated time is what was asked
    unpaced = SimulatedClock()
    unpaced.during_waits(work)
    unpaced.sleep(1e-3)
    assert seen == [True, False] and unpaced.now() == 1e-3  # nothing is done, nothing sleeps


def train(protocol, realtime: bool, samples: int = 6):
    """Train a few samples; returns θ*, simulated time, relaxations, and how many of them ran inside a wait."""
    data = load(protocol.dataset)
    backend = open_backend(protocol, "sim", realtime=realtime)
    clock, net = backend.twin.clock, backend.twin.net
    waiting, inside = [False], [0]
    sleep, relax = clock.sleep, net.relax

    def watched_sleep(seconds, **kw):
        waiting[0] = True
        try:
            return sleep(seconds, **kw)
        finally:
            waiting[0] = False

    def watched_relax(*args, **kw):
        inside[0] += waiting[0]
        return relax(*args, **kw)

    clock.sleep, net.relax = watched_sleep, watched_relax
    try:
        trainer = Trainer(protocol, backend.bench, data)
        trainer.start()
        targets = data.targets(data.y_train)
        for i in range(samples):
            execute(trainer.sample_plan(data.x_train[i], targets[i], protocol.method.beta), backend.bench)
        return trainer.state.targets.copy(), clock.now(), backend.twin.stats.relaxations, inside[0]
    finally:
        backend.close()


@pytest.mark.parametrize(
    "simulation", [{"latency": 1e-4}, {"latency": 1e-4, "settling_tau": 2e-4}, {"latency": 1e-4, "drift": 1e-2}]
)
def test_pacing_moves_the_relaxations_into_the_waits_and_changes_no_physics(protocols_dir, simulation):
    protocol, _ = load_protocol(protocols_dir / "iris_hopfield_sim.yaml")
    p = protocol.model_copy(update={"simulation": protocol.simulation.model_copy(update=simulation)})
    method = p.method.model_copy(update={"settle_policy": p.method.settle_policy.model_copy(update={"time": 4e-4})})
    p = p.model_copy(update={"method": method})
    unpaced, paced = train(p, realtime=False), train(p, realtime=True)
    np.testing.assert_array_equal(paced[0], unpaced[0])  # the same parameters, bit for bit
    assert paced[1] == unpaced[1]  # the same simulated time
    assert paced[2] == unpaced[2]  # and not one relaxation more or less
    assert unpaced[3] == 0
    if "drift" in simulation:  # a drifting twin relaxes when read, paced or not
        assert paced[3] == 0
    else:  # all but the very first (before any wait) ran inside a wait
        assert paced[3] >= paced[2] - 1
