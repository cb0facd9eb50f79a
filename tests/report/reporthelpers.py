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
