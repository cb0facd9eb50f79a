"""gradcheck --beta-scan: the cosine to the exact step across β, rising with β under noise, falling without."""

from __future__ import annotations

import json

import pytest
from clirunner import run_cli

from aeqlab.protocol import load_protocol, parse_protocol
from aeqlab.tools.betascan import beta_scan, recommend

NOISE = "  adc_noise: 1.0e-3\n"
INIT = "  init: {gains: [0.8, 0.6], seed: 0}\n"


@pytest.fixture(scope="module")
def iris(protocols_dir):
    return load_protocol(protocols_dir / "iris_hopfield_sim.yaml")[0]


@pytest.fixture(scope="module")
def noisy_iris(protocols_dir):
    path = protocols_dir / "iris_hopfield_sim.yaml"
    text = path.read_text().replace(INIT, INIT + NOISE)
    return parse_protocol(text, str(path))


def test_on_an_ideal_twin_the_cosine_falls_with_beta_and_nothing_is_recommended(iris):
    points = beta_scan(iris, [0.1, 0.5, 1.0], samples=2)
    cos = [p.mean_cosine for p in points]
    assert cos[0] > cos[1] > cos[2]  # the bias of a finite beta only
    assert 1 - cos[0] < 1e-6  # centered: the error at 0.1 is about 25 times smaller than at 0.5
    assert recommend(iris, points) is None


def test_under_noise_the_cosine_rises_with_beta_and_the_best_comes_with_its_epsilon_factor(noisy_iris):
    points = beta_scan(noisy_iris, [0.1, 0.5, 2.0], samples=3)
    cos = [p.mean_cosine for p in points]
    assert cos[0] < 0.1 < cos[1] < cos[2]  # the readings' noise is a fixed size: relative to the step, 1/beta
    beta, factor = recommend(noisy_iris, points)
    assert beta == 2.0 and factor == pytest.approx(0.5 / 2.0)


def test_the_cli_prints_the_table_and_the_recommendation_and_refuses_bad_lists(protocols_dir, tmp_path):
    path = tmp_path / "noisy.yaml"
    text = (protocols_dir / "iris_hopfield_sim.yaml").read_text()
    path.write_text(text.replace(INIT, INIT + NOISE))
    proc = run_cli("gradcheck", str(path), "--beta-scan", "2,0.5", "--samples", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout.splitlines()[-1])
    assert [p["beta"] for p in s["points"]] == [0.5, 2.0] and s["noisy"]
    assert s["recommended_beta"] == 2.0 and s["epsilon_factor"] == pytest.approx(0.25)
    assert "every epsilon scaled by 0.25" in " ".join(proc.stderr.split())
    for bad, words in (("0.5,x", "'x' is not a number"), ("0.5,-1", "positive number")):
        proc = run_cli("gradcheck", str(path), "--beta-scan", bad)
        assert proc.returncode == 2 and words in proc.stderr and "--beta-scan" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    # the options gradcheck checks, checked for a scan too
    proc = run_cli("gradcheck", str(path), "--beta-scan", "0.5,1", "--variant", "bogus")
    assert proc.returncode == 2 and "unknown variant 'bogus'" in proc.stderr, proc.stderr
    proc = run_cli("gradcheck", str(path), "--beta-scan", "0.5,2", "--nudging", "tracking")
    assert proc.returncode == 2 and "singular" in proc.stderr and "--beta-scan" in proc.stderr, proc.stderr
