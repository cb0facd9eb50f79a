"""``resume --from-best``: a child run from a run's best parameters; the parent's folder is only read."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
from clirunner import run_cli

import aeqlab
from aeqlab.journal import Journal
from aeqlab.protocol import parse_protocol
from aeqlab.runs.store import params_sha256

IRIS = Path(__file__).resolve().parents[2] / "protocols" / "iris_hopfield_sim.yaml"


def iris(epochs: int):
    text = IRIS.read_text()
    text = re.sub(r"^  epochs: \d+", f"  epochs: {epochs}", text, flags=re.M)
    text = text.replace("  seed: 0\n  input_range", "  seed: 0\n  validation: 0.1\n  input_range")
    return parse_protocol(text, str(IRIS))


def folder_state(path: Path) -> dict[str, str]:
    """Every file of a folder by name, with the SHA-256 of its bytes."""
    return {
        str(f.relative_to(path)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(path.rglob("*"))
        if f.is_file()
    }


@pytest.fixture(scope="module")
def parent(tmp_path_factory) -> aeqlab.Run:
    """A two-epoch iris run with a validation split (its best is at epoch 0, 1 or 2)."""
    protocol = iris(2)
    with aeqlab.open_bench(protocol) as bench:
        run = aeqlab.train(protocol, bench, out=tmp_path_factory.mktemp("parent"))
    assert run.summary["status"] == "completed", run.summary.get("error")
    return run


def journal_rows(run_dir: Path, what: str):
    j = Journal.open_live(Path(run_dir) / "journal.sqlite")
    try:
        return getattr(j, what)()
    finally:
        j.close()


def test_the_child_starts_from_best_npz_at_the_next_sample_and_the_parent_is_left_as_it_was(parent, tmp_path):
    best = parent.best_params()
    before = folder_state(parent.path)
    first: list = []  # θ* of the first committed state, copied as it commits (the engine goes on changing it)

    def keep(ev):
        if ev.kind == "evaluation":
            first.append(ev.evaluation.checkpoint.state.targets.copy())

    child = aeqlab.resume(parent.path, from_best=True, epochs=3, out=tmp_path, callbacks=[keep])
    assert folder_state(parent.path) == before  # only read
    s = child.summary
    assert s["status"] == "completed", s.get("error")
    assert child.path.parent == tmp_path and child.path != parent.path
    # the first committed state holds best.npz's θ*, bit for bit, and is what the child evaluated first
    assert len(first) == 1
    np.testing.assert_array_equal(first[0], best["theta"])
    seq, theta = journal_rows(child.path, "snapshots")
    assert seq[0] == best["samples"]
    np.testing.assert_array_equal(theta[0], best["theta"])
    # numbered on from the best sample: the epoch after the best one, then up to epoch 3
    per_epoch = parent.header.samples_per_epoch
    samples = child.samples()
    assert samples.index[0] == best["samples"] + 1 and s["samples"] == 3 * per_epoch
    assert list(child.epochs().index) == [0, *range(best["epoch"] + 1, 4)]
    sessions = child.sessions()
    assert list(sessions.kind) == ["from-best"] and sessions.first_sample.iloc[0] == best["samples"] + 1
    assert sessions.rehome_iterations.iloc[0] >= 1
    # the child names its parent and the best it started from (summary, header, run.json)
    p = s["parent"]
    assert p["run_dir"] == str(parent.path.resolve()) and p["samples"] == best["samples"]
    assert p["epoch"] == best["epoch"] and p["validation_accuracy"] == best["accuracy"]
    assert p["params_sha256"] == params_sha256(best["theta"])
    assert child.header.extra["parent"] == p
    # β of the next epoch as the parent's schedule gives it (beta_decay from the best epoch's β)
    epochs = parent.epochs()
    expected = 0.5 if best["epoch"] == 0 else epochs.beta.loc[best["epoch"]] * 0.99
    assert p["beta"] == pytest.approx(expected) and child.epochs().beta.iloc[1] == pytest.approx(expected)
    # the child's data are the parent's: its copy and the split's hash
    assert child.header.extra["data"]["split_sha256"] == parent.header.extra["data"]["split_sha256"]


def test_a_child_resumed_after_a_stop_ends_bit_for_bit_like_an_uninterrupted_child(parent, tmp_path):
    whole = aeqlab.resume(parent.path, from_best=True, epochs=3, out=tmp_path / "whole")
    start = whole.summary["parent"]["samples"]

    def stop_soon(ev):
        if ev.kind == "sample" and ev.samples_done == start + 30:
            ev.request_stop()

    part = aeqlab.resume(parent.path, from_best=True, epochs=3, out=tmp_path / "part", callbacks=[stop_soon])
    assert part.summary["status"] == "interrupted" and part.summary["samples"] == start + 30
    resumed = aeqlab.resume(part.path)
    assert resumed.path == part.path and resumed.summary["status"] == "completed"
    assert resumed.summary["params_sha256"] == whole.summary["params_sha256"]
    assert list(resumed.sessions().kind) == ["from-best", "resume"]


def test_a_run_with_a_validation_split_stopped_before_its_first_full_checkpoint_resumes_bit_for_bit(parent, tmp_path):
    # the first checkpoint is committed after the validation at epoch 0, so the twin's snapshot holds
    # the states the first sample starts from, and the replay from it matches the journal
    protocol = iris(2)

    def stop_soon(ev):
        if ev.kind == "sample" and ev.samples_done == 30:
            ev.request_stop()

    with aeqlab.open_bench(protocol) as bench:
        part = aeqlab.train(protocol, bench, out=tmp_path, callbacks=[stop_soon])
    assert part.summary["status"] == "interrupted"
    resumed = aeqlab.resume(part.path)
    assert resumed.summary["status"] == "completed", resumed.summary.get("error")
    assert resumed.summary["params_sha256"] == parent.summary["params_sha256"]


def test_from_best_refuses_a_run_without_best_parameters_in_one_line_naming_the_fix(reference, tmp_path):
    run_dir, _ = reference  # an XOR run: no validation split
    before = folder_state(run_dir)
    r = run_cli("resume", run_dir, "--from-best")
    assert r.returncode == 2, r.stderr
    line = r.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert "kept no best parameters" in line and "dataset.validation" in line
    assert folder_state(run_dir) == before


def test_from_best_refuses_an_unreadable_or_foreign_best_npz(parent, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(parent.path, broken)
    (broken / "best.npz").write_bytes(b"not an npz file")
    r = run_cli("resume", broken, "--from-best")
    assert r.returncode == 2 and "\n" not in r.stderr.strip(), r.stderr
    assert "best parameters cannot be read" in r.stderr and "aeqlab resume" in r.stderr
    best = parent.best_params()
    np.savez(broken / "best.npz", theta=best["theta"] + 1e-3, epoch=best["epoch"], samples=best["samples"],
             validation_accuracy=best["accuracy"], validation_loss=best["loss"])  # fmt: skip
    r = run_cli("resume", broken, "--from-best")
    assert r.returncode == 2 and "not the parameters the run's journal holds there" in r.stderr, r.stderr


def test_from_best_at_the_last_epoch_asks_for_more_epochs_and_options_are_checked(parent):
    best = parent.best_params()
    r = run_cli("resume", parent.path, "--from-best", "--epochs", str(max(best["epoch"], 1)))
    assert r.returncode == 2 and "nothing is left to train" in r.stderr and "--epochs N" in r.stderr, r.stderr
    r = run_cli("resume", parent.path, "--epochs", "5")
    assert r.returncode == 2 and "apply to 'resume --from-best' only" in r.stderr, r.stderr
    r = run_cli("resume", parent.path, "--from-best", "--force")
    assert r.returncode == 2 and "--force" in r.stderr, r.stderr
