"""Every value is checked against its limits before any instrument sees it."""

from __future__ import annotations

import numpy as np
import pytest

from aeqlab.backends import open_backend
from aeqlab.errors import LimitError
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
