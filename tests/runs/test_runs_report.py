"""``aeqlab report``, ``runs`` and ``export``: the figures' data is the journal's."""

from __future__ import annotations

import csv
import json
import sqlite3

import numpy as np
import pytest

from aeqlab.cli import main
from aeqlab.report import make_report


def query(journal, sql: str) -> list[tuple]:
    con = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_report_figures_plot_the_journal(tmp_path, reference):
    run_dir, summary = reference
    journal = run_dir / "journal.sqlite"
    result = make_report(run_dir, tmp_path / "report", gradcheck_samples=2)
    names = sorted(p.name for p in result.files)
    figures = ["learning_curves", "parameters", "knobs", "predictions", "timing", "homeostasis", "nudges"]
    figures.append("gradient_fidelity")
    assert names == sorted([f"{f}.png" for f in figures] + ["summary.md"])
    for path in result.files:
        assert path.stat().st_size > 0
    lc = result.data["learning_curves"]
    epochs = query(journal, "SELECT epoch, samples, test_accuracy, test_loss, train_accuracy FROM epochs ORDER BY 1")
    assert lc["test_samples"].tolist() == [e[1] for e in epochs]
    assert lc["test_accuracy"].tolist() == [e[2] for e in epochs]
    assert lc["test_loss"].tolist() == [e[3] for e in epochs]
    assert lc["train_accuracy"].tolist() == [e[4] for e in epochs[1:]]
    assert lc["test_accuracy"][-1] == summary["test_accuracy"]
    rows = query(
        journal,
        "SELECT seq, free_iterations + homeostatic_iterations, residual, nudge_norm, step_norm, tracked "
        "FROM samples ORDER BY seq",
    )
    ho, nu, pr = result.data["homeostasis"], result.data["nudges"], result.data["parameters"]
    assert ho["samples"].tolist() == [r[0] for r in rows] == list(range(1, len(rows) + 1))
    assert ho["iterations"].tolist() == [r[1] for r in rows]
    assert ho["residual"].tolist() == [r[2] for r in rows]
    assert nu["nudge_norm"].tolist() == [r[3] for r in rows]
    assert nu["step_norm"].tolist() == [r[4] for r in rows]
    assert pr["tracked"].tolist() == [json.loads(r[5]) for r in rows]
    # the last tracked values are the final θ* at the tracked indices
    final = np.load(run_dir / "params.npy")
    assert pr["tracked"][-1].tolist() == final[pr["indices"]].tolist()
    # every sample's time is split into its phases, which take part of the sample's wall-clock time
    times = query(journal, "SELECT free_s, homeostatic_s, clamped_s, sample_s FROM samples")
    assert all(None not in t and 0 < t[0] + t[1] + t[2] <= t[3] for t in times)
    gf = result.data["gradient_fidelity"]
    # at most 20 snapshots spread over the run, from θ₀ to the last; two steps each
    snap_seq = [r[0] for r in query(journal, "SELECT seq FROM snapshots ORDER BY seq")]
    assert len(snap_seq) > 20 and gf["sample"].size == 20 and set(gf["sample"]) <= set(snap_seq)
    assert gf["sample"][0] == 0 and gf["sample"][-1] == snap_seq[-1] and gf["step_relative_error"].shape == (20, 2)
    assert np.all(gf["cosine"] > 0.95)  # at the protocol's β = 0.5: no small-β agreement, but the same direction
    page = (tmp_path / "report" / "summary.md").read_text()
    assert f"{summary['test_accuracy']:.3f}" in page and "completed" in page


def test_report_without_figures_writes_the_same_summary_page_alone(tmp_path, reference, capsys, monkeypatch):
    from aeqlab.report import figures

    run_dir, _ = reference
    # one figure is enough to tell the pages apart (every figure is drawn in the test above)
    monkeypatch.setattr(figures, "FIGURES", {"learning_curves": figures.FIGURES["learning_curves"]})
    make_report(run_dir, tmp_path / "full", gradcheck_samples=0)
    with pytest.raises(SystemExit) as done:
        main(["report", str(run_dir), "--no-figures", "-o", str(tmp_path / "page")])
    assert done.value.code == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "page" / "summary.md")]
    assert [p.name for p in (tmp_path / "page").iterdir()] == ["summary.md"]
    page = (tmp_path / "page" / "summary.md").read_text()
    with_figures = (tmp_path / "full" / "summary.md").read_text()
    assert "![" in with_figures and "![" not in page
    assert [x for x in with_figures.splitlines() if not x.startswith("![")] == page.splitlines()


def test_runs_table_and_csv_export(tmp_path, reference, capsys):
    run_dir, summary = reference
    with pytest.raises(SystemExit) as done:
        main(["runs", str(run_dir.parent), "--json"])
    assert done.value.code == 0
    (row,) = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["status"] == "completed" and row["samples"] == summary["samples"]
    assert row["test_accuracy"] == summary["test_accuracy"] and row["duration_s"] is not None
    with pytest.raises(SystemExit) as done:
        main(["export", str(run_dir), "-o", str(tmp_path)])
    assert done.value.code == 0
    with open(tmp_path / "samples.csv", newline="") as fh:
        samples = list(csv.DictReader(fh))
    losses = [r[0] for r in query(run_dir / "journal.sqlite", "SELECT loss FROM samples ORDER BY seq")]
    assert [float(r["loss"]) for r in samples] == losses
    assert {"free_output_0", "free_output_1", "target_1", "nudge_clamped_0"} <= set(samples[0])
    # the tracked parameters are named as in the figures: layer and index, and the knob channel (dac/ao2:43)
    tracked = json.loads(query(run_dir / "journal.sqlite", "SELECT tracked_params FROM header")[0][0])
    assert not any(c.startswith("tracked_") for c in samples[0])
    assert "θ* W1[0,0] (dac/ao2)" in samples[0] and tracked[0] == 0
    last = json.loads(query(run_dir / "journal.sqlite", "SELECT tracked FROM samples ORDER BY seq DESC LIMIT 1")[0][0])
    assert float(samples[-1]["θ* W1[0,0] (dac/ao2)"]) == last[0]
    with open(tmp_path / "epochs.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == summary["epochs"] + 1  # with the evaluation before training
