"""SIGKILL at random points, then resume: the same result as an uninterrupted run, every sample once."""

from __future__ import annotations

import json
import signal

import numpy as np
from runhelpers import EPOCHS, aeqlab, copy_protocol, table


def test_sigkill_at_random_points_then_resume_is_bit_identical(tmp_path, reference):
    ref_dir, ref = reference
    protocol = copy_protocol(tmp_path)
    rng = np.random.default_rng(20261128)
    # kill points, counted in instrument messages of each process: the first one after the
    # initial evaluation (about 250 messages), the others anywhere (inside samples and evaluations)
    points = [int(rng.integers(400, 800))] + [int(v) for v in rng.integers(50, 700, size=4)]
    out = str(tmp_path / "runs")
    first = aeqlab("run", str(protocol), "--epochs", str(EPOCHS), "--out", out, hook=f"kill@{points[0]}")
    assert first.returncode == -signal.SIGKILL, first.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    journal = run_dir / "journal.sqlite"
    committed = [len(table(journal, "samples", "seq"))]
    for n in points[1:]:
        killed = aeqlab("resume", str(run_dir), hook=f"kill@{n}")
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        committed.append(len(table(journal, "samples", "seq")))
    assert committed == sorted(committed) and committed[-1] < EPOCHS * 4  # five kills before the end
    done = aeqlab("resume", str(run_dir), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["params_sha256"] == ref["params_sha256"]
    assert summary["test_accuracy"] == ref["test_accuracy"]
    assert summary["status"] == "completed" and summary["sessions"] == 6
    # every sample exactly once, in the uninterrupted run's order with its very values
    samples = table(journal, "samples", "seq")
    assert [s["seq"] for s in samples] == list(range(1, EPOCHS * 4 + 1))
    assert samples == table(ref_dir / "journal.sqlite", "samples", "seq")
    assert table(journal, "epochs", "epoch") == table(ref_dir / "journal.sqlite", "epochs", "epoch")
    sessions = table(journal, "sessions", "id")
    assert [s["exit_status"] for s in sessions] == ["running"] * 5 + ["completed"]
    assert np.load(run_dir / "params.npy").tobytes() == np.load(ref_dir / "params.npy").tobytes()
