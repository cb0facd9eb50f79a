"""What a run journal answers once written: header, samples, epochs, sessions, snapshots, checkpoint.

The read side of :class:`aeqlab.journal.database.Journal` (a mixin: the connection,
the path and what the journal found at opening are the journal's own).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aeqlab.journal.check import bad
from aeqlab.journal.codec import digest, unpack


@dataclass
class Header:
    """The journal's header row."""

    protocol_name: str
    protocol_path: str
    protocol_text: str
    protocol_sha256: str
    backend: str
    seed: int
    epochs: int
    samples_per_epoch: int
    n_params: int
    tracked_params: list[int]
    snapshot_every: int
    versions: dict[str, str]
    instruments: dict[str, str]
    started: str
    extra: dict[str, Any]


@dataclass
class StoredCheckpoint:
    """A checkpoint as the journal keeps it: the run level's packing, the knob bounds, the backend snapshot."""

    seq: int
    epoch: int
    done: int
    scalars: str
    blob: bytes
    knob_low: np.ndarray
    knob_high: np.ndarray
    backend: dict | None = None


class JournalReads:
    """Queries over a journal's tables (nothing here writes)."""

    con: sqlite3.Connection
    path: Path
    _sample_columns: tuple[str, ...]
    _has_stability: bool
    _knob_snapshots: bool

    def header(self) -> Header:
        cur = self.con.execute("SELECT * FROM header")
        names = [c[0] for c in cur.description]
        row = dict(zip(names, cur.fetchone()))
        for key in ("tracked_params", "versions", "instruments", "extra"):
            try:
                row[key] = json.loads(row[key])
            except (TypeError, ValueError):
                raise bad(self.path, f"the header is corrupt ({key})", "the file is left untouched") from None
        row.pop("id")
        row.pop("format")
        return Header(**row)

    def last_sample(self) -> int:
        return int(self.con.execute("SELECT coalesce(max(seq), 0) FROM samples").fetchone()[0])

    def has_checkpoint(self) -> bool:
        return self.con.execute("SELECT count(*) FROM checkpoint").fetchone()[0] > 0

    def checkpoint(self) -> StoredCheckpoint | None:
        """The last committed checkpoint with the backend snapshot saved with it (or None)."""
        row = self.con.execute(
            "SELECT seq, epoch, done, scalars, engine, backend_scalars, backend, sha256 FROM checkpoint"
        ).fetchone()
        bounds = self.con.execute("SELECT low, high FROM knob_bounds").fetchone()
        if row is None or bounds is None:
            return None
        if digest(*row[3:7]) != row[7]:
            raise bad(
                self.path,
                "the journal's checkpoint is corrupt (its SHA-256 does not match)",
                "the file is left untouched; 'aeqlab report' and 'aeqlab export' still read the samples",
            )
        low, high = (np.frombuffer(b, dtype="<f8").copy() for b in bounds)
        snap = unpack(row[5], row[6]) if row[5] is not None else None
        return StoredCheckpoint(row[0], row[1], row[2], row[3], row[4], low, high, snap)

    def rows(self, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
        cur = self.con.execute(sql, params)
        names = [c[0] for c in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]

    def flagged(self, column: str) -> list[int]:
        """``seq`` of the samples whose integer flag ``column`` is set ([] when the journal lacks the column)."""
        if column not in self._sample_columns:
            return []
        return [r[0] for r in self.con.execute(f"SELECT seq FROM samples WHERE {column} ORDER BY seq")]

    def samples(self) -> list[dict[str, Any]]:
        return self.rows("SELECT * FROM samples ORDER BY seq")

    def epochs(self) -> list[dict[str, Any]]:
        return self.rows("SELECT * FROM epochs ORDER BY epoch")

    def stability(self) -> list[dict[str, Any]]:
        """The stability monitor's readings in order (none in a journal written before it)."""
        return self.rows("SELECT * FROM stability ORDER BY id") if self._has_stability else []

    def sessions(self) -> list[dict[str, Any]]:
        return self.rows("SELECT * FROM sessions ORDER BY id")

    def status(self) -> str:
        """The exit status of the run's last session ('running' also when a process was killed)."""
        row = self.con.execute("SELECT exit_status FROM sessions ORDER BY id DESC LIMIT 1").fetchone()
        return row[0] if row else "created"

    def snapshots(self) -> tuple[np.ndarray, np.ndarray]:
        """Sample numbers and the full θ* snapshots (one row each)."""
        rows = self.con.execute("SELECT seq, theta FROM snapshots ORDER BY seq").fetchall()
        seq = np.array([r[0] for r in rows], dtype=int)
        theta = np.array([np.frombuffer(r[1], dtype="<f8") for r in rows])
        return seq, theta

    def knob_snapshots(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Sample numbers and the knob setpoints (model units) of the snapshots; None when not journaled."""
        if not self._knob_snapshots:
            return None
        rows = self.con.execute("SELECT seq, knobs FROM snapshots WHERE knobs IS NOT NULL ORDER BY seq").fetchall()
        if not rows:
            return None
        return np.array([r[0] for r in rows], dtype=int), np.array([np.frombuffer(r[1], dtype="<f8") for r in rows])
