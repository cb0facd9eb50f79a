"""The table of runs in a folder: status, reason, protocol file and the fields that tell runs apart."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from aeqlab.errors import InputError
from aeqlab.journal import FILE
from aeqlab.journal.reading import connect_reader
from aeqlab.runs.store import lock_held


def _seconds(a: str | None, b: str | None) -> float | None:
    if not a or not b:
        return None
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    return time.mktime(time.strptime(b, fmt)) - time.mktime(time.strptime(a, fmt))


def _task(protocol_text: str) -> str:
    import yaml

    try:
        return ((yaml.safe_load(protocol_text) or {}).get("dataset") or {}).get("task") or "classification"
    except (yaml.YAMLError, AttributeError):
        return "classification"


def run_row(path: Path) -> dict[str, Any]:
    """One line of the runs table; never raises (an unreadable journal says so)."""
    row: dict[str, Any] = {"run": path.name, "path": str(path)}
    try:
        con = connect_reader(path / FILE)  # no -wal, -shm or lock file in a read-only folder
        try:
            h = con.execute(
                "SELECT protocol_name, protocol_path, protocol_text, backend, seed, started, epochs, samples_per_epoch "
                "FROM header"
            ).fetchone()
            sess = con.execute("SELECT started, ended, exit_status, error FROM sessions ORDER BY id").fetchall()
            last = con.execute("SELECT coalesce(max(seq), 0) FROM samples").fetchone()[0]
            ep = con.execute("SELECT test_accuracy, test_loss FROM epochs ORDER BY epoch DESC LIMIT 1").fetchone()
        finally:
            con.close()
    except (sqlite3.Error, TypeError) as exc:
        row.update(status="unreadable", reason=str(exc), failed_start=False)
        return row
    if h is None:
        row.update(status="unreadable", reason="the journal has no header", failed_start=False)
        return row
    status = sess[-1][2] if sess else "created"
    if status == "running" and lock_held(path) is False:
        status = "killed"  # nobody holds the folder: the process died without ending its session
    # the reason is the last failing session's error (a later clean session clears nothing: say what failed)
    reason = next((s[3] for s in reversed(sess) if s[3]), None)
    if status == "killed" and not reason:
        reason = "the process ended without closing its session"
    durations = [_seconds(s[0], s[1]) for s in sess]
    task = _task(h[2])
    row.update(
        protocol=h[0],
        protocol_file=h[1],
        backend=h[3],
        seed=h[4],
        started=h[5],
        epochs=h[6],
        task=task,
        status=status,
        reason=reason,
        samples=last,
        planned=h[6] * h[7],
        metric="R²" if task == "regression" else "accuracy",
        test_accuracy=ep[0] if ep else None,
        test_loss=ep[1] if ep else None,
        duration_s=sum(d for d in durations if d is not None) if any(d is not None for d in durations) else None,
        failed_start=last == 0 and status not in ("running", "created"),
    )
    return row


def list_runs(folder: Path, hide_failed: bool = False) -> list[dict[str, Any]]:
    """Every run folder directly inside ``folder``, oldest first.

    Parameters
    ----------
    folder
        A folder of run folders.
    hide_failed
        Leave out failed starts: runs that ended without committing a sample.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("no such folder", where=str(folder), hint="give the folder 'aeqlab run --out' wrote into")
    rows = [run_row(p) for p in sorted(folder.iterdir()) if (p / FILE).is_file()]
    return [r for r in rows if not (hide_failed and r.get("failed_start"))]
