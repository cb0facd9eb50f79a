"""Every schedule field does what it says: beta_steps, evaluate_every, checkpoint_every."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

import aeqlab
from aeqlab.journal import Journal
from aeqlab.protocol import parse_protocol

XOR = Path(__file__).resolve().parents[2] / "protocols" / "xor_hopfield_sim.yaml"


def xor_with(schedule: str):
    text = XOR.read_text()
    text = re.sub(r"^schedule:\n(?:  .*\n)+", "schedule:\n" + schedule, text, flags=re.M)
    return parse_protocol(text, str(XOR))


def train(protocol, tmp_path):
    events = []
    with aeqlab.open_bench(protocol) as bench:
        run = aeqlab.train(protocol, bench, out=tmp_path, callbacks=[events.append])
    assert run.summary["status"] == "completed", run.summary.get("error")
    return run, events


def test_beta_steps_set_beta_from_their_epoch_then_it_decays(tmp_path):
    protocol = xor_with("  epochs: 5\n  beta_decay: 0.5\n  beta_steps: [{epoch: 3, beta: 0.2}]\n")
    run, _ = train(protocol, tmp_path)
    beta0 = protocol.method.beta
    assert run.epochs().beta.loc[1:].tolist() == [beta0, beta0 * 0.5, 0.2, 0.2 * 0.5, 0.2 * 0.25]
    # the nudge of a sample is β·(y − ŷ): it scales with the epoch's β
    s = run.samples()
    ratio = s.nudge_norm[s.epoch == 3].mean() / s.nudge_norm[s.epoch == 2].mean()
    assert 0.2 / (0.5 * beta0) * 0.5 < ratio < 0.2 / (0.5 * beta0) * 2


def test_evaluate_every_skips_test_evaluations_but_never_the_last(tmp_path):
    protocol = xor_with("  epochs: 5\n  evaluate_every: 2\n")
    run, events = train(protocol, tmp_path)
    tested = run.epochs().test_accuracy
    assert tested.loc[[1, 3]].isna().all() and tested.loc[[0, 2, 4, 5]].notna().all()
    assert [e.metrics.test_accuracy is None for e in events if e.kind == "epoch"] == [True, False, True, False, False]
    assert run.summary["test_accuracy"] == tested.loc[5]


def test_checkpoint_every_keeps_the_parameters_of_every_nth_epoch(tmp_path):
    protocol = xor_with("  epochs: 4\n  checkpoint_every: 2\n")
    run, events = train(protocol, tmp_path)
    files = sorted(p.name for p in (run.path / "params").iterdir())
    assert files == ["epoch-0002.npy", "epoch-0004.npy"]
    j = Journal.open_live(run.path / "journal.sqlite")
    seq, theta = j.snapshots()
    j.close()
    at_end_of_2 = theta[list(seq).index(2 * 4)]
    np.testing.assert_array_equal(np.load(run.path / "params" / "epoch-0002.npy"), at_end_of_2)
    np.testing.assert_array_equal(np.load(run.path / "params" / "epoch-0004.npy"), run.params)


def test_snapshots_carry_the_knob_setpoints(tmp_path):
    run, events = train(xor_with("  epochs: 2\n"), tmp_path)
    j = Journal.open_live(run.path / "journal.sqlite")
    seq, knobs = j.knob_snapshots()
    j.close()
    last = [e for e in events if e.kind == "epoch"][-1].metrics.checkpoint.state.knobs
    assert seq[0] == 0 and knobs.shape[1] == last.size
    np.testing.assert_array_equal(knobs[-1], last)
