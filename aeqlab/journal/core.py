"""The run journal: one SQLite file (WAL mode) per run, one transaction per training sample.

Each committed training sample writes, in one transaction, its row in ``samples``
(scalars and small vectors) and replaces the single row of ``checkpoint`` (the full
state to continue from: engine state and, on a twin, the backend's own snapshot).
Full parameter vectors go only into the checkpoint and into ``snapshots`` every N
samples. The schema is documented in ``docs/journal.md``.

A journal that is not one, is truncated or is corrupt is refused with one line
naming the file; it is checked on a copy, so a damaged file is never written to.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aeqlab.engine.feedback import SecantGains
from aeqlab.engine.methods.aeqprop import EngineState
from aeqlab.engine.methods.phases import FeedbackMemory, SettleMemory
from aeqlab.engine.trainer import Checkpoint, EpochMetrics, EpochTotals, Evaluation, SampleEvent
from aeqlab.errors import InputError

FILE = "journal.sqlite"
FORMAT = 1
PAGE_SIZE = 16384
WAL_LIMIT = 32 * 2**20  # bytes the write-ahead log is cut back to after a checkpoint

SCHEMA = """
CREATE TABLE header (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    format INTEGER NOT NULL,
    protocol_name TEXT NOT NULL,
    protocol_path TEXT,
    protocol_text TEXT NOT NULL,
    protocol_sha256 TEXT NOT NULL,
    backend TEXT NOT NULL,
    seed INTEGER NOT NULL,
    epochs INTEGER NOT NULL,
    samples_per_epoch INTEGER NOT NULL,
    n_params INTEGER NOT NULL,
    tracked_params TEXT NOT NULL,
    snapshot_every INTEGER NOT NULL,
    versions TEXT NOT NULL,
    instruments TEXT NOT NULL,
    started TEXT NOT NULL,
    extra TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE sessions (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    started TEXT NOT NULL,
    ended TEXT,
    exit_status TEXT NOT NULL,
    error TEXT,
    safe_state TEXT,
    first_sample INTEGER NOT NULL,
    last_sample INTEGER,
    rehome_iterations INTEGER,
    rehome_residual REAL,
    protocol_text TEXT,
    protocol_sha256 TEXT
);
CREATE TABLE samples (
    seq INTEGER PRIMARY KEY,
    epoch INTEGER NOT NULL,
    position INTEGER NOT NULL,
    example INTEGER NOT NULL,
    label INTEGER NOT NULL,
    predicted INTEGER NOT NULL,
    correct INTEGER NOT NULL,
    loss REAL NOT NULL,
    free_output TEXT NOT NULL,
    target TEXT NOT NULL,
    nudge_homeostatic TEXT NOT NULL,
    nudge_clamped TEXT NOT NULL,
    nudge_norm REAL NOT NULL,
    step_norm REAL NOT NULL,
    free_iterations INTEGER NOT NULL,
    homeostatic_iterations INTEGER NOT NULL,
    clamped_iterations INTEGER NOT NULL,
    free_residual REAL NOT NULL,
    residual REAL NOT NULL,
    tracking_residual REAL NOT NULL,
    converged INTEGER NOT NULL,
    saturated INTEGER NOT NULL,
    settle_timeouts INTEGER NOT NULL,
    free_s REAL,
    homeostatic_s REAL,
    clamped_s REAL,
    sample_s REAL NOT NULL,
    tracked TEXT NOT NULL,
    session INTEGER NOT NULL
);
CREATE TABLE epochs (
    epoch INTEGER PRIMARY KEY,
    samples INTEGER NOT NULL,
    beta REAL,
    train_accuracy REAL,
    train_loss REAL,
    test_accuracy REAL NOT NULL,
    test_loss REAL NOT NULL,
    homeostasis_iterations REAL,
    homeostasis_unconverged INTEGER,
    saturated INTEGER,
    step_norm REAL,
    wall_s REAL
);
CREATE TABLE snapshots (
    seq INTEGER PRIMARY KEY,
    epoch INTEGER NOT NULL,
    theta BLOB NOT NULL
);
CREATE TABLE knob_bounds (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    low BLOB NOT NULL,
    high BLOB NOT NULL
);
CREATE TABLE checkpoint (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    done INTEGER NOT NULL,
    scalars TEXT NOT NULL,
    engine BLOB NOT NULL,
    backend_scalars TEXT,
    backend BLOB,
    written TEXT NOT NULL,
    sha256 TEXT NOT NULL
);
"""

TABLES = ("header", "sessions", "samples", "epochs", "snapshots", "knob_bounds", "checkpoint")


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _settle_timeouts(rec: Any) -> int:
    """Settles of a sample that timed out before the readings agreed (the homeostatic phase may be the free one)."""
    phases = [rec.free, rec.clamped] + ([rec.homeostatic] if rec.homeostatic is not rec.free else [])
    return int(sum(getattr(p, "settle_timeouts", 0) for p in phases))


def _vec(a: np.ndarray | None) -> str:
    """A small vector as a JSON array (shortest round-trip floats)."""
    if a is None:
        return "[]"
    return json.dumps([float(v) for v in np.ravel(a)])


# ----------------------------------------------------------------- (de)serialising


def pack(obj: Any) -> tuple[str, bytes]:
    """Nested dicts/lists of numpy arrays and scalars → (JSON skeleton, the arrays' raw bytes).

    An array becomes ``{"__array__": [offset, dtype, shape]}`` in the skeleton, its
    bytes (C order, the dtype's own byte order, e.g. ``<f8``) at ``offset`` in the blob.
    """
    chunks: list[bytes] = []
    size = 0

    def walk(o: Any) -> Any:
        nonlocal size
        if isinstance(o, np.ndarray):
            if o.dtype.kind not in "biuf":
                raise TypeError(f"cannot journal an array of {o.dtype}")
            a = np.ascontiguousarray(o).astype(o.dtype.newbyteorder("<"), copy=False)
            data = a.tobytes()
            ref = [size, a.dtype.str, list(a.shape)]
            chunks.append(data)
            size += len(data)
            return {"__array__": ref}
        if isinstance(o, dict):
            return {"__dict__": [[k, walk(v)] for k, v in o.items()]}
        if isinstance(o, (list, tuple)):
            return [walk(v) for v in o]
        if isinstance(o, np.bool_ | bool):
            return bool(o)
        if isinstance(o, np.integer):
            return int(o)
        if isinstance(o, np.floating):
            return float(o)
        return o

    skeleton = json.dumps(walk(obj))
    return skeleton, b"".join(chunks)


def unpack(skeleton: str, blob: bytes) -> Any:
    """Inverse of :func:`pack`."""

    def walk(o: Any) -> Any:
        if isinstance(o, dict):
            if "__array__" in o:
                offset, dtype, shape = o["__array__"]
                n = int(np.prod(shape)) if shape else 1
                return np.frombuffer(blob, dtype=dtype, count=n, offset=offset).reshape(shape).copy()
            return {k: walk(v) for k, v in o["__dict__"]}
        if isinstance(o, list):
            return [walk(v) for v in o]
        return o

    return walk(json.loads(skeleton))


def pack_checkpoint(cp: Checkpoint) -> tuple[str, bytes]:
    st = cp.state
    mem = st.memory
    scalars = {
        "epoch": cp.epoch,
        "done": cp.done,
        "samples_done": cp.samples_done,
        "beta": cp.beta,
        "rng_state": cp.rng_state,
        "totals": dict(cp.totals.__dict__),
        "gains_min_step": mem.knob_gains.min_step,
        "gains_bounds": list(mem.knob_gains.bounds),
    }
    # the adaptive settle's observations; its last readings go with the arrays
    settle = SettleMemory(window=mem.settle.window, seen=mem.settle.seen).to_state()
    arrays = {
        "targets": st.targets,
        "knobs": st.knobs,
        "knob_gains": mem.knob_gains.gain,
        "susceptibility": mem.susceptibility,
    }
    for name in ("theta", "outputs"):
        settle.pop(name)
        if getattr(mem.settle, name) is not None:
            arrays[f"settle_{name}"] = getattr(mem.settle, name)
    scalars["settle"] = settle
    scalars["arrays"], blob = pack(arrays)
    return json.dumps(scalars), blob


def unpack_checkpoint(scalars_text: str, blob: bytes, low: np.ndarray, high: np.ndarray) -> Checkpoint:
    s = json.loads(scalars_text)
    a = unpack(s["arrays"], blob)
    targets, knobs, gains, chi = a["targets"], a["knobs"], a["knob_gains"], a["susceptibility"]
    sg = SecantGains(gains.size, 1.0, min_step=s["gains_min_step"], bounds=tuple(s["gains_bounds"]))
    sg.gain = gains.copy()
    memory = FeedbackMemory(knob_gains=sg, susceptibility=chi.copy(), knob_low=low.copy(), knob_high=high.copy())
    if "settle" in s:  # journals written before the adaptive settle have none
        settle = dict(s["settle"])
        for name in ("theta", "outputs"):
            settle[name] = a.get(f"settle_{name}")
        memory.settle = SettleMemory.from_state(settle)
    state = EngineState(targets=targets.copy(), knobs=knobs.copy(), memory=memory)
    return Checkpoint(
        epoch=s["epoch"],
        done=s["done"],
        samples_done=s["samples_done"],
        beta=s["beta"],
        rng_state=s["rng_state"],
        totals=EpochTotals(**s["totals"]),
        state=state,
    )


def _digest(*parts: str | bytes | None) -> str:
    """SHA-256 over a checkpoint's columns (SQLite checks its pages' structure, not their contents)."""
    h = hashlib.sha256()
    for part in parts:
        data = b"" if part is None else (part.encode() if isinstance(part, str) else part)
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


# ------------------------------------------------------------------------ validation


def _bad(path: Path, what: str, hint: str) -> InputError:
    return InputError(what, where=str(path), hint=hint)


def check_file(path: Path) -> None:
    """Refuse a journal that is missing, not SQLite, truncated or corrupt (checked on a copy)."""
    if not path.is_file():
        raise _bad(
            path.parent,
            f"not a run folder (no {FILE})",
            "give a folder made by 'aeqlab run'; 'aeqlab runs DIR' lists them",
        )
    keep = "the file is left untouched; start a new run or restore the file from a backup"
    with open(path, "rb") as fh:
        head = fh.read(100)
    size = path.stat().st_size
    if len(head) < 100 or not head.startswith(b"SQLite format 3\x00"):
        raise _bad(path, "not an SQLite journal (bad or missing file header)", keep)
    page = struct.unpack(">H", head[16:18])[0]
    page = 65536 if page == 1 else page
    pages, counter, valid_for = struct.unpack(">I", head[28:32])[0], head[24:28], head[92:96]
    if size % page or (counter == valid_for and size < pages * page):
        raise _bad(path, f"the journal is truncated ({size} bytes, expected {pages * page})", keep)
    with tempfile.TemporaryDirectory(prefix="aeqlab-check-") as tmp:
        copy = Path(tmp) / FILE
        shutil.copyfile(path, copy)
        wal = path.with_name(path.name + "-wal")
        if wal.exists():
            shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
        try:
            con = sqlite3.connect(copy)
            try:
                result = con.execute("PRAGMA quick_check").fetchone()[0]
                names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                rows = con.execute("SELECT format FROM header").fetchall() if "header" in names else []
            finally:
                con.close()
        except sqlite3.DatabaseError as exc:
            raise _bad(path, f"the journal is corrupt ({exc})", keep) from None
    if result != "ok":
        raise _bad(path, f"the journal is corrupt (integrity check: {result})", keep)
    missing = [t for t in TABLES if t not in names]
    if missing or len(rows) != 1:
        raise _bad(path, f"not an aeqlab journal (missing {', '.join(missing) or 'header row'})", keep)
    if rows[0][0] != FORMAT:
        raise _bad(path, f"journal format {rows[0][0]} is not the supported {FORMAT}", "use a matching aeqlab")


# --------------------------------------------------------------------------- journal


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


class Journal:
    """An open run journal. Create with :meth:`create`, reopen with :meth:`open`."""

    def __init__(self, path: Path, con: sqlite3.Connection, durable: bool = False):
        self.path = path
        self.con = con
        self.session: int | None = None
        self._bounds: tuple[np.ndarray, np.ndarray] | None = None  # knob bounds as last written
        con.execute("PRAGMA journal_mode=WAL")
        # NORMAL: a commit survives the process being killed; FULL also survives power loss (benches)
        con.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        con.execute(f"PRAGMA journal_size_limit={WAL_LIMIT}")

    # ---------------------------------------------------------------- opening
    @classmethod
    def create(cls, path: Path, header: Header, durable: bool = False) -> Journal:
        """A new journal with its header (the file must not exist)."""
        if path.exists():
            raise _bad(path, "a journal already exists here and is never overwritten", "choose another --out")
        con = sqlite3.connect(path, isolation_level=None)
        # 16 KiB pages: a digits checkpoint (~0.5 MB, replaced every sample) costs ~3 ms instead of ~6
        con.execute(f"PRAGMA page_size={PAGE_SIZE}")
        j = cls(path, con, durable)
        with j._tx():
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
        return j

    @classmethod
    def open(cls, path: Path, durable: bool = False) -> Journal:
        """Reopen a journal after checking it (on a copy): one clear line if it is damaged."""
        check_file(path)
        con = sqlite3.connect(f"file:{path}?mode=rw", uri=True, isolation_level=None)
        return cls(path, con, durable)

    @classmethod
    def open_live(cls, path: Path) -> Journal:
        """Open, read-only, a journal that a running process is writing (it sees every committed sample)."""
        try:
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
            con.execute("SELECT count(*) FROM header").fetchone()
        except sqlite3.DatabaseError as exc:
            raise _bad(path, f"cannot read the journal of the running process ({exc})", "try again") from None
        j = cls.__new__(cls)
        j.path, j.con, j.session, j._bounds = path, con, None, None
        return j

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
    def begin_session(self, kind: str, protocol_text: str | None = None) -> int:
        """A new session (this process); ``protocol_text`` when it runs a changed protocol (``--force``)."""
        seq = self.last_sample()
        digest = hashlib.sha256(protocol_text.encode()).hexdigest() if protocol_text is not None else None
        with self._tx():
            cur = self.con.execute(
                "INSERT INTO sessions (kind, started, exit_status, first_sample, protocol_text, protocol_sha256) "
                "VALUES (?,?,?,?,?,?)",
                (kind, utc_now(), "running", seq + 1, protocol_text, digest),
            )
        self.session = int(cur.lastrowid)
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

    def _write_checkpoint(self, cp: Checkpoint, backend_snapshot: dict | None) -> None:
        mem = cp.state.memory
        old = self._bounds
        if old is None or not (np.array_equal(old[0], mem.knob_low) and np.array_equal(old[1], mem.knob_high)):
            # constant during a run: written with the first checkpoint, not with every sample
            low, high = (np.ascontiguousarray(a, dtype="<f8") for a in (mem.knob_low, mem.knob_high))
            self.con.execute("INSERT OR REPLACE INTO knob_bounds VALUES (1, ?, ?)", (low.tobytes(), high.tobytes()))
            self._bounds = (low.copy(), high.copy())
        scalars, engine = pack_checkpoint(cp)
        b_scalars, b_blob = pack(backend_snapshot) if backend_snapshot is not None else (None, None)
        digest = _digest(scalars, engine, b_scalars, b_blob)
        self.con.execute(
            "INSERT OR REPLACE INTO checkpoint VALUES (1,?,?,?,?,?,?,?,?,?)",
            (cp.samples_done, cp.epoch, cp.done, scalars, engine, b_scalars, b_blob, utc_now(), digest),
        )

    def record_sample(
        self, ev: SampleEvent, tracked: np.ndarray, backend_snapshot: dict | None, snapshot: bool
    ) -> None:
        """One training sample, its checkpoint and (every N samples) a full θ* snapshot: one transaction."""
        rec = ev.record
        ph = ev.phase_seconds or (None, None, None)
        targets = ev.checkpoint.state.targets
        row = (
            ev.samples_done,
            ev.epoch,
            ev.index,
            ev.example,
            ev.label,
            int(np.argmax(rec.prediction)),
            int(rec.correct),
            float(rec.loss),
            _vec(rec.prediction),
            _vec(ev.target),
            _vec(rec.homeostatic.currents if rec.homeostatic is not rec.free else None),
            _vec(rec.clamped.currents),
            float(np.linalg.norm(rec.clamped.currents)),
            float(np.linalg.norm(rec.step)),
            int(rec.free.iterations),
            int(rec.homeostatic.iterations if rec.homeostatic is not rec.free else 0),
            int(rec.clamped.iterations),
            float(rec.free.residual),
            float(rec.homeostatic.residual),
            float(max(rec.homeostatic.tracking_residual, rec.clamped.tracking_residual)),
            int(rec.converged),
            int(rec.saturated),
            _settle_timeouts(rec),
            ph[0],
            ph[1],
            ph[2],
            float(ev.seconds),
            _vec(targets[tracked]),
            self.session,
        )
        with self._tx():
            self.con.execute(f"INSERT INTO samples VALUES ({','.join('?' * len(row))})", row)
            if snapshot:
                self._snapshot(ev.samples_done, ev.epoch, targets)
            self._write_checkpoint(ev.checkpoint, backend_snapshot)

    def _snapshot(self, seq: int, epoch: int, theta: np.ndarray) -> None:
        blob = np.ascontiguousarray(theta, dtype="<f8").tobytes()
        self.con.execute("INSERT OR REPLACE INTO snapshots VALUES (?,?,?)", (seq, epoch, blob))

    def record_initial(self, ev: Evaluation, backend_snapshot: dict | None) -> None:
        """The evaluation before training (epoch 0), θ₀'s snapshot and the first checkpoint."""
        with self._tx():
            self.con.execute(
                "INSERT INTO epochs (epoch, samples, test_accuracy, test_loss) VALUES (0, 0, ?, ?)",
                (ev.accuracy, ev.loss),
            )
            self._snapshot(0, 0, ev.checkpoint.state.targets)
            self._write_checkpoint(ev.checkpoint, backend_snapshot)

    def record_epoch(self, m: EpochMetrics, backend_snapshot: dict | None) -> None:
        """An epoch's metrics, a snapshot of θ* at its end and the checkpoint after its evaluation."""
        d = m.as_dict()
        cols = list(d)
        with self._tx():
            self.con.execute(
                f"INSERT INTO epochs ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                [d[c] for c in cols],
            )
            self._snapshot(m.samples, m.epoch, m.checkpoint.state.targets)
            self._write_checkpoint(m.checkpoint, backend_snapshot)

    # ---------------------------------------------------------------- reading
    def header(self) -> Header:
        cur = self.con.execute("SELECT * FROM header")
        names = [c[0] for c in cur.description]
        row = dict(zip(names, cur.fetchone()))
        for key in ("tracked_params", "versions", "instruments", "extra"):
            try:
                row[key] = json.loads(row[key])
            except (TypeError, ValueError):
                raise _bad(self.path, f"the header is corrupt ({key})", "the file is left untouched") from None
        row.pop("id")
        row.pop("format")
        return Header(**row)

    def last_sample(self) -> int:
        return int(self.con.execute("SELECT coalesce(max(seq), 0) FROM samples").fetchone()[0])

    def has_checkpoint(self) -> bool:
        return self.con.execute("SELECT count(*) FROM checkpoint").fetchone()[0] > 0

    def checkpoint(self) -> tuple[Checkpoint, dict | None] | None:
        """The last committed checkpoint and the backend snapshot saved with it (or None)."""
        row = self.con.execute("SELECT scalars, engine, backend_scalars, backend, sha256 FROM checkpoint").fetchone()
        bounds = self.con.execute("SELECT low, high FROM knob_bounds").fetchone()
        if row is None or bounds is None:
            return None
        if _digest(*row[:4]) != row[4]:
            raise _bad(
                self.path,
                "the journal's checkpoint is corrupt (its SHA-256 does not match)",
                "the file is left untouched; 'aeqlab report' and 'aeqlab export' still read the samples",
            )
        low, high = (np.frombuffer(b, dtype="<f8").copy() for b in bounds)
        cp = unpack_checkpoint(row[0], row[1], low, high)
        snap = unpack(row[2], row[3]) if row[2] is not None else None
        return cp, snap

    def rows(self, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
        cur = self.con.execute(sql, params)
        names = [c[0] for c in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]

    def epochs(self) -> list[dict[str, Any]]:
        return self.rows("SELECT * FROM epochs ORDER BY epoch")

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
            self.con.execute("ROLLBACK")
            if self.on_rollback is not None:
                self.on_rollback()


def tracked_indices(n_params: int, k: int = 16) -> list[int]:
    """A fixed, evenly spread sample of parameter indices whose θ* is journaled every sample."""
    if n_params <= k:
        return list(range(n_params))
    return [int(i) for i in np.linspace(0, n_params - 1, k).round().astype(int)]
