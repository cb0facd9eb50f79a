"""The unchanged engine trains a physical system of another kind: the spring lattice."""

from __future__ import annotations

import json

import pytest
from clirunner import run_cli

from aeqlab.backends import open_backend
from aeqlab.errors import InputError
from aeqlab.protocol import load_protocol
from aeqlab.tools.gradcheck import gradcheck
from drivers.capabilities import SPIN_S


@pytest.fixture(scope="module")
def spring(protocols_dir):
    return load_protocol(protocols_dir / "spring_regression_sim.yaml")[0]


def test_spring_regression_beats_a_linear_fit(protocols_dir, tmp_path):
    proc = run_cli(
        "run", str(protocols_dir / "spring_regression_sim.yaml"), "--epochs", "2", "--json", "--out", str(tmp_path)
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.splitlines()[-1])
    assert summary["test_r2"] >= 0.9
    assert summary["linear_test_r2"] < 0.7  # the task needs the lattice's geometric nonlinearity
    assert summary["initial_test_r2"] < 0.2
    assert "R²" in proc.stderr


@pytest.mark.parametrize("nudging", ["linearized", "tracking"])
def test_spring_steps_follow_the_oracle(spring, nudging):
    for r in gradcheck(spring, beta=0.01, variant="centered", nudging=nudging, samples=2):
        assert r.cosine >= 0.99
        assert r.relative_error < 1e-3


def test_realtime_pacing_sleeps_on_the_wall_clock(spring, monkeypatch):
    slept = []
    monkeypatch.setattr("time.sleep", lambda s: slept.append(s))
    backend = open_backend(spring, "sim", realtime=True)
    backend.bench.clock.sleep(0.25)
    # the wall-clock wait: all but its last stretch slept (less the twin's relaxation done inside it)
    assert len(slept) == 1 and 0.2 < slept[0] <= 0.25 - SPIN_S
    assert backend.twin.clock.now() == pytest.approx(0.25)
    with pytest.raises(InputError, match="--realtime"):
        open_backend(spring, "emulate", realtime=True)
