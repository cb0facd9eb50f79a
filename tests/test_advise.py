"""``aeqlab advise``: ε from the stability ratio, β from probe runs, and the protocol it writes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import aeqlab
from aeqlab.protocol import parse_protocol
from aeqlab.tools import advise as adv
from tests.clirunner import run_cli

pytestmark = pytest.mark.xdist_group("advise")

PROTOCOL = """\
# a user's own two-class data on a small twin
name: blobs-advise
seed: 0
instruments:
  dac: {driver: sim}
  adc: {driver: sim}
  smu: {driver: sim}
roles:
  inputs: {channels: dac/ao0:1, limits: {low: -1.5, high: 1.5}}
  knobs: {channels: dac/ao2:33, limits: {low: -5.0, high: 5.0}}   # W1 2x6, W2 6x2, b1 6, b2 2
  outputs: {channels: adc/ai0:1}
  params: {channels: adc/ai2:33}
  nudges:
    channels: smu/ch0:1
    limits: {low: -1.0e-5, high: 1.0e-5}
    calibration: {scale: 1.0e-6}
simulation:
  model: hopfield
  layers: [2, 6, 2]
  epsilon: {weights: [0.02, 0.005], biases: [0.02, 0.005]}   # the couplings
  init: {gains: [1.0, 0.6], seed: 0}
dataset:
  path: blobs.csv
  columns: [x1, x2]
  label: label
  test_size: 0.25
  input_range: [-1.0, 1.0]
method:
  name: aeqprop
  variant: centered
  beta: 0.5
  nudging: linearized
  homeostasis: {tolerance: 1.0e-6, max_iterations: 100}
schedule:
  epochs: 6
output:
  dir: runs
"""


@pytest.fixture
def protocol_file(tmp_path):
    rng = np.random.default_rng(0)
    n = 40
    centres = np.array([[-1.0, -0.5], [1.0, 0.5]])
    label = np.arange(n) % 2
    x = centres[label] + rng.normal(0, 0.35, (n, 2))
    rows = ["x1,x2,label"] + [f"{a:.5f},{b:.5f},{c}" for (a, b), c in zip(x, label)]
    (tmp_path / "blobs.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    path = tmp_path / "blobs.yaml"
    path.write_text(PROTOCOL, encoding="utf-8")
    return path


def _rho(protocol) -> float:
    with aeqlab.open_bench(protocol, backend="sim") as bench:
        from aeqlab.datasets import load

        return adv.rho_over(bench.twin, load(protocol.dataset).x_train)


def test_rho_is_proportional_to_a_common_epsilon_factor(protocol_file):
    """At held parameters the state does not depend on ε: ρ scales exactly with every ε (the twin's eigenproblem)."""
    base = aeqlab.load_protocol(protocol_file)
    text = protocol_file.read_text(encoding="utf-8")
    scaled = parse_protocol(adv.apply_settings(text, adv.epsilon_settings(base, 2.5)), str(protocol_file))
    assert scaled.simulation.epsilon.weights == [0.05, 0.0125]
    r1, r2 = _rho(base), _rho(scaled)
    assert 0.0 < r1 < 1.0
    assert r2 / r1 == pytest.approx(2.5, rel=1e-9)


def test_apply_settings_keeps_comments_and_adds_missing_sections():
    text = "a: 1  # kept\nb:\n  c: [1, 2]   # also kept\n"
    out = adv.apply_settings(text, {"b.c": [3, 4], "d.e": 5})
    assert "# kept" in out and "# also kept" in out
    assert "c: [3, 4]" in out and "d: {e: 5}" in out or "d:\n  e: 5" in out


def test_projection_grows_linearly_in_the_samples():
    assert adv.projected(0.1, 0.2, 100, 400) == pytest.approx(0.2 + 0.1 * (4 - 1))
    assert adv.projected(0.3, 0.25, 100, 400) == pytest.approx(0.25)  # a falling rho is not extrapolated
    assert math.isnan(adv.projected(0.1, math.nan, 100, 400))


def test_beta_max_follows_the_nudging_limits(protocol_file):
    protocol = aeqlab.load_protocol(protocol_file)
    assert adv.beta_max(protocol) == 2.0  # 2 x worst error 2 x 1 uA per unit = 4 uA < 10 uA
    text = protocol_file.read_text(encoding="utf-8").replace("low: -1.0e-5, high: 1.0e-5", "low: -1.0e-6, high: 1.0e-6")
    tight = parse_protocol(text, str(protocol_file))
    assert adv.beta_max(tight) == pytest.approx(0.5)  # 0.5 x 2 x 1 uA = the 1 uA limit


def test_search_skips_what_a_gentler_unstable_setting_rules_out(protocol_file, monkeypatch):
    """Probes go from the gentlest pair up; one that lost stability rules out every pair as large in both."""
    probed = []
    unstable = {"rule": lambda f, beta: beta >= 1.0}

    def fake_probe(text, source, out, candidate, advice):
        f = round(candidate.scale / scale_max, 3)
        probed.append((f, candidate.beta))
        candidate.rho_start = candidate.rho_end = candidate.rho_projected = 0.1
        candidate.validation_accuracy, candidate.validation_loss = 0.9, 0.1 / candidate.scale
        if unstable["rule"](f, candidate.beta):
            candidate.unstable, candidate.why = True, "the twin jumped"
        else:
            candidate.accepted = True

    protocol = aeqlab.load_protocol(protocol_file)
    scale_max = 0.5 / _rho(protocol)
    monkeypatch.setattr(adv, "_probe", fake_probe)
    advice = adv.advise(protocol, betas=(2.0, 1.0, 0.5), scales=(1.0, 0.5))
    assert probed == [(0.5, 0.5), (0.5, 1.0), (1.0, 0.5)]
    skipped = [c for c in advice.candidates if c.why.startswith("skipped")]
    assert [(round(c.scale / scale_max, 3), c.beta) for c in skipped] == [(0.5, 2.0), (1.0, 1.0), (1.0, 2.0)]
    # equal validation accuracy: the lower validation loss (here the larger epsilon) wins
    assert advice.chosen.beta == 0.5 and advice.chosen.scale == pytest.approx(scale_max)
    assert advice.settings["method.beta"] == 0.5

    probed.clear()
    unstable["rule"] = lambda f, beta: f >= 1.0
    advice = adv.advise(protocol, betas=(2.0, 0.5), scales=(1.0, 0.5))
    assert probed == [(0.5, 0.5), (0.5, 2.0), (1.0, 0.5)]
    assert advice.chosen.scale == pytest.approx(0.5 * scale_max)


def test_advise_recommends_what_it_probed_and_writes_a_protocol(protocol_file, tmp_path):
    protocol = aeqlab.load_protocol(protocol_file)
    seen = []
    advice = adv.advise(
        protocol, probe_epochs=1, betas=(1.0, 0.5), scales=(1.0, 0.5), progress=lambda i, n, c: seen.append((i, n))
    )
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert advice.rho_protocol == pytest.approx(_rho(protocol))
    chosen = advice.chosen
    assert chosen is not None and chosen.accepted
    # rho is a largest value over the training inputs: the probe's (without its validation examples) at most the target
    fraction = chosen.scale / (0.5 / advice.rho_protocol)
    assert 0.0 < chosen.rho_start <= 0.5 * fraction * (1 + 1e-3)
    assert np.isfinite(chosen.validation_accuracy) and chosen.unconverged == 0
    assert advice.settings["method.beta"] == chosen.beta
    assert advice.settings["dataset.validation"] == adv.VALIDATION
    assert advice.settings["stability"]["action"] == "rollback"
    # the written copy (another folder: the data path is rewritten) validates and starts at the probed rho
    out = tmp_path / "sub" / "advised.yaml"
    out.parent.mkdir()
    adv.write_protocol(protocol, advice, out)
    text = out.read_text(encoding="utf-8")
    assert "# the couplings" in text and "../blobs.csv" in text
    written = aeqlab.load_protocol(out)
    assert written.method.beta == chosen.beta
    assert _rho(written) == pytest.approx(chosen.rho_start, rel=1e-6)
    assert protocol_file.read_text(encoding="utf-8") == PROTOCOL  # the protocol itself is only read


def test_cli_advise_json_and_errors(protocol_file, tmp_path):
    out = tmp_path / "advised.yaml"
    res = run_cli(
        "advise", str(protocol_file), "--probe-epochs", "1", "--target-rho", "0.3", "--json", "--write", str(out)
    )
    assert res.returncode == 0, res.stderr
    advice = json.loads(res.stdout)
    assert advice["chosen"]["accepted"] and advice["written"] == str(out.resolve())
    assert "probe 1/" in res.stderr
    assert run_cli("validate", str(out)).returncode == 0
    # a protocol without a twin: one line naming the section and the fix
    bench = tmp_path / "bench.yaml"
    bench.write_text(PROTOCOL.split("simulation:")[0] + "dataset:" + PROTOCOL.split("dataset:")[1], encoding="utf-8")
    res = run_cli("advise", str(bench))
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "simulation" in res.stderr and "twin" in res.stderr
