"""Long runs: the watch page refreshes light (new rows only, decimated curves, figures drawn only when
their data changed), and the running curves appear during the first epoch, the same everywhere."""

from __future__ import annotations

import re
import sqlite3
from types import SimpleNamespace

import numpy as np
import pytest
from reporthelpers import copy_run, long_journal
from test_watch import append_samples

from aeqlab.report import data as report_data
from aeqlab.report import figures, read_run
from aeqlab.report.watch import RunView
from aeqlab.runs.events import Opened, SampleDone
from aeqlab.runs.progress import RUNNING_WINDOW, LiveView

# far past every bound the figures keep: 60× MAX_POINTS samples, 60 epochs (markers) > 2× MAX_MARKERS
N_LONG = 60_000


@pytest.fixture(scope="module")
def long_run(tmp_path_factory, xor_run):
    """A copy of the XOR run rewritten to 60,000 samples of 1,000 per epoch (synthetic)."""
    d = copy_run(xor_run[0], tmp_path_factory.mktemp("long") / "run")
    long_journal(d, N_LONG, per_epoch=1000)
    return d


def svg_points(svg: bytes) -> tuple[int, int]:
    """(vertices of the longest path, markers) of an SVG written by matplotlib."""
    text = svg.decode()
    paths = re.findall(r'<path d="([^"]*)"', text)
    longest = max((len(re.findall(r"[ML] ", "M " + d.lstrip("M "))) for d in paths), default=0)
    return longest, len(re.findall(r"<use ", text))


def journal_column(run_dir, column: str) -> np.ndarray:
    con = sqlite3.connect(run_dir / "journal.sqlite")
    try:
        return np.array([r[0] for r in con.execute(f"SELECT {column} FROM samples ORDER BY seq")], dtype=float)
    finally:
        con.close()


def test_envelope_keeps_the_ends_and_the_extremes_within_the_bound():
    rng = np.random.default_rng(1)
    y = rng.normal(size=200_000)
    y[123_457], y[7] = 50.0, -40.0  # spikes the figure must still show
    y[99] = np.nan
    idx = figures.envelope(y, 1000)
    assert idx.size <= 1000 and idx[0] == 0 and idx[-1] == y.size - 1 and np.all(np.diff(idx) > 0)
    assert 123_457 in idx and 7 in idx
    stack = figures.envelope(np.column_stack([y, -y, y**2]), 1000)
    assert stack.size <= 1000 and 123_457 in stack
    x, short = figures.decimate(np.arange(500), np.arange(500.0) ** 2, 1000)
    assert short.size == 500 and np.array_equal(x, np.arange(500))  # short series pass unchanged


def test_a_long_run_refresh_is_bounded_and_draws_only_what_changed(long_run, monkeypatch):
    renders = {name: 0 for name in figures.FIGURES}
    for name, build in list(figures.FIGURES.items()):

        def counted(data, naming, _name=name, _build=build):
            renders[_name] += 1
            return _build(data, naming)

        monkeypatch.setitem(figures.FIGURES, name, counted)
    parsed: list[int] = []
    vectors = report_data._vectors
    monkeypatch.setattr(report_data, "_vectors", lambda texts: parsed.append(len(texts)) or vectors(texts))

    view = RunView(long_run)
    state = view.state()
    assert state["samples"] == N_LONG and parsed == [N_LONG] * 3
    for name in figures.FIGURES:
        longest, markers = svg_points(view.svg(name))
        # one series holds at most MAX_POINTS points (a stack's outline: its points twice, plus its ends)
        assert longest <= 2 * figures.MAX_POINTS + 4, name
        assert markers <= 3 * figures.MAX_POINTS + 2 * figures.MAX_MARKERS, name
    assert set(renders.values()) == {1}

    again = view.state()  # the journal is read again: it gained nothing
    assert again["figures"] == state["figures"] and again["version"] == state["version"]
    for name in figures.FIGURES:
        view.svg(name)
    assert set(renders.values()) == {1} and parsed == [N_LONG] * 3  # nothing read, nothing drawn

    last = append_samples(long_run, 3)
    grown = view.state()
    assert grown["samples"] == last == N_LONG + 3 and parsed == [N_LONG] * 3 + [3] * 3  # only the new rows
    for name in figures.FIGURES:
        view.svg(name)
    assert renders.pop("knobs") == 1  # its source, the snapshots, did not change
    assert set(renders.values()) == {2}
    # what was followed equals a fresh read of the whole journal
    fresh = read_run(long_run)["data"]
    for section, arrays in fresh.items():
        for key, value in arrays.items():
            np.testing.assert_array_equal(view.refresh()["data"][section][key], value, err_msg=f"{section}.{key}")


def test_running_curves_are_the_mean_over_the_stated_window(long_run, tmp_path):
    d = copy_run(long_run, tmp_path / "run")
    con = sqlite3.connect(d / "journal.sqlite")
    con.execute("DELETE FROM samples WHERE seq > 2500")
    con.execute("DELETE FROM epochs WHERE epoch > 2")
    con.commit()
    con.close()
    run = read_run(d)
    lc = run["data"]["learning_curves"]
    window = min(run["header"].samples_per_epoch, RUNNING_WINDOW)
    assert window == 200 and lc["running_window"].tolist() == [window]
    correct, loss = journal_column(d, "correct"), journal_column(d, "loss")
    assert lc["running_samples"].tolist() == list(range(1, 2501))
    for k in (1, 2, 37, 199, 200, 201, 999, 1000, 2500):  # sample k: the mean of samples max(1, k−199)…k
        lo = max(0, k - window)
        assert lc["running_accuracy"][k - 1] == pytest.approx(correct[lo:k].mean(), rel=1e-12)
        assert lc["running_loss"][k - 1] == pytest.approx(loss[lo:k].mean(), rel=1e-12)
    fig = figures.learning_curves(run["data"], run["naming"])
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert "train (running: mean of the last 200 samples)" in labels


def test_running_curve_shows_during_the_first_epoch(long_run, tmp_path):
    d = copy_run(long_run, tmp_path / "run")
    con = sqlite3.connect(d / "journal.sqlite")
    con.execute("DELETE FROM samples WHERE seq > 40")
    con.execute("DELETE FROM epochs WHERE epoch > 0")
    con.execute("DELETE FROM snapshots WHERE seq > 0")
    con.execute("UPDATE sessions SET exit_status = 'running', ended = NULL")
    con.commit()
    con.close()
    view = RunView(d)
    run = view.refresh()
    fig = figures.learning_curves(run["data"], run["naming"])
    lines = {line.get_label(): line for line in fig.axes[1].get_lines()}
    running = lines["train (running: mean of the last 200 samples)"]
    assert len(running.get_xdata()) == 40  # the θ₀ test point and a curve of 40 points, not one point
    loss = journal_column(d, "loss")
    np.testing.assert_allclose(running.get_ydata(), np.cumsum(loss) / np.arange(1, 41))
    assert b"no committed samples" not in view.svg("learning_curves")


def test_live_view_shows_the_same_running_means(long_run):
    run = read_run(long_run)
    lc = run["data"]["learning_curves"]
    correct, loss = journal_column(long_run, "correct"), journal_column(long_run, "loss")
    view = LiveView(console=SimpleNamespace(is_terminal=False), quiet=True)
    view.open(Opened(epochs=200, samples_per_epoch=1000))
    assert view.running() == "last 200: no sample yet"
    for k in range(1200):
        record = SimpleNamespace(correct=int(correct[k]), loss=float(loss[k]), homeostasis_iterations=1,
                                 journal_fields=lambda: {"nudge_norm": 0.1})  # fmt: skip
        sample = SimpleNamespace(record=record, index=k % 1000, total=1000, epoch=k // 1000 + 1, samples_done=k + 1)
        view.sample(SampleDone(sample=sample))
        if k + 1 in (30, 1200):
            n = min(k + 1, 200)
            expect = f"last {n}: loss {lc['running_loss'][k]:.4f} acc {lc['running_accuracy'][k]:.3f}"
            assert view.running() == expect


def test_a_run_without_samples_shows_placeholders_replaced_by_its_first_samples(xor_run, tmp_path):
    d = copy_run(xor_run[0], tmp_path / "run")
    con = sqlite3.connect(d / "journal.sqlite")
    first = con.execute("SELECT * FROM samples WHERE seq = 1").fetchone()
    con.execute("DELETE FROM samples")
    con.execute("DELETE FROM epochs WHERE epoch > 0")
    con.execute("DELETE FROM snapshots WHERE seq > 0")
    con.commit()
    view = RunView(d)
    assert all(b"no committed samples yet" in view.svg(name) for name in figures.FIGURES)
    con.execute(f"INSERT INTO samples VALUES ({','.join('?' * len(first))})", first)
    con.commit()
    con.close()
    assert view.state()["samples"] == 1
    for name in figures.FIGURES:  # the knobs too, although no snapshot came with the sample
        assert b"no committed samples yet" not in view.svg(name), name
