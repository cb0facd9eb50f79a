"""A checkpoint carries everything the feedback loops learnt, the adaptive settle's observations included."""

from __future__ import annotations

import numpy as np

from aeqlab.engine.feedback import SecantGains
from aeqlab.engine.methods.aeqprop import EngineState
from aeqlab.engine.methods.phases import FeedbackMemory
from aeqlab.engine.trainer import Checkpoint, EpochTotals
from aeqlab.runs.journaling import pack_checkpoint, unpack_checkpoint


def checkpoint(settle_seen: bool) -> Checkpoint:
    rng = np.random.default_rng(0)
    low, high = np.full(6, -5.0), np.full(6, 5.0)
    memory = FeedbackMemory(SecantGains(6, 1.0, min_step=1e-3), rng.normal(size=(2, 2)), low, high)
    memory.knob_gains.gain = rng.uniform(0.5, 2.0, 6)
    if settle_seen:
        memory.settle.observe(("hold", 0), rng.normal(size=6), rng.normal(size=2))
        memory.settle.observe(("hold", 0), rng.normal(size=6), rng.normal(size=2))
        memory.settle.observe(("hold+track", 2), rng.normal(size=6), rng.normal(size=2), residual=0.5)
    state = EngineState(targets=rng.normal(size=6), knobs=rng.normal(size=6), memory=memory)
    return Checkpoint(
        epoch=2, done=7, samples_done=31, beta=0.9, rng_state={"seed": 1}, totals=EpochTotals(), state=state
    )


def test_the_adaptive_settle_memory_survives_a_checkpoint():
    cp = checkpoint(settle_seen=True)
    back = unpack_checkpoint(*pack_checkpoint(cp), cp.state.memory.knob_low, cp.state.memory.knob_high)
    mine, theirs = cp.state.memory.settle, back.state.memory.settle
    assert theirs.seen.keys() == mine.seen.keys() and len(mine.seen) == 2
    for site in mine.seen:
        assert list(theirs.seen[site]) == list(mine.seen[site])
        assert theirs.expect(site, 0.25) == mine.expect(site, 0.25)
    np.testing.assert_array_equal(theirs.theta, mine.theta)
    np.testing.assert_array_equal(theirs.outputs, mine.outputs)
    np.testing.assert_array_equal(back.state.memory.susceptibility, cp.state.memory.susceptibility)


def test_a_checkpoint_without_settle_observations_restores_an_empty_memory():
    cp = checkpoint(settle_seen=False)
    back = unpack_checkpoint(*pack_checkpoint(cp), cp.state.memory.knob_low, cp.state.memory.knob_high)
    assert not back.state.memory.settle.seen and back.state.memory.settle.theta is None
