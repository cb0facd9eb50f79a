"""Helpers for the report tests: a short XOR run, private copies of run folders, synthetic journals."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_xor(out: Path, epochs: int = 3) -> dict:
    """``aeqlab run protocols/xor_hopfield_sim.yaml --sim`` in-process; returns the summary."""
    import aeqlab

    src = out.parent / "xor.yaml"
    shutil.copyfile(ROOT / "protocols" / "xor_hopfield_sim.yaml", src)
    protocol = aeqlab.load_protocol(src)
    with aeqlab.open_bench(protocol) as bench:
        return aeqlab.train(protocol, bench, epochs=epochs, out=out).summary


def copy_run(run_dir: Path, dst: Path) -> Path:
    """A private copy of a run folder (the journal's WAL is folded in: the run is closed)."""
    shutil.copytree(run_dir, dst)
    return dst


def grow(run_dir: Path, epochs: int) -> None:
    """Rewrite a run's journal to ``epochs`` epochs by repeating its samples and epoch rows (synthetic)."""
    con = sqlite3.connect(run_dir / "journal.sqlite")
    try:
        per = con.execute("SELECT samples_per_epoch FROM header").fetchone()[0]
        first = [r for r in con.execute("SELECT * FROM samples WHERE epoch = 1 ORDER BY seq")]
        ep1 = con.execute("SELECT * FROM epochs WHERE epoch = 1").fetchone()
        con.execute("DELETE FROM samples")
        con.execute("DELETE FROM epochs WHERE epoch > 0")
        cols = len(first[0])
        for e in range(1, epochs + 1):
            for k, r in enumerate(first):
                row = list(r)
                row[0], row[1] = (e - 1) * per + k + 1, e
                con.execute(f"INSERT INTO samples VALUES ({','.join('?' * cols)})", row)
            row = list(ep1)
            row[0], row[1] = e, e * per
            con.execute(f"INSERT INTO epochs VALUES ({','.join('?' * len(row))})", row)
        con.execute("UPDATE header SET epochs = ?", (epochs,))
        con.commit()
    finally:
        con.close()


def long_journal(run_dir: Path, samples: int, per_epoch: int, seed: int = 0) -> None:
    """Rewrite a run's journal to ``samples`` samples of ``per_epoch`` per epoch (synthetic, fast: executemany).

    The rows copy the run's first sample with a random ``correct`` and ``loss`` each (so a running
    mean has something to average), one epoch row per finished epoch and a snapshot every epoch.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    con = sqlite3.connect(run_dir / "journal.sqlite")
    try:
        cols = [r[1] for r in con.execute("PRAGMA table_info(samples)")]
        first = list(con.execute("SELECT * FROM samples ORDER BY seq LIMIT 1").fetchone())
        ep1 = list(con.execute("SELECT * FROM epochs WHERE epoch = 1").fetchone())
        snap = list(con.execute("SELECT * FROM snapshots ORDER BY seq DESC LIMIT 1").fetchone())
        i_seq, i_ep, i_pos, i_cor, i_loss = (cols.index(c) for c in ("seq", "epoch", "position", "correct", "loss"))
        correct = rng.integers(0, 2, samples)
        loss = rng.uniform(0.0, 1.0, samples)

        def rows():
            for k in range(samples):
                row = list(first)
                row[i_seq], row[i_ep], row[i_pos] = k + 1, k // per_epoch + 1, k % per_epoch
                row[i_cor], row[i_loss] = int(correct[k]), float(loss[k])
                yield row

        con.execute("DELETE FROM samples")
        con.execute("DELETE FROM epochs WHERE epoch > 0")
        con.execute("DELETE FROM snapshots WHERE seq > 0")
        con.executemany(f"INSERT INTO samples VALUES ({','.join('?' * len(cols))})", rows())
        epochs = samples // per_epoch
        con.executemany(
            f"INSERT INTO epochs VALUES ({','.join('?' * len(ep1))})",
            ([e, e * per_epoch, *ep1[2:]] for e in range(1, epochs + 1)),
        )
        con.executemany(
            f"INSERT INTO snapshots VALUES ({','.join('?' * len(snap))})",
            ([e * per_epoch, e, *snap[2:]] for e in range(1, epochs + 1)),
        )
        con.execute("UPDATE header SET epochs = ?, samples_per_epoch = ?", (max(epochs, 1), per_epoch))
        con.commit()
    finally:
        con.close()
