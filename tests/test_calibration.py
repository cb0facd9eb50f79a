"""Calibration measures, through the instruments, what the twin was built with."""

from __future__ import annotations

import json

import numpy as np
import pytest
from clirunner import run_cli

import aeqlab
from aeqlab.backends import open_backend
from aeqlab.engine.methods.calibration import calibrate
from aeqlab.engine.plan import execute
from aeqlab.protocol import load_protocol, parse_protocol

EXTRA = """  knob_errors: {gain_low: 0.5, gain_high: 2.0, offset: 0.05, seed: 3}
  settling_tau: 2 ms
  adc_noise: 1.0e-3
"""


@pytest.fixture
def twin_protocol(protocols_dir, tmp_path):
    text = (protocols_dir / "iris_hopfield_sim.yaml").read_text()
    # biases coupled stiffly, so that no parameter feels the states: the response is the instrument's alone
    text = text.replace("biases: [0.02, 0.005]}", "biases: [1.0e-9, 1.0e-9]}")
    text = text.replace("  init: {gains: [0.8, 0.6], seed: 0}\n", "  init: {gains: [0.8, 0.6], seed: 0}\n" + EXTRA)
    path = tmp_path / "iris_calibrate.yaml"
    path.write_text(text)
    return path


def test_calibration_recovers_gain_offset_and_time_constant_within_5_percent(twin_protocol):
    protocol, _ = load_protocol(twin_protocol)
    backend = open_backend(protocol, "sim")
    bench = backend.bench
    result = execute(calibrate(bench.setpoints("knobs"), 4, 3), bench)
    dac = bench.instruments["dac"]
    channels = np.arange(4, 135)
    true_gain = 1.0 / dac._scale[channels]  # the twin's knob transfer (calibration scale is 1 V per unit)
    true_offset = dac._offset[channels]
    np.testing.assert_allclose(result.knob_gain, true_gain, rtol=0.05)
    np.testing.assert_allclose(result.knob_offset, true_offset, atol=0.05 * 0.05)
    assert result.settling_tau == pytest.approx(2e-3, rel=0.05)
    assert np.median(result.params_noise) == pytest.approx(1e-3, rel=0.1)
    assert result.settle_time >= 5 * result.settling_tau


def test_calibrate_write_keeps_comments_and_the_file_stays_valid(twin_protocol):
    before = twin_protocol.read_text()
    proc = run_cli("calibrate", str(twin_protocol), "--write", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.splitlines()[-1])
    after = twin_protocol.read_text()
    assert "# The quick demo" in after and "# 1 uA per model unit" in after  # comments kept
    assert after != before
    protocol, _ = load_protocol(twin_protocol)
    sim = protocol.simulation
    assert sim.settling_tau == pytest.approx(summary["settling_tau_s"], rel=1e-6)
    assert sim.knob_errors.gain_low == pytest.approx(summary["knob_gain_min"], rel=1e-5)
    assert sim.adc_noise == pytest.approx(summary["params_noise_median"], rel=1e-6)


NOISY = """  adc_noise: 1.0e-3
  dac_bits: 12
  knob_errors: {gain_low: 0.8, gain_high: 1.2, offset: 0.05, seed: 0}
"""


def _homeostasis(text: str, tolerance: float, averages: int) -> str:
    return text.replace(
        "homeostasis: {tolerance: 1.0e-6, gain: 1.0, max_iterations: 100}",
        f"homeostasis: {{tolerance: {tolerance:.4g}, gain: 1.0, max_iterations: 100, averages: {averages}, "
        "targets: incremental}",
    )


def test_the_recommended_homeostasis_sits_at_the_loops_floor(protocols_dir, tmp_path):
    """Calibrate a noisy 12-bit bench: at the recommended tolerance every phase converges, at half the floor few do."""
    text = (protocols_dir / "iris_hopfield_sim.yaml").read_text()
    text = text.replace("  init: {gains: [0.8, 0.6], seed: 0}\n", "  init: {gains: [0.8, 0.6], seed: 0}\n" + NOISY)
    path = tmp_path / "iris_noisy.yaml"
    path.write_text(_homeostasis(text, 5e-3, 1))
    proc = run_cli("calibrate", str(path), "--sim", "--json")
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout.splitlines()[-1])
    step = 20 / 2**12  # the protocol's ±10 V knob DAC at 1 V per model unit
    assert s["knob_step"] == pytest.approx(step)
    # the floor from what was measured: half a step at the largest gain, the max of 131 averaged noises
    tail = np.sqrt(2 * np.log(2 * 131))
    a = s["recommended_homeostasis_averages"]
    expected = 0.5 * step * s["knob_gain_max"] + s["params_noise_median"] / np.sqrt(a) * tail
    assert s["homeostasis_floor"] == pytest.approx(expected, rel=1e-9)
    assert a == 2  # σ·tail = 3.3e-3 is above half a step at gain ~1.2, 2.4e-3 with two readings is not
    assert s["recommended_homeostasis_tolerance"] == pytest.approx(1.5 * expected, rel=1e-9)

    def unconverged(tolerance: float) -> int:
        protocol = parse_protocol(_homeostasis(text, tolerance, a), str(protocols_dir / "iris_hopfield_sim.yaml"))
        stop_after = 30

        def cb(ev):
            if ev.kind == "sample" and ev.samples_done >= stop_after:
                ev.request_stop()

        with aeqlab.open_bench(protocol) as bench:
            run = aeqlab.train(protocol, bench, out=tmp_path / f"runs{tolerance:g}", callbacks=[cb])
        samples = run.samples()
        assert len(samples) == stop_after
        return int((~samples.converged.astype(bool)).sum())

    assert unconverged(s["recommended_homeostasis_tolerance"]) == 0
    assert unconverged(0.5 * s["homeostasis_floor"]) >= 20  # below the floor the loop runs to its cap


def test_a_dithered_knob_raises_the_floor_by_half_the_dithers_width():
    from aeqlab.engine.methods.calibration import homeostasis_floor

    noise, gain, step = np.full(100, 1e-9), np.array([0.9, 1.2]), 20 / 2**12
    plain = homeostasis_floor(noise, gain, step, 1e-6)
    dithered = homeostasis_floor(noise, gain, step, 1e-6, dither=step)
    assert plain.quantization == pytest.approx(0.5 * step * 1.2)
    assert dithered.quantization == pytest.approx(step * 1.2)  # rounding and dither: up to a whole step
    assert dithered.tolerance == pytest.approx(1.5 * (dithered.quantization + dithered.noise))


DRIFTING = "  drift: 1.0e-3\n"


def test_calibration_measures_each_parameters_drift(protocols_dir):
    """The twin drifts knob i at drift · N(0, 1)_i per second: calibration reads those rates back within 3 %."""
    text = (protocols_dir / "iris_hopfield_sim.yaml").read_text()
    text = text.replace("  init: {gains: [0.8, 0.6], seed: 0}\n", "  init: {gains: [0.8, 0.6], seed: 0}\n" + DRIFTING)
    protocol = parse_protocol(text, str(protocols_dir / "iris_hopfield_sim.yaml"))
    with open_backend(protocol, "sim") as backend:
        bench = backend.bench
        result = execute(calibrate(bench.setpoints("knobs"), 4, 3), bench)
    true = 1.0e-3 * np.abs(np.random.default_rng(protocol.simulation.noise_seed).standard_normal(131))
    assert result.params_drift.shape == (131,)
    np.testing.assert_allclose(result.params_drift, true, rtol=0.03, atol=1e-6)
    # without drift nothing is read as drift
    plain = parse_protocol(text.replace(DRIFTING, ""), str(protocols_dir / "iris_hopfield_sim.yaml"))
    with open_backend(plain, "sim") as backend:
        bench = backend.bench
        assert np.max(execute(calibrate(bench.setpoints("knobs"), 4, 3), bench).params_drift) < 1e-9


def test_the_drift_over_one_iteration_is_part_of_the_floor(protocols_dir, tmp_path):
    """Iris drifting at 1e-3/s, 1 ms settles: below the drift's floor phases run to their cap, at the advice none do."""
    text = (protocols_dir / "iris_hopfield_sim.yaml").read_text()
    text = text.replace("  init: {gains: [0.8, 0.6], seed: 0}\n", "  init: {gains: [0.8, 0.6], seed: 0}\n" + DRIFTING)
    text = text.replace(
        "homeostasis: {tolerance: 1.0e-6, gain: 1.0, max_iterations: 100}",
        "homeostasis: {tolerance: 1.0e-6, gain: 1.0, max_iterations: 100, targets: incremental}",
    )
    path = tmp_path / "iris_drifting.yaml"
    path.write_text(text)
    from aeqlab.cli.train import _calibrate

    protocol = load_protocol(path)[0]
    s = _calibrate(path, protocol, "sim", write=True)
    assert s["homeostasis_iteration_s"] == pytest.approx(1e-3)  # the protocol's default fixed settle
    assert s["homeostasis_floor_drift"] == pytest.approx(s["params_drift_max"] * 1e-3, rel=1e-12)
    assert s["homeostasis_floor_drift"] > 1e-6  # the protocol's tolerance is below it
    assert s["recommended_homeostasis_tolerance"] == pytest.approx(1.5 * s["homeostasis_floor"], rel=1e-9)
    written = load_protocol(path)[0]
    assert written.simulation.drift == pytest.approx(1e-3, rel=0.15)  # from the median rate
    assert written.method.homeostasis.tolerance == pytest.approx(s["recommended_homeostasis_tolerance"], rel=1e-2)

    def unconverged(tolerance: float) -> int:
        old = f"tolerance: {written.method.homeostasis.tolerance:.3g}"
        p = parse_protocol(path.read_text().replace(old, f"tolerance: {tolerance}"), str(path))
        assert p.method.homeostasis.tolerance == tolerance

        def cb(ev):
            if ev.kind == "sample" and ev.samples_done >= 30:
                ev.request_stop()

        with aeqlab.open_bench(p) as bench:
            run = aeqlab.train(p, bench, out=tmp_path / f"runs{tolerance:g}", callbacks=[cb])
        return int((~run.samples().converged.astype(bool)).sum())

    assert unconverged(written.method.homeostasis.tolerance) == 0
    assert unconverged(1e-6) >= 20
