"""Each figure's data against the journal (values, names, units), and its readability at 1 and 1,000 epochs."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
from reporthelpers import ROOT, copy_run, grow

from aeqlab.journal import Journal
from aeqlab.report import figures, journal_data, make_report, read_run


def query(run_dir, sql):
    con = sqlite3.connect(f"file:{run_dir / 'journal.sqlite'}?mode=ro", uri=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_names_and_units_come_from_the_protocol(xor_run):
    run = read_run(xor_run[0])
    n = run["naming"]
    # layers [2, 8, 2]: W1 is 2x8, W2 8x2, then b1 (8) and b2 (2); knobs are dac/ao2:43 in θ order
    assert n.params[:2] == ["W1[0,0]", "W1[0,1]"] and n.params[16] == "W2[0,0]"
    assert n.params[32] == "b1[0]" and n.params[-1] == "b2[1]" and len(n.params) == 42
    assert n.knob_channels[0] == "dac/ao2" and n.knob_channels[-1] == "dac/ao43"
    assert n.calibration["nudges"] == (1e-6, 0.0, "A") and "params" not in n.calibration
    assert n.limits["knobs"] == (-5.0, 5.0, "V")
    fig = figures.parameters(run["data"], n)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    idx = run["header"].tracked_params
    assert labels == [f"{n.params[i]} · dac/ao{i + 2}" for i in idx]
    assert "model units, no calibration" in fig.axes[0].get_ylabel()


def test_nudges_in_amperes_and_homeostasis_per_phase(xor_run):
    run = read_run(xor_run[0])
    rows = query(xor_run[0], "SELECT nudge_norm, free_iterations, homeostatic_iterations, residual FROM samples")
    fig = figures.nudges(run["data"], run["naming"])
    ax = fig.axes[0]
    assert "(A)" in ax.get_ylabel()
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [1e-6 * r[0] for r in rows])
    fig = figures.homeostasis(run["data"], run["naming"])
    top, bottom = fig.axes
    lines = {line.get_label(): line for line in top.get_lines()}
    assert lines["free phase"].get_ydata().tolist() == [r[1] for r in rows]
    assert lines["homeostatic phase"].get_ydata().tolist() == [r[2] for r in rows]
    assert list(lines["max_iterations 100 (per phase)"].get_ydata()) == [100, 100]
    tol = {line.get_label(): line for line in bottom.get_lines()}["tolerance 1e-06"]
    assert list(tol.get_ydata()) == [1e-6, 1e-6]
    # no phase plotted above its cap: the two phases are not summed
    assert max(r[1] for r in rows) <= 100 and max(r[2] for r in rows) <= 100


def test_predictions_and_timing_are_the_journal(xor_run):
    run = read_run(xor_run[0])
    data = run["data"]
    rows = query(
        xor_run[0], "SELECT label, predicted, free_s, homeostatic_s, clamped_s, free_output, target FROM samples"
    )
    last = rows[-len(rows) :]
    cm = figures.confusion(np.array([r[0] for r in last]), np.array([r[1] for r in last]), 2)
    fig = figures.predictions(data, run["naming"])
    assert np.array_equal(fig.axes[0].get_images()[0].get_array(), cm) and cm.sum() == len(rows)
    assert data["predictions"]["target"].tolist() == [json.loads(r[6]) for r in rows]
    fig = figures.timing(data, run["naming"])
    polys = fig.axes[0].collections
    assert [p.get_label() for p in polys] == ["free", "homeostatic", "clamped", "other"]
    assert data["timing"]["free_s"].tolist() == [r[2] for r in rows]
    assert data["timing"]["clamped_s"].tolist() == [r[4] for r in rows]


def test_knobs_against_limits_when_journaled_and_a_note_when_not(xor_run, tmp_path):
    old = copy_run(ROOT / "tests" / "fixtures" / "run-before-run-engine", tmp_path / "old")
    run_old = read_run(old)
    fig = figures.knobs(run_old["data"], run_old["naming"])
    assert "not journaled by this run" in fig.texts[0].get_text() if fig.texts else fig.axes[0].texts[0].get_text()
    run = read_run(xor_run[0])
    # the journal's snapshots carry the knobs (float64 model units): the figure draws them and the limits
    d = copy_run(xor_run[0], tmp_path / "run")
    con = sqlite3.connect(d / "journal.sqlite")
    for seq, theta in con.execute("SELECT seq, theta FROM snapshots").fetchall():
        knobs = np.frombuffer(theta, "<f8") * 2.0 + seq
        con.execute("UPDATE snapshots SET knobs = ? WHERE seq = ?", (knobs.astype("<f8").tobytes(), seq))
    con.commit()
    con.close()
    j = Journal.open_live(d / "journal.sqlite")
    try:
        data = journal_data(j)
        snap_seq, snap_theta = j.snapshots()
    finally:
        j.close()
    np.testing.assert_array_equal(data["knobs"]["knobs"], snap_theta * 2.0 + snap_seq[:, None])
    fig = figures.knobs(data, run["naming"])
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    assert list(lines["limit low -5 V"].get_ydata()) == [-5.0, -5.0]
    assert list(lines["limit high 5 V"].get_ydata()) == [5.0, 5.0]
    i = run["header"].tracked_params[0]
    assert lines[f"dac/ao{i + 2}"].get_ydata().tolist() == data["knobs"]["knobs"][:, i].tolist()
    assert "(V)" in fig.axes[0].get_ylabel()


def test_regression_says_r2_and_is_not_clipped(xor_run):
    run = read_run(xor_run[0])
    n = run["naming"]
    n.task = "regression"
    data = {k: dict(v) for k, v in run["data"].items()}
    data["learning_curves"]["test_accuracy"] = data["learning_curves"]["test_accuracy"] * 3 - 2.5  # R² < 0
    fig = figures.learning_curves(data, n)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "R²" and "acc" not in ax.get_title()
    low = np.nanmin(data["learning_curves"]["test_accuracy"])
    assert low < -0.02 and ax.get_ylim()[0] <= low  # not clipped at the [0, 1] of an accuracy
    assert "train (running)" not in [line.get_label() for line in ax.get_lines()]


@pytest.mark.parametrize("epochs", [1, 1000])
def test_figures_stay_readable(xor_run, tmp_path, epochs):
    d = copy_run(xor_run[0], tmp_path / "run")
    grow(d, epochs)
    run = read_run(d)
    assert run["n_samples"] == epochs * run["header"].samples_per_epoch
    for name, build in figures.FIGURES.items():
        fig = build(run["data"], run["naming"])
        fig.canvas.draw()
        for ax in fig.axes:
            if ax.get_label() == "<colorbar>":
                continue
            assert len(ax.get_xticks()) <= figures.MAX_TICKS + 3, name
            assert len(ax.get_yticks()) <= figures.MAX_TICKS + 3 or ax.get_yscale() == "log", name
            for line in ax.get_lines():
                if line.get_marker() not in ("None", None, "", ".") and line.get_linestyle() != "None":
                    every = line.get_markevery() or 1
                    assert -(-len(line.get_xdata()) // every) <= figures.MAX_MARKERS + 1, (name, line.get_label())
            legend = ax.get_legend()
            if legend is not None:  # legends sit right of the axes, never over the data
                assert legend.get_window_extent().x0 >= ax.get_window_extent().x1, name


def test_report_writes_every_figure_and_flags(xor_run, tmp_path):
    d = copy_run(xor_run[0], tmp_path / "run")
    con = sqlite3.connect(d / "journal.sqlite")
    con.execute("UPDATE samples SET converged = 0 WHERE seq IN (2, 3, 9)")
    con.execute("UPDATE samples SET saturated = 1 WHERE seq = 5")
    con.commit()
    con.close()
    result = make_report(d, tmp_path / "out", gradcheck_samples=0)
    names = sorted(p.name for p in result.files)
    assert names == sorted([f"{f}.png" for f in figures.FIGURES] + ["summary.md"])
    page = (tmp_path / "out" / "summary.md").read_text()
    assert "**unconverged**: 3 samples, in epoch(s) 1, 3; samples 2–3, 9" in page
    assert "**saturated (a knob held at its limit)**: 1 samples, in epoch(s) 2; samples 5" in page
    assert "summary.json for the last session only" in page and "![knobs](knobs.png)" in page
    assert all(f"![{f}]({f}.png)" in page for f in figures.FIGURES)


def test_gradient_fidelity_figure_draws_its_data_readably():
    rng = np.random.default_rng(0)
    x = np.round(np.linspace(0, 28_740, 20))
    fid = {
        "sample": x,
        "relative_error": 10 ** rng.uniform(-6, 0, 20),
        "cosine": 1 - 10 ** rng.uniform(-15, -1, 20),
        "cosine_to_gradient": 1 - 10 ** rng.uniform(-5, -1, 20),
        "step_relative_error": 10 ** rng.uniform(-7, 0, (20, 3)),
        "beta": np.full(20, 0.5),
        "steps": np.array([3]),
    }
    fig = figures.gradient_fidelity(fid)
    fig.canvas.draw()
    top, bottom = fig.axes
    lines = {line.get_label(): line for ax in fig.axes for line in ax.get_lines()}
    assert lines["worst of 3 step(s)"].get_ydata().tolist() == fid["relative_error"].tolist()
    np.testing.assert_allclose(lines["to the oracle's step (worst)"].get_ydata(), 1 - fid["cosine"])
    assert len(lines["each step"].get_ydata()) == 60 and "β = 0.5, 20 snapshot(s) × 3 step(s)" in top.get_title()
    for ax in fig.axes:
        assert ax.get_yscale() == "log" and len(ax.get_xticks()) <= figures.MAX_TICKS + 3
        assert ax.get_legend().get_window_extent().x0 >= ax.get_window_extent().x1
    # the sample numbers on the x axis do not run into each other
    boxes = [t.get_window_extent() for t in bottom.get_xticklabels() if t.get_text()]
    assert all(a.x1 < b.x0 for a, b in zip(boxes, boxes[1:]))


def test_many_lines_never_share_a_look_and_knobs_are_zoomed(xor_run):
    run = read_run(xor_run[0])
    fig = figures.parameters(run["data"], run["naming"])
    looks = [(line.get_color(), line.get_linestyle()) for line in fig.axes[0].get_lines()]
    assert len(looks) == 16 and len(set(looks)) == 16
    d = run["data"] | {"knobs": {"samples": np.array([0.0, 4.0]), "knobs": np.full((2, 42), 0.1) + [[0.0], [0.05]]}}
    fig = figures.knobs(d, run["naming"])
    full, zoom = fig.axes
    assert full.get_ylim()[0] <= -5 and full.get_ylim()[1] >= 5  # the limits are in view on top
    assert -1 < zoom.get_ylim()[0] < 0.1 and 0.15 < zoom.get_ylim()[1] < 1  # the bottom shows the setpoints
