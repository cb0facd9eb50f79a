"""Every value is checked against its limits before any instrument sees it."""

from __future__ import annotations

import numpy as np
import pytest

from aeqlab.backends import open_backend
from aeqlab.errors import ComplianceTripped, LimitError
from aeqlab.protocol import load_protocol
from drivers.limits import LimitTable


@pytest.fixture
def backend(protocols_dir):
    protocol, _ = load_protocol(protocols_dir / "iris_hopfield_sim.yaml")
    return open_backend(protocol, "sim")


def snapshot(backend):
    return {name: (inst.calls, inst.output_state()) for name, inst in backend.bench.instruments.items()}


def assert_untouched(before, backend):
    for name, inst in backend.bench.instruments.items():
        calls, state = before[name]
        assert inst.calls == calls, f"{name} was called"
        for key, value in inst.output_state().items():
            np.testing.assert_array_equal(value, state[key])


def test_a_knob_beyond_the_role_limit_raises_before_any_instrument_is_called(backend):
    before = snapshot(backend)
    knobs = np.zeros(131)
    knobs[100] = 5.5  # role limit is 5 V
    with pytest.raises(LimitError, match=r"roles.knobs\[100\]"):
        backend.bench.write("knobs", knobs)
    assert_untouched(before, backend)


def test_a_nudge_beyond_its_current_limit_raises_before_the_source_is_called(backend):
    before = snapshot(backend)
    with pytest.raises(LimitError, match="nudges"):
        backend.bench.write("nudges", np.array([0.0, 12.0, 0.0]))  # 12 uA > 10 uA
    assert_untouched(before, backend)


def test_nan_is_never_sent(backend):
    before = snapshot(backend)
    with pytest.raises(LimitError):
        backend.bench.write("inputs", np.array([0.0, np.nan, 0.0, 0.0]))
    assert_untouched(before, backend)


def test_the_instrument_checks_its_own_limits_too(backend):
    dac = backend.bench.instruments["dac"]
    before = snapshot(backend)
    with pytest.raises(LimitError, match=r"dac/ch7"):
        dac.write([6, 7], [0.0, 7.0])  # the knobs' role limit (5 V) was pushed into the DAC's table
    assert_untouched(before, backend)


def test_limits_can_only_be_narrowed():
    table = LimitTable("dac", "voltage", "V", 4, -10, 10)
    table.restrict([0, 1], -1, 1)
    with pytest.raises(LimitError, match="exceed the instrument's range"):
        table.restrict([2], -20, 1)
    table.check([0, 3], [1.0, 9.0])
    with pytest.raises(LimitError):
        table.check([1], [1.5])


def test_a_role_over_two_instruments_sends_nothing_when_either_would_refuse(protocols_dir, tmp_path):
    text = (protocols_dir / "iris_hopfield_sim.yaml").read_text()
    text = text.replace("  smu: {driver: sim}", "  smu: {driver: sim}\n  dac2: {driver: sim, voltage_range: [-1, 1]}")
    text = text.replace("channels: dac/ao4:134", "channels: [dac/ao4:100, dac2/ao0:33]")
    text = text.replace("limits: {low: -5.0, high: 5.0}", "limits: {low: -1.0, high: 1.0}")
    path = tmp_path / "split.yaml"
    path.write_text(text)
    protocol, _ = load_protocol(path)
    backend = open_backend(protocol, "sim")
    backend.bench.instruments["dac2"].output_limits.restrict([5], -0.5, 0.5)  # one narrower channel
    before = snapshot(backend)
    knobs = np.zeros(131)
    knobs[97 + 5] = 0.8  # inside the role's limits, outside dac2/ch5's own
    with pytest.raises(LimitError, match="dac2/ch5"):
        backend.bench.write("knobs", knobs)
    assert_untouched(before, backend)  # the first instrument was not written either


def test_cached_channel_arrays_never_see_stale_limits_or_contents():
    table = LimitTable("dac", "voltage", "V", 8, -10.0, 10.0, prefix="ao")
    frozen = np.arange(2, 6, dtype=np.intp)
    frozen.flags.writeable = False  # as the bench's roles hold theirs
    table.check(frozen, np.full(4, 4.0))
    table.restrict(frozen, -1.0, 1.0)  # narrowed after the array was cached
    with pytest.raises(LimitError, match="ao2"):
        table.check(frozen, np.full(4, 4.0))
    buffer = np.arange(4, dtype=np.intp)  # a reused buffer is checked by its present content
    table.check(buffer, np.zeros(4))
    buffer[3] = 8
    with pytest.raises(LimitError, match="out of range"):
        table.check(buffer, np.zeros(4))
    backing = np.arange(8, dtype=np.intp)  # a read-only view of a buffer that changes underneath
    view = backing[4:8]
    view.flags.writeable = False
    table.check(view, np.full(4, 0.5))  # ao4..ao7: all still ±10 V
    backing[4:8] = [2, 3, 4, 5]  # now ao2..ao5, narrowed above to ±1 V
    with pytest.raises(LimitError, match="ao2"):
        table.check(view, np.full(4, 4.0))


# ------------------------------------------------------------------ the wire guard through the bench
def variant(protocols_dir, tmp_path, **changes):
    """iris_hopfield_sim.yaml with some sections changed (nested dicts merged)."""
    import yaml

    data = yaml.safe_load((protocols_dir / "iris_hopfield_sim.yaml").read_text())

    def merge(into, new):
        for k, v in new.items():
            if isinstance(v, dict) and isinstance(into.get(k), dict):
                merge(into[k], v)
            else:
                into[k] = v

    merge(data, changes)
    path = tmp_path / "variant.yaml"
    path.write_text(yaml.safe_dump(data))
    protocol, _ = load_protocol(path)
    return open_backend(protocol, "sim")


def test_a_saturated_knob_survives_the_calibration_round_trip(protocols_dir, tmp_path):
    knobs = {"limits": {"low": -0.8, "high": 0.8}, "calibration": {"scale": 4.577}}
    backend = variant(protocols_dir, tmp_path, roles={"knobs": knobs})
    bench = backend.bench
    lo, hi = bench.roles["knobs"].model_bounds
    assert bench.roles["knobs"].to_si(np.array([lo]))[0] < -0.8  # SI -> model -> SI overshoots by an ulp
    n = bench.roles["knobs"].size
    bench.write("knobs", np.where(np.arange(n) % 2, hi, lo))  # saturated both ways: no "-0.8 is outside"
    dac = bench.instruments["dac"]
    sent = dac.setpoints(np.arange(4, 4 + n))
    assert sent.min() == -0.8 and sent.max() == 0.8
    with pytest.raises(LimitError, match=r"roles.knobs\[0\]"):
        bench.write("knobs", np.full(n, lo * 1.001))  # beyond a few ulps it is still refused


def test_safety_slews_are_timed_on_the_bench_clock(protocols_dir, tmp_path):
    backend = variant(protocols_dir, tmp_path, safety={"voltage_ramp_rate": "10 V/s", "current_ramp_rate": "1e-4 A/s"})
    bench = backend.bench
    clock = bench.clock
    dac = bench.instruments["dac"]
    ch = bench.roles["knobs"].groups[0][2]
    before = dac.setpoints(ch)
    t0 = clock.now()
    target = np.clip(before + 2.0, -5, 5)
    bench.write("knobs", bench.roles["knobs"].to_model(target))
    moved = float(np.max(np.abs(target - before)))
    assert clock.now() - t0 >= moved / 10.0 * (1 - 1e-9)  # 10 V/s, first move from the as-found state
    bench.write("nudges", np.array([5.0, -5.0, 0.0]))
    t1 = clock.now()
    bench.write("nudges", np.array([-5.0, 5.0, 0.0]))  # 10 uA right after the last change, at 1e-4 A/s: 0.1 s
    assert clock.now() - t1 >= 10e-6 / 1e-4 * (1 - 1e-9)
    t2 = clock.now()
    assert bench.safe_state() == []  # the way to the safe state is timed too
    assert clock.now() - t2 >= max(2.0, float(np.max(np.abs(target)))) / 10.0 * (1 - 1e-9) - 1e-12
    np.testing.assert_array_equal(dac.setpoints(ch), 0.0)


def test_hold_keeps_voltages_and_turns_currents_off(protocols_dir, tmp_path):
    backend = variant(protocols_dir, tmp_path, safety={"safe_state": "hold"})
    bench = backend.bench
    n = bench.roles["knobs"].size
    bench.write("knobs", np.full(n, 1.25))
    bench.write("nudges", np.array([2.0, 0.0, -1.0]))
    bench.switch("nudges", True)
    assert bench.safe_mode == "hold" and bench.safe_state() == []
    dac = bench.instruments["dac"]
    np.testing.assert_allclose(dac.setpoints(bench.roles["knobs"].groups[0][2]), 1.25)
    state = bench.instruments["smu"].output_state()
    assert not state["on"].any() and not state["level"].any()


def test_compliance_trips_are_collected_per_nudge(backend, monkeypatch):
    bench = backend.bench
    smu = bench.instruments["smu"]
    bench.write("nudges", np.zeros(3))
    assert bench.compliance_trips == 0 and not bench.compliance_tripped.any()
    monkeypatch.setattr(smu, "compliance_tripped", lambda: [False, True, False], raising=False)
    assert bench.on_compliance == "fault"  # the documented default: the write that tripped raises
    with pytest.raises(ComplianceTripped, match=r"roles\.nudges\[1\]: smu ch1 reported its compliance tripped"):
        bench.write("nudges", np.array([1.0, 1.0, 1.0]))
    assert bench.compliance_trips == 1 and bench.compliance_tripped.tolist() == [False, True, False]
    bench.take_compliance()
    bench.on_compliance = "flag"  # flag: counted and remembered for the sample, nothing raised
    bench.write("nudges", np.array([0.5, 0.5, 0.5]))
    assert bench.compliance_trips == 2 and bench.take_compliance().tolist() == [False, True, False]
    assert not bench.take_compliance().any()  # taken: forgotten


def test_a_ctrl_c_inside_the_safe_state_does_not_cut_it_short(backend, monkeypatch):
    bench = backend.bench
    smu = bench.instruments["smu"]
    bench.write("nudges", np.array([3.0, 0.0, 0.0]))
    bench.switch("nudges", True)
    real, calls = smu.safe_state, []

    def cut_once(mode="zero"):
        calls.append(mode)
        if len(calls) == 1:
            raise KeyboardInterrupt  # the second Ctrl-C lands while this instrument goes safe
        return real(mode)

    monkeypatch.setattr(smu, "safe_state", cut_once)
    assert bench.safe_state() == []
    assert len(calls) == 2
    state = smu.output_state()
    assert not state["on"].any() and not state["level"].any()
