"""Journal → arrays: what every figure plots, read from a run's journal (tolerant of added columns).

:class:`Follower` keeps a run's arrays and reads only what the journal gained since its last
update (samples and snapshots by their ``seq``; the few epoch rows again): the watch page
refreshes a long run in progress without re-reading its whole journal. :func:`journal_data`
is one full read with it.
"""

from __future__ import annotations

import json
import sqlite3
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from aeqlab.errors import InputError
from aeqlab.journal import Journal
from aeqlab.journal.check import check_file
from aeqlab.journal.reading import folder_writable
from aeqlab.report.names import Naming, naming
from aeqlab.runs.progress import running_window
from aeqlab.runs.store import RunStore, lock_held

SCALARS = (
    "seq", "label", "predicted", "correct", "loss", "nudge_norm", "step_norm", "free_iterations",
    "homeostatic_iterations", "clamped_iterations", "residual", "converged", "saturated", "free_s",
    "homeostatic_s", "clamped_s", "sample_s", "compliance_tripped",
)  # fmt: skip
VECTORS = ("free_output", "target", "tracked")


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


def _vectors(texts: tuple[str, ...] | list[str]) -> np.ndarray:
    """Rows of JSON vectors as one 2-D array (NaN-padded to the widest), decoded in one go."""
    if texts:  # the usual case, rows of one width: one C-level parse of all the numbers
        width = texts[0].count(",") + 1 if texts[0].strip("[] ") else 0
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                flat = np.fromstring(",".join(t.strip()[1:-1] for t in texts), dtype=float, sep=",")
        except ValueError:  # e.g. a null: the general path below
            flat = np.zeros(0)
        if width and flat.size == width * len(texts):
            return flat.reshape(len(texts), width)
    vecs = json.loads("[" + ",".join(texts) + "]")
    widths = {len(v) for v in vecs}
    if len(widths) == 1:
        return np.array(vecs, dtype=float).reshape(len(vecs), -1)
    width = max((len(v) for v in vecs), default=0)
    out = np.full((len(vecs), width), np.nan)
    for i, v in enumerate(vecs):
        out[i, : len(v)] = v
    return out


def _append(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Rows ``new`` after ``old`` (2-D arrays of different widths are padded with NaN)."""
    if old.ndim == 2 and old.shape[1] != new.shape[1]:
        width = max(old.shape[1], new.shape[1])
        old, new = (np.pad(a, ((0, 0), (0, width - a.shape[1])), constant_values=np.nan) for a in (old, new))
    return np.concatenate([old, new])


def running_mean(values: np.ndarray, window: int) -> np.ndarray:
    """At each sample, the mean of the last ``window`` values up to it (of all of them before ``window``)."""
    v = np.asarray(values, dtype=float)
    c = np.concatenate([[0.0], np.cumsum(v)])
    k = np.arange(1, v.size + 1)
    lo = np.maximum(k - window, 0)
    return (c[k] - c[lo]) / (k - lo)


class Follower:
    """A run's figure arrays, updated from the journal with only the rows it gained since the last update.

    ``versions`` says what each source held at the last update (``samples``: the last sample's
    seq; ``snapshots``: the last snapshot's seq; ``epochs``: count and last row; ``sessions``:
    count and last status): a figure that depends on unchanged sources need not be drawn again.
    """

    def __init__(self) -> None:
        self.columns: tuple[str, ...] = ()
        self.samples: dict[str, np.ndarray] = {}
        self.snap_seq = np.zeros(0)
        self.snap_norm = np.zeros(0)
        self.knob_seq = np.zeros(0)
        self.knobs: np.ndarray | None = None
        self.epochs: list[dict[str, Any]] = []
        self.sessions: list[dict[str, Any]] = []
        self.versions: dict[str, Any] = {"samples": 0, "snapshots": -1, "epochs": None, "sessions": None}
        self._data: dict[str, dict[str, np.ndarray]] | None = None
        self._naming: tuple[str, Naming] | None = None
        self._per_epoch = 0

    @property
    def last_sample(self) -> int:
        return int(self.versions["samples"])

    def update(self, journal: Journal) -> bool:
        """Read what the journal gained since the last update; True when anything changed."""
        before = dict(self.versions)
        columns = tuple(c for c in SCALARS + VECTORS if journal.has_sample_column(c))
        if columns != self.columns or journal.last_sample() < self.last_sample:  # another journal: read it afresh
            self.__init__()
            self.columns = columns
        self._read_samples(journal)
        self._read_snapshots(journal)
        self.epochs = journal.epochs()
        self.sessions = journal.sessions()
        last = self.epochs[-1] if self.epochs else None
        self.versions["epochs"] = (len(self.epochs), tuple(last.values()) if last else None)
        self.versions["sessions"] = (len(self.sessions), self.sessions[-1]["exit_status"] if self.sessions else None)
        per_epoch = journal.header().samples_per_epoch
        changed = self.versions != before or per_epoch != self._per_epoch
        if changed:
            self._data, self._per_epoch = None, per_epoch
        return changed

    def _read_samples(self, journal: Journal) -> None:
        have = [c for c in SCALARS + VECTORS if c in self.columns]
        rows = journal.con.execute(
            f"SELECT {', '.join(have)} FROM samples WHERE seq > ? ORDER BY seq", (self.last_sample,)
        ).fetchall()
        if not rows and self.samples:
            return
        cols = dict(zip(have, zip(*rows))) if rows else {}
        new: dict[str, np.ndarray] = {}
        for c in SCALARS:  # None (NULL) becomes NaN; a column the journal lacks is all NaN (not recorded)
            new[c] = np.array(cols[c], dtype=float) if c in cols else np.full(len(rows), np.nan)
        for c in VECTORS:
            new[c] = _vectors(cols.get(c, ()))
        self.samples = {c: _append(self.samples[c], a) for c, a in new.items()} if self.samples else new
        if rows:
            self.versions["samples"] = int(rows[-1][0])

    def _read_snapshots(self, journal: Journal) -> None:
        knob_col = "knobs" in {r["name"] for r in journal.rows("PRAGMA table_info(snapshots)")}
        rows = journal.con.execute(
            f"SELECT seq, theta, {'knobs' if knob_col else 'NULL'} FROM snapshots WHERE seq > ? ORDER BY seq",
            (self.versions["snapshots"],),
        ).fetchall()
        if not rows:
            return
        seq = np.array([r[0] for r in rows], dtype=float)
        self.snap_seq = np.concatenate([self.snap_seq, seq])
        norms = [np.linalg.norm(np.frombuffer(r[1], dtype="<f8")) for r in rows]
        self.snap_norm = np.concatenate([self.snap_norm, norms])
        kn = [(r[0], np.frombuffer(r[2], dtype="<f8")) for r in rows if r[2] is not None]
        if kn:
            block = np.array([k for _, k in kn])
            self.knobs = block if self.knobs is None else _append(self.knobs, block)
            self.knob_seq = np.concatenate([self.knob_seq, [s for s, _ in kn]])
        self.versions["snapshots"] = int(rows[-1][0])

    def data(self, header: Any) -> dict[str, dict[str, np.ndarray]]:
        """The arrays behind every figure (model units; see :func:`run_naming`), built once per change."""
        if self._data is None:
            self._data = _assemble(self, header)
        return self._data

    def naming(self, header: Any) -> Naming:
        """The run's names and units (parsed from the protocol once per protocol)."""
        if self._naming is None or self._naming[0] != header.protocol_sha256:
            self._naming = (header.protocol_sha256, naming(header.protocol_text, header.n_params))
        return self._naming[1]


def _assemble(f: Follower, header: Any) -> dict[str, dict[str, np.ndarray]]:
    s = f.samples
    trained = [e for e in f.epochs if e["epoch"] > 0]
    seq = s["seq"]
    window = running_window(header.samples_per_epoch)
    out: dict[str, dict[str, np.ndarray]] = {
        "learning_curves": {
            "epoch_samples": _column(trained, "samples"),
            "train_accuracy": _column(trained, "train_accuracy"),
            "train_loss": _column(trained, "train_loss"),
            "test_samples": _column(f.epochs, "samples"),
            "test_accuracy": _column(f.epochs, "test_accuracy"),
            "test_loss": _column(f.epochs, "test_loss"),
            "running_samples": seq,
            "running_accuracy": running_mean(s["correct"], window),
            "running_loss": running_mean(s["loss"], window),
            "running_window": np.array([window]),
        },
        "parameters": {
            "samples": seq,
            "tracked": s["tracked"],
            "indices": np.array(header.tracked_params, dtype=int),
            "snapshot_samples": f.snap_seq,
            "snapshot_norm": f.snap_norm,
        },
        "homeostasis": {
            "samples": seq,
            "free_iterations": s["free_iterations"],
            "homeostatic_iterations": s["homeostatic_iterations"],
            "clamped_iterations": s["clamped_iterations"],
            "iterations": s["free_iterations"] + s["homeostatic_iterations"],
            "residual": s["residual"],
            "saturated": s["saturated"],
            "converged": s["converged"],
        },
        "nudges": {
            "samples": seq,
            "nudge_norm": s["nudge_norm"],
            "step_norm": s["step_norm"],
            "compliance_tripped": s["compliance_tripped"],  # NaN: not recorded (older journals)
        },
        "predictions": {
            "samples": seq,
            "label": s["label"],
            "predicted": s["predicted"],
            "free_output": s["free_output"],
            "target": s["target"],
        },
        "timing": {
            "samples": seq,
            "free_s": s["free_s"],
            "homeostatic_s": s["homeostatic_s"],
            "clamped_s": s["clamped_s"],
            "sample_s": s["sample_s"],
        },
    }
    if f.knobs is not None:
        out["knobs"] = {"samples": f.knob_seq, "knobs": f.knobs}
    return out


def journal_data(journal: Journal) -> dict[str, dict[str, np.ndarray]]:
    """The arrays behind every figure, read from a journal (model units; see :func:`run_naming`)."""
    f = Follower()
    f.update(journal)
    return f.data(journal.header())


def run_naming(journal: Journal) -> Naming:
    """Parameter names, channels and units of the run, from the protocol text in its header."""
    header = journal.header()
    return naming(header.protocol_text, header.n_params)


def read_run(run_dir: Path, live: bool = False, follower: Follower | None = None) -> dict[str, Any]:
    """Everything a report or the watch page shows, read in one go (one-line error if unreadable).

    With ``follower`` (kept by the caller between calls) only what the journal gained since the
    last call is read; ``run["changed"]`` says whether it gained anything.
    """
    store, journal = open_run(Path(run_dir), live=live)
    f = follower if follower is not None else Follower()
    try:
        changed = f.update(journal)
        header = journal.header()
        return {
            "store": store,
            "header": header,
            "data": f.data(header),
            "naming": f.naming(header),
            "sessions": f.sessions,
            "status": f.sessions[-1]["exit_status"] if f.sessions else "created",
            "n_samples": f.last_sample,
            "versions": dict(f.versions),
            "changed": changed,
        }
    except (ValueError, TypeError, KeyError, sqlite3.DatabaseError) as exc:
        raise corrupt(journal, exc) from None
    finally:
        journal.close()
