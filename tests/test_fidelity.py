"""Gradient fidelity from a run's journal: gradcheck at a journaled θ*, and over the run for the report."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from clirunner import capsys_cli

import aeqlab
from aeqlab.journal import Journal
from aeqlab.report import make_report
from aeqlab.tools import fidelity
from aeqlab.tools.gradcheck import gradcheck

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.xdist_group("fidelity-iris")


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory):
    """One epoch of iris on the twin (120 samples, snapshots every 30): (run folder, protocol)."""
    base = tmp_path_factory.mktemp("fidelity")
    src = base / "iris.yaml"
    shutil.copyfile(ROOT / "protocols" / "iris_hopfield_sim.yaml", src)
    protocol = aeqlab.load_protocol(src)
    with aeqlab.open_bench(protocol) as bench:
        run = aeqlab.train(protocol, bench, epochs=1, out=base / "runs")
    assert run.summary["status"] == "completed"
    return Path(run.summary["run_dir"]), protocol


@pytest.fixture
def fidelity_figure_only(monkeypatch):
    """Reports draw the gradient-fidelity figure alone: the others are test_figures' (each costs a
    constrained layout and a PNG, most of a report's time)."""
    from aeqlab.report import figures

    monkeypatch.setattr(figures, "FIGURES", {})


def journaled(run_dir: Path, seq: int) -> tuple[np.ndarray, np.ndarray]:
    con = sqlite3.connect(f"file:{run_dir / 'journal.sqlite'}?mode=ro", uri=True)
    try:
        theta, knobs = con.execute("SELECT theta, knobs FROM snapshots WHERE seq = ?", (seq,)).fetchone()
    finally:
        con.close()
    return np.frombuffer(theta, "<f8"), np.frombuffer(knobs, "<f8")


def open_journal(run_dir: Path) -> Journal:
    return Journal.open_live(run_dir / "journal.sqlite")


def test_pick_finds_the_journaled_snapshot(iris_run):
    run_dir, _ = iris_run
    journal = open_journal(run_dir)
    try:
        end = fidelity.pick(journal, epoch=1)
        first = fidelity.pick(journal, epoch=0)
        mid = fidelity.pick(journal, at=59)  # the last snapshot at or before sample 59
        last = fidelity.pick(journal)
    finally:
        journal.close()
    assert (end.seq, first.seq, mid.seq, last.seq) == (120, 0, 30, 120)
    theta, knobs = journaled(run_dir, 120)
    assert end.theta.tolist() == theta.tolist() and end.knobs.tolist() == knobs.tolist()
    assert mid.theta.tolist() == journaled(run_dir, 30)[0].tolist()


def test_gradcheck_from_a_journaled_theta_starts_there(iris_run):
    """The check from the end of epoch 1 runs at that θ*, not at θ₀: the twin's θ_h is the snapshot's."""
    run_dir, protocol = iris_run
    theta0, _ = journaled(run_dir, 0)
    journal = open_journal(run_dir)
    try:
        snap = fidelity.pick(journal, epoch=1)
    finally:
        journal.close()
    assert np.max(np.abs(snap.theta - theta0)) > 1e-2  # training moved θ*
    at_start = gradcheck(protocol, beta=1e-3, samples=2)
    at_end = gradcheck(protocol, beta=1e-3, samples=2, start=snap.start())
    assert at_end[0].start_offset < 1e-9  # θ_h of the first step is the journaled θ*
    assert at_start[0].start_offset < 1e-9
    for a, b in zip(at_start, at_end):
        assert a.relative_error <= 1e-3 and b.relative_error <= 1e-3  # both pass at this small β
        assert abs(a.step_norm - b.step_norm) > 1e-3 * a.step_norm  # but they are different steps


def test_the_first_point_over_the_run_is_gradcheck_at_theta0(iris_run):
    run_dir, protocol = iris_run
    journal = open_journal(run_dir)
    try:
        snaps = fidelity.snapshots(journal)
    finally:
        journal.close()
    assert [s.seq for s in snaps] == [0, 30, 60, 90, 120]
    fid = fidelity.over_run(protocol, snaps, steps=2, points=3)
    assert fid["sample"].tolist() == [0, 60, 120]  # spread over the run, first and last included
    assert fid["step_relative_error"].shape == (3, 2) and fid["notes"].size == 0
    # an independent path: gradcheck from the protocol, at the twin's own θ₀ (no snapshot taken up)
    ref = gradcheck(protocol, beta=protocol.method.beta, samples=2)
    np.testing.assert_allclose(fid["step_relative_error"][0], [r.relative_error for r in ref], rtol=1e-6)
    assert fid["relative_error"][0] == pytest.approx(max(r.relative_error for r in ref), rel=1e-6)
    assert fid["cosine"][0] == pytest.approx(min(r.cosine for r in ref), rel=1e-9)
    # the later points are at other parameters, so other steps: not a copy of the first
    assert not np.allclose(fid["step_relative_error"][1:], fid["step_relative_error"][0])
    assert np.all(fid["cosine"] > 0.9) and np.all(fid["cosine"] <= 1.0)


def test_spread_is_bounded():
    assert fidelity.spread(1000, 20).tolist()[:2] == [0, 53] and fidelity.spread(1000, 20).size == 20
    assert fidelity.spread(1000, 20)[-1] == 999 and fidelity.spread(4, 20).tolist() == [0, 1, 2, 3]
    assert fidelity.spread(0, 20).size == 0 and fidelity.spread(7, 0).size == 0


def test_report_has_the_fidelity_over_the_run(iris_run, tmp_path, fidelity_figure_only):
    run_dir, _ = iris_run
    result = make_report(run_dir, tmp_path / "report", gradcheck_samples=1, fidelity_points=4)
    assert tmp_path / "report" / "gradient_fidelity.png" in result.files
    gf = result.data["gradient_fidelity"]
    assert gf["sample"].tolist() == [0, 30, 90, 120] and gf["steps"].tolist() == [1]
    page = (tmp_path / "report" / "summary.md").read_text()
    line = next(ln for ln in page.splitlines() if "gradient fidelity over the run" in ln)
    assert line.startswith("* ") and "4 parameter snapshots from sample 0 to 120" in line
    assert f"worst {np.max(gf['relative_error']):.2e}" in line and "![gradient_fidelity](gradient_fidelity.png)" in page


def test_report_of_a_run_without_a_twin_says_fidelity_cannot_be_computed(iris_run, tmp_path, fidelity_figure_only):
    run_dir, _ = iris_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    text = (ROOT / "protocols" / "iris_bench_emulated.yaml").read_text()
    bench_only = tmp_path / "bench.yaml"
    bench_only.write_text(text[: text.index("\nsimulation:")] + "\n" + text[text.index("\ndataset:") :])
    aeqlab.load_protocol(bench_only)  # a valid protocol, without a twin
    con = sqlite3.connect(copy / "journal.sqlite")
    con.execute("UPDATE header SET protocol_path = ?", (str(bench_only),))
    con.commit()
    con.close()
    (copy / "protocol.yaml").write_text(bench_only.read_text())
    result = make_report(copy, tmp_path / "out", gradcheck_samples=1)
    assert "gradient_fidelity" not in result.data
    assert not (tmp_path / "out" / "gradient_fidelity.png").exists()
    page = (tmp_path / "out" / "summary.md").read_text()
    assert "gradient fidelity over the run: cannot be computed" in page and "no twin ('simulation:' section)" in page


def cli(capsys, *args: str) -> tuple[int, str, str]:
    return capsys_cli(capsys, *args)


def test_cli_gradcheck_from_a_run_folder(iris_run, capsys):
    run_dir, _ = iris_run
    code, out, err = cli(capsys, "gradcheck", str(run_dir), "--epoch", "1", "--samples", "1", "--json")
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["start"] == {"sample": 120, "epoch": 1, "run_dir": str(run_dir)}
    assert summary["verdict"] == "pass" and "snapshot at sample 120 (epoch 1)" in err
    code, out, err = cli(capsys, "gradcheck", str(run_dir), "--at", "45", "--samples", "1", "--json")
    assert code == 0 and json.loads(out.strip().splitlines()[-1])["start"]["sample"] == 30


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--at", "121"], "--at: sample 121 is not in the run, which has samples 0–120"),
        (["--epoch", "2"], "--epoch: epoch 2 has not ended in this run, which ended epochs 0–1"),
        (["--at", "3", "--epoch", "1"], "exclude each other"),
        (["--at", "-1"], "--at"),
        (["--epoch", "x"], "--epoch"),
    ],
)
def test_cli_gradcheck_bad_sample_or_epoch_is_one_line(iris_run, capsys, args, fragment):
    run_dir, _ = iris_run
    code, out, err = cli(capsys, "gradcheck", str(run_dir), *args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], err


def test_cli_gradcheck_at_needs_a_run_folder(capsys):
    code, _, err = cli(capsys, "gradcheck", str(ROOT / "protocols" / "iris_hopfield_sim.yaml"), "--epoch", "1")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--epoch needs a run folder" in err


def test_api_gradcheck_from_a_run_folder(iris_run):
    run_dir, protocol = iris_run
    journal = open_journal(run_dir)
    try:
        snap = fidelity.pick(journal, at=60)
    finally:
        journal.close()
    (from_run,) = aeqlab.gradcheck(run_dir, at=60, samples=1)
    (direct,) = gradcheck(protocol, beta=1e-3, samples=1, start=snap.start())
    assert from_run.step_norm == direct.step_norm and from_run.start_offset < 1e-9
    with pytest.raises(aeqlab.InputError, match="need a run folder"):
        aeqlab.gradcheck(protocol, epoch=1)


def test_summary_states_a_small_loss_in_significant_digits(iris_run, tmp_path):
    """A regression's loss of 1e-5 must not read 0.0000 (the page uses significant digits)."""
    from aeqlab.report.data import read_run
    from aeqlab.report.summary import summary_page

    run = read_run(iris_run[0])
    run["data"]["learning_curves"]["test_loss"] = np.array([9.6e-4, 2.94e-6])
    page = summary_page(run, [])
    assert "test loss 0.00096 → 2.94e-06" in page


def test_report_checks_fewer_steps_on_a_large_network_by_default_and_says_so(
    iris_run, tmp_path, monkeypatch, fidelity_figure_only
):
    from aeqlab.report import core, read_run

    run_dir, _ = iris_run
    n_params = read_run(run_dir)["header"].n_params
    assert core.default_steps(n_params) == 3 and core.default_steps(9610) == 1  # iris small, digits large
    small = make_report(run_dir, tmp_path / "small", fidelity_points=2)
    assert small.data["gradient_fidelity"]["step_relative_error"].shape == (2, 3)
    assert "step per snapshot" not in (tmp_path / "small" / "summary.md").read_text()
    monkeypatch.setattr(core, "LARGE_NETWORK", n_params - 1)  # iris counted as large
    large = make_report(run_dir, tmp_path / "large", fidelity_points=2)
    gf = large.data["gradient_fidelity"]
    assert gf["steps"].tolist() == [1] and gf["step_relative_error"].shape == (2, 1)
    page = (tmp_path / "large" / "summary.md").read_text()
    assert f"1 step per snapshot, the default for a network of more than {n_params - 1:,} parameters" in page
    asked = make_report(run_dir, tmp_path / "asked", gradcheck_samples=2, fidelity_points=2)
    assert asked.data["gradient_fidelity"]["steps"].tolist() == [2]  # an explicit count is kept
