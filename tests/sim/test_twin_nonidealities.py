"""Bench non-idealities of the twin, and the engine coping with them."""

from __future__ import annotations

import numpy as np
import pytest

from aeqlab.backends import open_backend
from aeqlab.engine.methods.settling import settle_and_read
from aeqlab.engine.plan import execute
from aeqlab.errors import InstrumentError
from aeqlab.protocol import SettleFixed, SettleUntilStable, load_protocol


def twin_bench(protocols_dir, **simulation):
    protocol, _ = load_protocol(protocols_dir / "iris_hopfield_sim.yaml")
    sim = protocol.simulation.model_copy(update=simulation)
    return open_backend(protocol.model_copy(update={"simulation": sim}), "sim")


def test_adc_noise_has_the_configured_sigma(protocols_dir):
    bench = twin_bench(protocols_dir, adc_noise=2e-3).bench
    reads = np.array([bench.read("params") for _ in range(400)])
    assert np.std(reads, axis=0, ddof=1).mean() == pytest.approx(2e-3, rel=0.05)


def test_dac_values_are_rounded_to_the_dac_step(protocols_dir):
    backend = twin_bench(protocols_dir, dac_bits=8)
    step = 20.0 / 2**8  # the sim DAC spans [-10, 10] V
    backend.bench.write("inputs", np.array([0.1, 0.2, 0.3, 0.4]))
    x = backend.twin.ports["inputs"]
    np.testing.assert_allclose(x, np.round(np.array([0.1, 0.2, 0.3, 0.4]) / step) * step)


def test_latency_advances_the_simulated_clock(protocols_dir):
    backend = twin_bench(protocols_dir, latency=1e-3)
    t0 = backend.twin.clock.now()
    for _ in range(5):
        backend.bench.read("outputs")
    assert backend.twin.clock.now() - t0 == pytest.approx(5e-3)


def test_injected_timeouts_raise_instrument_errors(protocols_dir):
    bench = twin_bench(protocols_dir, timeout_every=3).bench
    with pytest.raises(InstrumentError, match="timed out"):
        for _ in range(3):
            bench.read("outputs")


def test_a_reading_before_settling_is_wrong_and_until_stable_waits_long_enough(protocols_dir):
    backend = twin_bench(protocols_dir, settling_tau=5e-3)
    bench = backend.bench
    bench.read("params")
    bench.write("inputs", np.array([1.0, 1.0, 1.0, 1.0]))
    _, early, _ = execute(settle_and_read(SettleFixed(time=1e-3)), bench)
    final = backend.twin.net.outputs.copy()  # the equilibrium the twin is heading for
    assert np.max(np.abs(early - final)) > 0.1 * np.max(np.abs(final))
    bench.write("inputs", np.array([-1.0, 0.0, 1.0, 0.5]))
    policy = SettleUntilStable(mode="until_stable", tolerance=1e-6, timeout=1.0, interval=2e-3)
    theta, outputs, settled = execute(settle_and_read(policy), bench)
    assert settled
    np.testing.assert_allclose(outputs, backend.twin.net.outputs, atol=1e-5)


def test_a_disconnected_instrument_fails_every_call_and_sources_still_go_safe(protocols_dir):
    backend = twin_bench(protocols_dir, disconnect_after=4)
    bench = backend.bench
    with pytest.raises(InstrumentError, match="disconnected"):
        for _ in range(5):
            bench.read("outputs")
    assert bench.safe_state() == []  # safe_state is not refused by a simulated disconnect


def test_a_stuck_readback_keeps_its_first_value(protocols_dir):
    backend = twin_bench(protocols_dir, stuck_params=[3])
    bench = backend.bench
    first = bench.read("params")
    bench.write("knobs", bench.setpoints("knobs") + 0.05)
    second = bench.read("params")
    assert second[3] == first[3]
    assert np.all(second[[0, 1, 2, 4]] != first[[0, 1, 2, 4]])
