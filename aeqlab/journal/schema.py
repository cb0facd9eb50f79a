"""The journal's file name, format number and SQLite schema (documented in docs/journal.md).

Test metrics of an epoch are NULL when the schedule did not evaluate it
(``schedule.evaluate_every``); snapshots carry the knob setpoints with θ* (NULL in
journals written before they did). The ``stability`` table (the stability monitor's
readings) is absent from journals written before it: it is created when such a run
is resumed, and readers take its absence for no readings.

Columns added after format 1 first shipped are appended to their table, nullable, and
listed in :data:`ADDED_COLUMNS`: a session that writes to an older journal adds them
first (``ALTER TABLE … ADD COLUMN``; the older rows hold NULL, "not recorded"), and
readers treat a missing column as not recorded, so older run folders open unchanged.
"""

from __future__ import annotations

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
    session INTEGER NOT NULL,
    compliance_tripped INTEGER
);
CREATE TABLE epochs (
    epoch INTEGER PRIMARY KEY,
    samples INTEGER NOT NULL,
    beta REAL,
    train_accuracy REAL,
    train_loss REAL,
    test_accuracy REAL,
    test_loss REAL,
    homeostasis_iterations REAL,
    homeostasis_unconverged INTEGER,
    saturated INTEGER,
    step_norm REAL,
    wall_s REAL
);
CREATE TABLE snapshots (
    seq INTEGER PRIMARY KEY,
    epoch INTEGER NOT NULL,
    theta BLOB NOT NULL,
    knobs BLOB
);
CREATE TABLE knob_bounds (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    low BLOB NOT NULL,
    high BLOB NOT NULL
);
CREATE TABLE stability (
    id INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    rho REAL NOT NULL,
    source TEXT NOT NULL,
    threshold REAL NOT NULL,
    action TEXT NOT NULL,
    beta REAL NOT NULL,
    epsilon_scale REAL NOT NULL,
    detail TEXT NOT NULL,
    session INTEGER
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

ADDED_COLUMNS = {"samples": (("compliance_tripped", "INTEGER"),)}  # table -> (column, type), in order

TABLES = ("header", "sessions", "samples", "epochs", "snapshots", "knob_bounds", "checkpoint", "stability")
OPTIONAL_TABLES = ("stability",)  # absent from journals written before the stability monitor
