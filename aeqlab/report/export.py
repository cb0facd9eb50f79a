"""CSV export of a run's journal: samples (vectors spread over named columns), epochs, sessions."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path
from typing import Any

from aeqlab.errors import InputError
from aeqlab.report.data import corrupt, open_run, run_naming

VECTOR_COLS = ("free_output", "target", "nudge_homeostatic", "nudge_clamped", "tracked")


def export_csv(run_dir: Path, out: Path | None = None) -> list[Path]:
    """Write samples.csv, epochs.csv and sessions.csv; return their paths.

    The tracked parameters' columns are named like the figures' traces: ``θ* W1[0,3] (dac/ao3)``
    (layer and index, and the knob channel when the protocol names it).
    """
    store, journal = open_run(Path(run_dir))
    try:
        tables = {
            "samples": journal.rows("SELECT * FROM samples ORDER BY seq"),
            "epochs": journal.rows("SELECT * FROM epochs ORDER BY epoch"),
            "sessions": journal.rows("SELECT * FROM sessions ORDER BY id"),
        }
        header = journal.header()
        n = run_naming(journal)
    except (sqlite3.DatabaseError, ValueError, TypeError, KeyError) as exc:
        raise corrupt(journal, exc) from None
    finally:
        journal.close()
    out = Path(out) if out is not None else store.path
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the export folder: {exc.strerror}", where=str(out)) from None
    tracked = [tracked_column(n, int(i)) for i in header.tracked_params]
    try:
        return _write_csv(tables, tracked, out)
    except (ValueError, TypeError) as exc:
        raise corrupt(journal, exc) from None


def tracked_column(n: Any, index: int) -> str:
    """The CSV column of tracked parameter ``index``: ``θ* W1[0,3] (dac/ao3)``."""
    name = n.params[index] if index < len(n.params) else f"θ[{index}]"
    chan = f" ({n.knob_channels[index]})" if index < len(n.knob_channels) else ""
    return f"θ* {name}{chan}"


def _write_csv(tables: dict[str, list[dict[str, Any]]], tracked: list[str], out: Path) -> list[Path]:
    files = []
    for name, rows in tables.items():
        if name == "samples" and rows:
            widths = {c: max(len(json.loads(r[c])) for r in rows) for c in VECTOR_COLS}
            flat = []
            for r in rows:
                f = {k: v for k, v in r.items() if k not in VECTOR_COLS}
                for c in VECTOR_COLS:
                    v = json.loads(r[c])
                    for i in range(widths[c]):
                        col = tracked[i] if c == "tracked" and i < len(tracked) else f"{c}_{i}"
                        f[col] = v[i] if i < len(v) else ""
                flat.append(f)
            rows = flat
        path = out / f"{name}.csv"
        with open(path, "w", newline="", encoding="utf-8") as fh:
            if rows:
                w = csv.DictWriter(fh, fieldnames=list(rows[0]))
                w.writeheader()
                w.writerows(rows)
        files.append(path)
    return files
