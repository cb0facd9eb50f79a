"""Coarse knob DACs: incremental targets and dithered knob setpoints (method.homeostasis)."""

from __future__ import annotations

import numpy as np
import pytest

import aeqlab
from aeqlab.backends import open_backend
from aeqlab.datasets import load
from aeqlab.engine.checkpoint import from_parts, to_parts
from aeqlab.engine.methods.aeqprop import train_sample
from aeqlab.engine.methods.phases import dithered, run_phase
from aeqlab.engine.plan import Read, Set, Settle, execute
from aeqlab.engine.records import EpochTotals
from aeqlab.engine.trainer import Trainer
from aeqlab.protocol import load_protocol
from tests.test_homeostasis import with_changes

BITS = 10
STEP = 20.0 / 2**BITS  # one step of a 10-bit DAC over ±10 V, in knob model units (1 V per unit)


@pytest.fixture(scope="module")
def iris10(protocols_dir):
    return load_protocol(protocols_dir / "iris_10bit_sim.yaml")[0]


def homeostasis(protocol, **fields):
    return with_changes(protocol, method={"homeostasis": protocol.method.homeostasis.model_copy(update=fields)})


def test_the_demo_protocol_has_coarse_knob_dacs_and_both_mitigations(iris10):
    h = iris10.method.homeostasis
    assert iris10.simulation.dac_bits == BITS
    assert iris10.instruments["dac"].voltage_range == (-10.0, 10.0)
    assert h.targets == "incremental" and h.dither == pytest.approx(STEP)


# ------------------------------------------------------------------ incremental targets


def samples(protocol, n, **fields):
    """n training samples on a fresh twin; the records, the trainer and the first targets (θ as found)."""
    protocol = homeostasis(protocol, **fields)
    backend = open_backend(protocol, "sim")
    data = load(protocol.dataset)
    trainer = Trainer(protocol, backend.bench, data)
    trainer.start()
    first = trainer.state.targets.copy()
    y = data.targets(data.y_train)
    m = protocol.method
    records = [execute(train_sample(trainer.state, data.x_train[i], y[i], m, m.beta), backend.bench) for i in range(n)]
    return records, trainer, first


def test_incremental_targets_are_the_first_reading_plus_the_measured_steps(iris10):
    records, trainer, first = samples(iris10, 40, dither=0.0)
    steps = np.sum([r.step for r in records], axis=0)
    np.testing.assert_allclose(trainer.state.targets, first + steps, rtol=0, atol=1e-12)
    for r in records:  # each step is the difference of two readings at the same knobs
        np.testing.assert_array_equal(r.step, r.clamped.theta - r.homeostatic.theta)
        np.testing.assert_array_equal(r.clamped.knobs, r.homeostatic.knobs)
    # a step is far below one DAC step; together they come to more than one
    assert np.median(np.abs(records[-1].step)) < 0.1 * STEP
    assert np.max(np.abs(steps)) > STEP


def test_incremental_targets_move_the_physical_parameters_where_measured_targets_freeze(iris10):
    """With measured targets a step below a DAC step is lost; incremental ones carry the steps to θ."""
    tol = iris10.method.homeostasis.tolerance
    follows = {}
    for mode in ("measured", "incremental"):
        records, trainer, first = samples(iris10, 120, dither=0.0, targets=mode)
        steps = np.sum([r.step for r in records[:-1]], axis=0)
        held = records[-1].homeostatic  # the physical θ of the last sample, held before its step
        moved = held.theta - first
        follows[mode] = float(np.corrcoef(moved, steps)[0, 1])
        if mode == "incremental":  # held within the tolerance of the targets, which are the summed steps
            assert held.converged
            assert np.max(np.abs(held.theta - (first + steps))) <= tol
    assert follows["incremental"] > 0.9
    assert follows["measured"] < 0.5


# ------------------------------------------------------------------ dither


def test_dither_is_uniform_over_one_width_and_reproducible(iris10):
    _, trainer, _ = samples(iris10, 0)
    mem = trainer.state.memory
    draws = np.stack([mem.dither(1000, STEP) for _ in range(20)])
    assert mem.dither_draws == 20
    assert np.all(np.abs(draws) <= STEP / 2)
    assert abs(draws.mean()) < 4 * STEP / np.sqrt(12 * draws.size)
    assert draws.var() == pytest.approx(STEP**2 / 12, rel=0.05)
    mem.dither_draws = 3
    np.testing.assert_array_equal(mem.dither(1000, STEP), draws[3])  # (seed, count) says which draw it is
    mem.dither_seed += 1
    mem.dither_draws = 3
    assert not np.array_equal(mem.dither(1000, STEP), draws[3])


def test_dithered_writes_through_a_coarse_dac_average_to_the_setpoint(iris10):
    backend = open_backend(iris10, "sim")
    _, trainer, _ = samples(iris10, 0)
    mem = trainer.state.memory
    n = backend.bench.roles["knobs"].size
    u = np.random.default_rng(7).uniform(-1.0, 1.0, n)  # setpoints between the DAC's steps
    held = []
    for _ in range(400):
        backend.bench.write("knobs", dithered(u, mem.dither(n, STEP), mem))
        held.append(backend.twin.ports["knobs"].copy())
    held = np.array(held)
    assert np.all(np.abs(np.round(held / STEP) * STEP - held) < 1e-9)  # every write was rounded by the DAC
    sigma_mean = STEP / np.sqrt(12 * len(held))  # the rounding error of a dithered write is uniform over a step
    assert np.max(np.abs(held.mean(axis=0) - u)) < 5 * sigma_mean
    # without the dither every write lands on the same step: the error does not average out
    backend.bench.write("knobs", u)
    plain = backend.twin.ports["knobs"].copy()
    assert np.mean(np.abs(plain - u)) > 10 * sigma_mean
    backend.close()


def test_a_held_phase_writes_its_setpoints_plus_one_dither_drawn_for_the_phase(iris10):
    _, trainer, _ = samples(iris10, 0)
    mem = trainer.state.memory
    n = mem.knob_low.size
    u = np.linspace(-0.5, 0.5, n)
    targets = np.zeros(n)
    h = iris10.method.homeostasis
    expected = mem.dither(n, h.dither)
    mem.dither_draws -= 1  # the phase draws this very vector
    plan = run_phase(mem, u, targets, None, h, iris10.method.tracking, iris10.method.settle_policy)
    writes, msg = [], next(plan)
    try:
        while True:
            if isinstance(msg, Read):  # a bench with unit gains and an offset of 0.5 over the targets
                msg = plan.send(targets + (writes[-1] - expected - u) + 0.5 if msg.role == "params" else np.zeros(3))
                continue
            if isinstance(msg, Set) and msg.role == "knobs":
                writes.append(msg.values.copy())
            else:
                assert isinstance(msg, Settle)
            msg = plan.send(None)
    except StopIteration as stop:
        result = stop.value
    assert mem.dither_draws == 1
    assert len(writes) == 2 and result.converged
    np.testing.assert_allclose(writes[0], u + expected, atol=1e-15)  # before the first reading
    np.testing.assert_allclose(writes[1], u - 0.5 + expected, atol=1e-12)  # the correction, with the same dither
    np.testing.assert_allclose(result.knobs, u - 0.5, atol=1e-12)  # the state keeps u, not u + d


def test_the_dither_count_survives_a_checkpoint(iris10):
    _, trainer, _ = samples(iris10, 3)
    mem = trainer.state.memory
    assert mem.dither_draws == 6  # a free and a homeostatic phase hold θ in every sample
    cp = trainer.checkpoint(1, 3, 0.5, {}, EpochTotals())
    back = from_parts(*to_parts(cp), mem.knob_low, mem.knob_high).state.memory
    assert (back.dither_seed, back.dither_draws) == (mem.dither_seed, mem.dither_draws)
    np.testing.assert_array_equal(back.dither(5, STEP), mem.dither(5, STEP))


# ------------------------------------------------------------------ learning


def short_run(protocol, tmp_path, name, epochs=3):
    with aeqlab.open_bench(protocol, backend="sim") as bench:
        run = aeqlab.train(protocol, bench, epochs=epochs, seed=0, out=tmp_path / name)
    return run.summary["test_accuracy"]


@pytest.mark.parametrize(
    "off, on",
    [
        ({"targets": "measured", "dither": 0.0}, {"targets": "incremental", "dither": 0.0}),
        ({"targets": "measured", "dither": 0.0}, {"targets": "measured", "dither": STEP}),
    ],
    ids=["incremental", "dither"],
)
def test_a_short_iris_run_on_10_bit_knob_dacs_learns_better_with_the_mitigation(iris10, tmp_path, off, on):
    without = short_run(homeostasis(iris10, **off), tmp_path, "off")
    with_it = short_run(homeostasis(iris10, **on), tmp_path, "on")
    assert without <= 0.5  # the updates freeze: about chance on three classes
    assert with_it >= without + 0.25


def test_a_dithered_twin_resumed_from_its_checkpoint_goes_on_bit_for_bit(iris10):
    """The dither draws continue where they were: the journal's checkpoint keeps their count."""
    data = load(iris10.dataset)
    y = data.targets(data.y_train)

    def go(trainer, backend, samples):
        for i in samples:
            execute(trainer.sample_plan(data.x_train[i], y[i], iris10.method.beta), backend.bench)
        return trainer.state.targets.copy()

    backend = open_backend(iris10, "sim")
    trainer = Trainer(iris10, backend.bench, data)
    trainer.start()
    go(trainer, backend, range(4))
    snapshot = backend.snapshot()
    parts = to_parts(trainer.checkpoint(1, 4, iris10.method.beta, {}, EpochTotals()))
    straight = go(trainer, backend, range(4, 8))
    backend.close()

    again_backend = open_backend(iris10, "sim")
    again_backend.restore(snapshot)
    mem = trainer.state.memory
    resumed = Trainer(iris10, again_backend.bench, data)
    resumed.resume(from_parts(*parts, mem.knob_low, mem.knob_high), rehome=False)
    again = go(resumed, again_backend, range(4, 8))
    again_backend.close()
    np.testing.assert_array_equal(again, straight)
    assert resumed.state.memory.dither_draws == mem.dither_draws == 16
