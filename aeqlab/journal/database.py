"""The run journal: one SQLite file (WAL mode) per run, one transaction per training sample.

Each committed training sample writes, in one transaction, its row in ``samples``
(scalars and small vectors) and replaces the single row of ``checkpoint`` (the full
state to continue from, as the run level packed it, and on a twin the backend's own
snapshot). Full parameter vectors go only into the checkpoint and into ``snapshots``
every N samples. The journal knows rows and blobs, not the engine's types: the run
level (:mod:`aeqlab.runs.journaling`) turns its events into them. The schema is in
:mod:`aeqlab.journal.schema` and ``docs/journal.md``.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from aeqlab.journal.check import bad, check_file
from aeqlab.journal.codec import digest, pack, utc_now, vec
from aeqlab.journal.reading import connect_reader
from aeqlab.journal.reads import Header, JournalReads, StoredCheckpoint
from aeqlab.journal.schema import ADDED_COLUMNS, FORMAT, PAGE_SIZE, SCHEMA, WAL_LIMIT

STABILITY_COLUMNS = (
    "seq",
    "epoch",
    "rho",
    "source",
    "threshold",
    "action",
    "beta",
    "epsilon_scale",
    "detail",
    "session",
)

SAMPLE_COLUMNS = (
    "seq", "epoch", "position", "example", "label", "predicted", "correct", "loss", "free_output", "target",
    "nudge_homeostatic", "nudge_clamped", "nudge_norm", "step_norm", "free_iterations", "homeostatic_iterations",
    "clamped_iterations", "free_residual", "residual", "tracking_residual", "converged", "saturated",
    "settle_timeouts", "free_s", "homeostatic_s", "clamped_s", "sample_s", "tracked", "session",
    "compliance_tripped",
)  # fmt: skip
VECTOR_COLUMNS = ("free_output", "target", "nudge_homeostatic", "nudge_clamped", "tracked")


class Journal(JournalReads):
    """An open run journal. Create with :meth:`create`, reopen with :meth:`open` or :meth:`open_live`."""

    def __init__(self, path: Path, con: sqlite3.Connection, durable: bool = False, writable: bool = True):
        self.path = path
        self.con = con
        self.session: int | None = None
        self._bounds: tuple[np.ndarray, np.ndarray] | None = None  # knob bounds as last written
        if writable:
            con.execute("PRAGMA journal_mode=WAL")
            # NORMAL: a commit survives the process being killed; FULL also survives power loss (benches)
            con.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            con.execute(f"PRAGMA journal_size_limit={WAL_LIMIT}")
        cols = {r[1] for r in con.execute("PRAGMA table_info(snapshots)")}
        self._knob_snapshots = "knobs" in cols  # journals written before knob snapshots have no such column
        self._has_stability = con.execute("SELECT 1 FROM sqlite_master WHERE name = 'stability'").fetchone() is not None
        self._read_columns()

    def _read_columns(self) -> None:
        have = {r[1] for r in self.con.execute("PRAGMA table_info(samples)")}
        self._sample_columns = tuple(c for c in SAMPLE_COLUMNS if c in have)

    def has_sample_column(self, name: str) -> bool:
        """Whether this journal's ``samples`` table has ``name`` (older journals lack the columns added since)."""
        return name in self._sample_columns

    def _upgrade(self) -> None:
        """Add the columns an older journal lacks (inside a write transaction; older rows hold NULL)."""
        for table, columns in ADDED_COLUMNS.items():
            have = {r[1] for r in self.con.execute(f"PRAGMA table_info({table})")}
            for name, kind in columns:
                if name not in have:
                    self.con.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")

    # ---------------------------------------------------------------- opening
    @classmethod
    def create(cls, path: Path, header: Header, durable: bool = False) -> Journal:
        """A new journal with its header (the file must not exist)."""
        if path.exists():
            raise bad(path, "a journal already exists here and is never overwritten", "choose another --out")
        con = sqlite3.connect(path, isolation_level=None)
        # 16 KiB pages: a digits checkpoint (~0.5 MB, replaced every sample) costs ~3 ms instead of ~6
        con.execute(f"PRAGMA page_size={PAGE_SIZE}")
        con.execute("BEGIN IMMEDIATE")
        try:
            for stmt in SCHEMA.split(";"):
                if stmt.strip():
                    con.execute(stmt)
            h = header
            con.execute(
                "INSERT INTO header VALUES (1,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    FORMAT,
                    h.protocol_name,
                    h.protocol_path,
                    h.protocol_text,
                    h.protocol_sha256,
                    h.backend,
                    h.seed,
                    h.epochs,
                    h.samples_per_epoch,
                    h.n_params,
                    json.dumps(h.tracked_params),
                    h.snapshot_every,
                    json.dumps(h.versions),
                    json.dumps(h.instruments),
                    h.started,
                    json.dumps(h.extra),
                ),
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            con.close()
            raise
        return cls(path, con, durable)

    @classmethod
    def open(cls, path: Path, durable: bool = False) -> Journal:
        """Reopen a journal after checking it (on a copy): one clear line if it is damaged."""
        check_file(path)
        con = sqlite3.connect(f"file:{path}?mode=rw", uri=True, isolation_level=None)
        return cls(path, con, durable)

    @classmethod
    def open_live(cls, path: Path) -> Journal:
        """Open read-only a journal that may be in use (a running process's: every committed sample is seen)."""
        try:
            con = connect_reader(path, isolation_level=None)  # immutable in a read-only folder
            con.execute("SELECT count(*) FROM header").fetchone()
        except sqlite3.DatabaseError as exc:
            raise bad(path, f"cannot read the journal ({exc})", "check the file, or try again") from None
        return cls(path, con, writable=False)

    @classmethod
    def open_untouched(cls, path: Path) -> Journal:
        """Open read-only a journal no process is writing, leaving no SQLite side files beside it.

        A journal whose write-ahead log still holds transactions (a killed run's) is read
        with it (as :meth:`open_live` does)."""
        wal = path.with_name(path.name + "-wal")
        if wal.is_file() and wal.stat().st_size:
            return cls.open_live(path)
        try:
            con = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True, isolation_level=None)
            con.execute("SELECT count(*) FROM header").fetchone()
        except sqlite3.DatabaseError as exc:
            raise bad(path, f"cannot read the journal ({exc})", "check the file, or try again") from None
        return cls(path, con, writable=False)

    def close(self) -> None:
        """Close the connection (folds the WAL back into the file; never leaves it locked)."""
        try:
            self.con.close()
        except sqlite3.Error:
            pass

    def _tx(self) -> _Transaction:
        return _Transaction(self.con, on_rollback=self._forget_bounds)

    def _forget_bounds(self) -> None:
        self._bounds = None

    # ---------------------------------------------------------------- writing
    def begin_session(self, kind: str, protocol_text: str | None = None, after: int = 0) -> int:
        """A new session (this process); ``protocol_text`` when it runs a changed protocol (``--force``).

        Its first sample follows the journal's last, or ``after`` (a child run's start) when later."""
        seq = max(self.last_sample(), after)
        sha = hashlib.sha256(protocol_text.encode()).hexdigest() if protocol_text is not None else None
        with self._tx():
            self._upgrade()  # a journal written by an earlier version gets the columns added since
            cur = self.con.execute(
                "INSERT INTO sessions (kind, started, exit_status, first_sample, protocol_text, protocol_sha256) "
                "VALUES (?,?,?,?,?,?)",
                (kind, utc_now(), "running", seq + 1, protocol_text, sha),
            )
        self.session = int(cur.lastrowid)
        self._read_columns()
        return self.session

    def record_rehome(self, iterations: int, residual: float) -> None:
        with self._tx():
            self.con.execute(
                "UPDATE sessions SET rehome_iterations = ?, rehome_residual = ? WHERE id = ?",
                (iterations, residual, self.session),
            )

    def end_session(self, status: str, error: str | None, safe_state: str | None) -> None:
        with self._tx():
            self.con.execute(
                "UPDATE sessions SET ended = ?, exit_status = ?, error = ?, safe_state = ?, last_sample = ? "
                "WHERE id = ?",
                (utc_now(), status, error, safe_state, self.last_sample(), self.session),
            )

    def record_stability(self, row: dict[str, Any], checkpoint: StoredCheckpoint | None = None) -> None:
        """A reading of the stability monitor (and a rollback's checkpoint): one transaction."""
        cols = [c for c in STABILITY_COLUMNS if c != "session"]
        with self._tx():
            if not self._has_stability:  # a journal written before the monitor, resumed with one
                self.con.execute(SCHEMA[SCHEMA.index("CREATE TABLE stability") :].split(";")[0])
                self._has_stability = True
            self.con.execute(
                f"INSERT INTO stability ({','.join(cols)}, session) VALUES ({','.join('?' * (len(cols) + 1))})",
                [row[c] for c in cols] + [self.session],
            )
            if checkpoint is not None:
                self._write_checkpoint(checkpoint)

    def _write_checkpoint(self, cp: StoredCheckpoint) -> None:
        old = self._bounds
        if old is None or not (np.array_equal(old[0], cp.knob_low) and np.array_equal(old[1], cp.knob_high)):
            # constant during a run: written with the first checkpoint, not with every sample
            low, high = (np.ascontiguousarray(a, dtype="<f8") for a in (cp.knob_low, cp.knob_high))
            self.con.execute("INSERT OR REPLACE INTO knob_bounds VALUES (1, ?, ?)", (low.tobytes(), high.tobytes()))
            self._bounds = (low.copy(), high.copy())
        b_scalars, b_blob = pack(cp.backend) if cp.backend is not None else (None, None)
        sha = digest(cp.scalars, cp.blob, b_scalars, b_blob)
        self.con.execute(
            "INSERT OR REPLACE INTO checkpoint VALUES (1,?,?,?,?,?,?,?,?,?)",
            (cp.seq, cp.epoch, cp.done, cp.scalars, cp.blob, b_scalars, b_blob, utc_now(), sha),
        )

    def _snapshot(self, seq: int, epoch: int, theta: np.ndarray, knobs: np.ndarray | None) -> None:
        blob = np.ascontiguousarray(theta, dtype="<f8").tobytes()
        if self._knob_snapshots:
            kb = None if knobs is None else np.ascontiguousarray(knobs, dtype="<f8").tobytes()
            self.con.execute("INSERT OR REPLACE INTO snapshots VALUES (?,?,?,?)", (seq, epoch, blob, kb))
        else:
            self.con.execute("INSERT OR REPLACE INTO snapshots VALUES (?,?,?)", (seq, epoch, blob))

    def record_sample(
        self,
        row: dict[str, Any],
        checkpoint: StoredCheckpoint | None,
        snapshot: tuple[np.ndarray, np.ndarray | None] | None = None,
    ) -> None:
        """One training sample, its checkpoint when given and a full (θ*, knobs) snapshot when given: one transaction.

        ``row`` holds the ``samples`` columns but ``session``; vectors as arrays (or None).
        """
        values = []
        cols = self._sample_columns
        for col in cols:
            v = self.session if col == "session" else row.get(col)
            values.append(vec(v) if col in VECTOR_COLUMNS else v)
        with self._tx():
            self.con.execute(f"INSERT INTO samples ({','.join(cols)}) VALUES ({','.join('?' * len(values))})", values)
            if snapshot is not None:
                self._snapshot(row["seq"], row["epoch"], *snapshot)
            if checkpoint is not None:
                self._write_checkpoint(checkpoint)

    def sample_row(self, seq: int) -> dict[str, Any] | None:
        rows = self.rows("SELECT * FROM samples WHERE seq = ?", (seq,))
        return rows[0] if rows else None

    def record_initial(
        self,
        accuracy: float,
        loss: float,
        checkpoint: StoredCheckpoint,
        snapshot: tuple[np.ndarray, np.ndarray],
        samples: int = 0,
    ) -> None:
        """The evaluation before training (epoch 0), θ₀'s snapshot and the first checkpoint.

        ``samples``: the training samples behind θ₀ (a child run's, taken from its parent's best).
        """
        with self._tx():
            self.con.execute(
                "INSERT INTO epochs (epoch, samples, test_accuracy, test_loss) VALUES (0, ?, ?, ?)",
                (samples, accuracy, loss),
            )
            self._snapshot(samples, 0, *snapshot)
            self._write_checkpoint(checkpoint)

    def record_epoch(
        self, metrics: dict[str, Any], checkpoint: StoredCheckpoint, snapshot: tuple[np.ndarray, np.ndarray]
    ) -> None:
        """An epoch's metrics, a snapshot at its end and the checkpoint after its evaluation."""
        cols = list(metrics)
        with self._tx():
            self.con.execute(
                f"INSERT INTO epochs ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                [metrics[c] for c in cols],
            )
            self._snapshot(metrics["samples"], metrics["epoch"], *snapshot)
            self._write_checkpoint(checkpoint)


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, rolled back on any exception."""

    def __init__(self, con: sqlite3.Connection, on_rollback=None):
        self.con = con
        self.on_rollback = on_rollback

    def __enter__(self) -> sqlite3.Connection:
        self.con.execute("BEGIN IMMEDIATE")
        return self.con

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.con.execute("COMMIT")
        else:
            try:
                self.con.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # the failed statement may have ended the transaction already (disk full)
            if self.on_rollback is not None:
                self.on_rollback()


def tracked_indices(n_params: int, k: int = 16) -> list[int]:
    """A fixed, evenly spread sample of parameter indices whose θ* is journaled every sample."""
    if n_params <= k:
        return list(range(n_params))
    return [int(i) for i in np.linspace(0, n_params - 1, k).round().astype(int)]
