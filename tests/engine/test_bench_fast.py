"""A role in SI units (scale 1, offset 0) skips its conversions, never its checks."""

from __future__ import annotations

import numpy as np
import pytest

from aeqlab.backends import open_backend
from aeqlab.errors import InstrumentError, LimitError
from aeqlab.protocol import load_protocol


@pytest.fixture
def bench(protocols_dir):
    protocol, _ = load_protocol(protocols_dir / "iris_hopfield_sim.yaml")
    backend = open_backend(protocol, "sim")
    assert backend.bench.roles["knobs"].identity and not backend.bench.roles["nudges"].identity
    return backend.bench


def test_values_just_past_a_limit_are_pulled_onto_it_and_further_out_refused(bench):
    w = bench.roles["knobs"]
    n = w.size
    over = w.high_si + 4 * np.spacing(w.high_si)
    model = np.where(np.arange(n) % 2, over, 0.1)
    bench.write("knobs", model)
    sent = bench.setpoints("knobs")
    np.testing.assert_array_equal(sent, np.where(np.arange(n) % 2, w.high_si, 0.1))
    assert model[1] == over  # the caller's array is left as it is
    calls = {name: inst.calls for name, inst in bench.instruments.items()}
    for bad in (w.high_si + 1e-6, np.nan, -np.inf):
        with pytest.raises(LimitError, match=r"roles.knobs\[3\]"):
            bench.write("knobs", np.where(np.arange(n) == 3, bad, 0.0))
    assert calls == {name: inst.calls for name, inst in bench.instruments.items()}  # nothing was sent


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_reading_is_refused(bench, monkeypatch, bad):
    adc = bench.instruments["adc"]
    read = adc.read

    def spoilt(channels):
        out = read(channels)
        out[len(out) // 2] = bad
        return out

    monkeypatch.setattr(adc, "read", spoilt)
    with pytest.raises(InstrumentError, match="bad reading for roles.params"):
        bench.read("params")


def test_a_reading_is_a_new_array(bench, monkeypatch):
    adc = bench.instruments["adc"]
    kept = np.linspace(-1.0, 1.0, bench.roles["params"].size)
    monkeypatch.setattr(adc, "read", lambda channels: kept)
    got = bench.read("params")
    np.testing.assert_array_equal(got, kept)
    got[0] = 99.0
    assert kept[0] == -1.0  # the instrument's own array is left as it is
