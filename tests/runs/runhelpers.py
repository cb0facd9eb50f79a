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


OPENED: list = []  # the backends the in-process sessions opened, latest last


def _open_backend(protocol, kind, **options):
    from aeqlab.backends import open_backend

    backend = open_backend(protocol, kind, **options)
    OPENED.append(backend)
    return backend


def _session(hook: str | None):
    import threading

    from hooks import install

    from aeqlab.runs.progress import LiveView
    from aeqlab.runs.training import Session

    stop = threading.Event()
    remove = install(hook, stop) if hook else (lambda: None)
    return Session([LiveView(Console(file=io.StringIO()))], stop_event=stop), remove


def run_inprocess(
    protocol: Path, out: Path, epochs: int = EPOCHS, hook: str | None = None, kind: str = "sim", open_backend=None
) -> dict:
    """``aeqlab run`` without a new interpreter (optionally with a test hook); returns the summary."""
    from aeqlab.protocol import load_protocol
    from aeqlab.runs import training

    prot, text = load_protocol(protocol)
    session, remove = _session(hook)
    try:
        with (open_backend or _open_backend)(prot, kind) as backend:
            return training.start(prot, text, str(protocol), backend, epochs=epochs, out=out, session=session)
    finally:
        remove()


def resume_inprocess(run_dir, hook: str | None = None, open_backend=None, force: bool = False) -> dict:
    """``aeqlab resume`` without a new interpreter (optionally with a test hook); returns the summary."""
    from aeqlab.runs import training

    session, remove = _session(hook)
    try:
        return training.resume(run_dir, open_backend or _open_backend, force=force, session=session)
    finally:
        remove()


def aeqlab(*args: str, hook: str | None = None) -> subprocess.CompletedProcess | Result:
    """The CLI: in a subprocess with a test hook (it kills or signals its process), else in this process."""
    if hook is None:
        return run_cli(*args, cwd=ROOT, env={})
    env = dict(os.environ)
    here = str(Path(__file__).resolve().parent)
    code = "from aeqlab.cli import main; main()"
    if hook:
        code = f"import sys; sys.path.insert(0, {here!r}); import hooks; hooks.install({hook!r}); " + code
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
