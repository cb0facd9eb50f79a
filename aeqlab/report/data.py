"""Journal → arrays: what every figure plots, read from a run's journal (tolerant of added columns)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from aeqlab.errors import InputError
from aeqlab.journal import Journal
from aeqlab.journal.check import check_file
from aeqlab.journal.reading import folder_writable
from aeqlab.report.names import Naming, naming
from aeqlab.runs.store import RunStore, lock_held


def corrupt(journal: Journal, exc: Exception) -> InputError:
    """The one-line error for a journal that cannot be read."""
    return InputError(
        f"the journal is corrupt ({type(exc).__name__}: {exc})",
        where=str(journal.path),
        hint="the file is left untouched; restore it from a backup",
    )


def open_run(run_dir: Path, live: bool = False) -> tuple[RunStore, Journal]:
    """A run's journal for reading: checked first, or read-only as it is while a process writes it."""
    store = RunStore.existing(run_dir)
    if live:
        return store, Journal.open_live(store.journal_path)
    if store.journal_path.is_file() and lock_held(store.path):
        # a live run: its writer keeps the file consistent, and a copy could be torn
        return store, Journal.open_live(store.journal_path)
    if not folder_writable(store.path):  # checked on a copy, then read without writing beside it
        check_file(store.journal_path)
        return store, Journal.open_live(store.journal_path)
    return store, Journal.open(store.journal_path)


def _column(rows: list[dict[str, Any]], key: str) -> np.ndarray:
    return np.array([np.nan if r.get(key) is None else r[key] for r in rows], dtype=float)


def _vectors(rows: list[dict[str, Any]], key: str) -> np.ndarray:
    vecs = [json.loads(r[key]) for r in rows]
    width = max((len(v) for v in vecs), default=0)
    out = np.full((len(vecs), width), np.nan)
    for i, v in enumerate(vecs):
        out[i, : len(v)] = v
    return out


def _knobs(journal: Journal) -> tuple[np.ndarray, np.ndarray] | None:
    """Knob setpoints at the snapshot cadence (float64 model units), or None when not journaled."""
    cols = {r["name"] for r in journal.rows("PRAGMA table_info(snapshots)")}
    if "knobs" not in cols:
        return None
    rows = journal.rows("SELECT seq, knobs FROM snapshots WHERE knobs IS NOT NULL ORDER BY seq")
    if not rows:
        return None
    return (
        np.array([r["seq"] for r in rows], dtype=float),
        np.array([np.frombuffer(r["knobs"], dtype="<f8") for r in rows]),
    )


def journal_data(journal: Journal) -> dict[str, dict[str, np.ndarray]]:
    """The arrays behind every figure, read from a journal (model units; see :func:`run_naming`)."""
    header = journal.header()
    samples = journal.rows("SELECT * FROM samples ORDER BY seq")
    epochs = journal.rows("SELECT * FROM epochs ORDER BY epoch")
    trained = [e for e in epochs if e["epoch"] > 0]
    seq = _column(samples, "seq")
    correct = _column(samples, "correct")
    loss = _column(samples, "loss")
    window = max(1, min(len(samples), header.samples_per_epoch))
    kernel = np.ones(window) / window
    enough = len(samples) >= window

    def running(a: np.ndarray) -> np.ndarray:
        return np.convolve(a, kernel, mode="valid") if enough else a[:0]

    snap_seq, snap_theta = journal.snapshots()
    out: dict[str, dict[str, np.ndarray]] = {
        "learning_curves": {
            "epoch_samples": _column(trained, "samples"),
            "train_accuracy": _column(trained, "train_accuracy"),
            "train_loss": _column(trained, "train_loss"),
            "test_samples": _column(epochs, "samples"),
            "test_accuracy": _column(epochs, "test_accuracy"),
            "test_loss": _column(epochs, "test_loss"),
            "running_samples": seq[window - 1 :] if enough else seq[:0],
            "running_accuracy": running(correct),
            "running_loss": running(loss),
        },
        "parameters": {
            "samples": seq,
            "tracked": _vectors(samples, "tracked"),
            "indices": np.array(header.tracked_params, dtype=int),
            "snapshot_samples": snap_seq.astype(float),
            "snapshot_norm": np.linalg.norm(snap_theta, axis=1) if snap_theta.size else np.zeros(0),
        },
        "homeostasis": {
            "samples": seq,
            "free_iterations": _column(samples, "free_iterations"),
            "homeostatic_iterations": _column(samples, "homeostatic_iterations"),
            "clamped_iterations": _column(samples, "clamped_iterations"),
            "iterations": _column(samples, "free_iterations") + _column(samples, "homeostatic_iterations"),
            "residual": _column(samples, "residual"),
            "saturated": _column(samples, "saturated"),
            "converged": _column(samples, "converged"),
        },
        "nudges": {
            "samples": seq,
            "nudge_norm": _column(samples, "nudge_norm"),
            "step_norm": _column(samples, "step_norm"),
            "compliance_tripped": _column(samples, "compliance_tripped"),  # NaN: not recorded (older journals)
        },
        "predictions": {
            "samples": seq,
            "label": _column(samples, "label"),
            "predicted": _column(samples, "predicted"),
            "free_output": _vectors(samples, "free_output"),
            "target": _vectors(samples, "target"),
        },
        "timing": {
            "samples": seq,
            "free_s": _column(samples, "free_s"),
            "homeostatic_s": _column(samples, "homeostatic_s"),
            "clamped_s": _column(samples, "clamped_s"),
            "sample_s": _column(samples, "sample_s"),
        },
    }
    knobs = _knobs(journal)
    if knobs is not None:
        out["knobs"] = {"samples": knobs[0], "knobs": knobs[1]}
    return out


def run_naming(journal: Journal) -> Naming:
    """Parameter names, channels and units of the run, from the protocol text in its header."""
    header = journal.header()
    return naming(header.protocol_text, header.n_params)


def read_run(run_dir: Path, live: bool = False) -> dict[str, Any]:
    """Everything a report or the watch page shows, read in one go (one-line error if unreadable)."""
    store, journal = open_run(Path(run_dir), live=live)
    try:
        return {
            "store": store,
            "header": journal.header(),
            "data": journal_data(journal),
            "naming": run_naming(journal),
            "sessions": journal.sessions(),
            "status": journal.status(),
            "n_samples": journal.last_sample(),
        }
    except (ValueError, TypeError, KeyError, sqlite3.DatabaseError) as exc:
        raise corrupt(journal, exc) from None
    finally:
        journal.close()
