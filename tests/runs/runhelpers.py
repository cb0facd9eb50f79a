"""Helpers for the run-store tests: a private copy of the XOR protocol, runs of it, journal tables."""

from __future__ import annotations

import io
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from clirunner import Result, run_cli
from rich.console import Console

ROOT = Path(__file__).resolve().parents[2]
XOR = ROOT / "protocols" / "xor_hopfield_sim.yaml"
EPOCHS = 15  # 60 samples, about 4900 instrument messages

# columns that differ between two runs of the same physics (wall-clock times, process sessions)
TIMING = {"free_s", "homeostatic_s", "clamped_s", "sample_s", "session", "wall_s"}


def copy_protocol(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    dst = folder / "xor.yaml"
    shutil.copyfile(XOR, dst)
    return dst


def run_inprocess(protocol: Path, out: Path, epochs: int = EPOCHS) -> dict:
    """``aeqlab run`` without a new interpreter; returns the summary."""
    from aeqlab.protocol import load_protocol
    from aeqlab.runs.session import RunRequest, run_training

    prot, text = load_protocol(protocol)
    return run_training(RunRequest(protocol, prot, text, "sim", epochs, None, out), Console(file=io.StringIO()))


def aeqlab(*args: str, hook: str | None = None) -> subprocess.CompletedProcess | Result:
    """The CLI: in a subprocess with a test hook (it kills or signals its process), else in this process."""
    if hook is None:
        return run_cli(*args, cwd=ROOT, env={"AEQLAB_TEST_HOOK": None})
    env = dict(os.environ)
    env.pop("AEQLAB_TEST_HOOK", None)
    if hook:
        env["AEQLAB_TEST_HOOK"] = hook
    code = "from aeqlab.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300
    )


def table(journal: Path, name: str, order: str) -> list[dict]:
    """A journal table read with plain sqlite3, without the columns that carry wall-clock times."""
    con = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        cur = con.execute(f"SELECT * FROM {name} ORDER BY {order}")
        cols = [c[0] for c in cur.description]
        return [{c: v for c, v in zip(cols, r) if c not in TIMING} for r in cur.fetchall()]
    finally:
        con.close()
