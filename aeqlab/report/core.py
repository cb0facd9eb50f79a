"""Reports from run journals: PNG figures and a summary page, a table of runs, CSV export.

A composition-level module (like the CLI): for a run on a twin it may call
:func:`aeqlab.tools.gradcheck.gradcheck` for the gradient-fidelity figure. Every figure's
data comes from the journal, and :func:`make_report` returns the arrays it plotted.
"""

from __future__ import annotations

import csv
import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aeqlab.errors import AeqlabError, InputError
from aeqlab.journal import FILE, Journal
from aeqlab.runs.store import RunLock, RunStore


@dataclass
class ReportResult:
    """What :func:`make_report` wrote, and the arrays behind each figure (figure name → arrays)."""

    out: Path
    files: list[Path] = field(default_factory=list)
    data: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


def _corrupt(journal: Journal, exc: Exception) -> InputError:
    return InputError(
        f"the journal is corrupt ({type(exc).__name__}: {exc})",
        where=str(journal.path),
        hint="the file is left untouched; restore it from a backup",
    )


def _open(run_dir: Path) -> tuple[RunStore, Journal]:
    """A run's journal for reading: checked first, or read as it is while a process writes it."""
    store = RunStore.existing(run_dir)
    if store.journal_path.is_file():
        try:
            with RunLock(store.path):
                pass
        except AeqlabError:  # a live run: its writer keeps the file consistent, and a copy could be torn
            return store, Journal.open_live(store.journal_path)
    return store, Journal.open(store.journal_path)


def _column(rows: list[dict[str, Any]], key: str) -> np.ndarray:
    return np.array([np.nan if r[key] is None else r[key] for r in rows], dtype=float)


def _vectors(rows: list[dict[str, Any]], key: str) -> np.ndarray:
    vecs = [json.loads(r[key]) for r in rows]
    width = max((len(v) for v in vecs), default=0)
    out = np.full((len(vecs), width), np.nan)
    for i, v in enumerate(vecs):
        out[i, : len(v)] = v
    return out


def journal_data(journal: Journal) -> dict[str, dict[str, np.ndarray]]:
    """The arrays behind every figure, read from a journal."""
    samples = journal.rows("SELECT * FROM samples ORDER BY seq")
    epochs = journal.rows("SELECT * FROM epochs ORDER BY epoch")
    trained = [e for e in epochs if e["epoch"] > 0]
    seq = _column(samples, "seq")
    correct = _column(samples, "correct")
    loss = _column(samples, "loss")
    window = max(1, min(len(samples), journal.header().samples_per_epoch))
    kernel = np.ones(window) / window
    running = (lambda a: np.convolve(a, kernel, mode="valid")) if len(samples) >= window else (lambda a: a[:0])
    snap_seq, snap_theta = journal.snapshots()
    return {
        "learning_curves": {
            "epoch_samples": _column(trained, "samples"),
            "train_accuracy": _column(trained, "train_accuracy"),
            "train_loss": _column(trained, "train_loss"),
            "test_samples": _column(epochs, "samples"),
            "test_accuracy": _column(epochs, "test_accuracy"),
            "test_loss": _column(epochs, "test_loss"),
            "running_samples": seq[window - 1 :] if len(samples) >= window else seq[:0],
            "running_accuracy": running(correct),
            "running_loss": running(loss),
        },
        "parameters": {
            "samples": seq,
            "tracked": _vectors(samples, "tracked"),
            "indices": np.array(journal.header().tracked_params, dtype=int),
            "snapshot_samples": snap_seq.astype(float),
            "snapshot_norm": np.linalg.norm(snap_theta, axis=1) if snap_theta.size else np.zeros(0),
        },
        "homeostasis": {
            "samples": seq,
            "iterations": _column(samples, "free_iterations") + _column(samples, "homeostatic_iterations"),
            "residual": _column(samples, "residual"),
            "saturated": _column(samples, "saturated"),
            "converged": _column(samples, "converged"),
        },
        "nudges": {
            "samples": seq,
            "nudge_norm": _column(samples, "nudge_norm"),
            "step_norm": _column(samples, "step_norm"),
        },
    }


def make_report(run_dir: Path, out: Path | None = None, gradcheck_samples: int = 3) -> ReportResult:
    """Write the figures and the summary page of a run; return the files and the plotted arrays.

    Parameters
    ----------
    run_dir
        The run folder.
    out
        Where to write (default ``RUN_DIR/report``).
    gradcheck_samples
        Steps checked against the twin's oracle for the gradient-fidelity figure (runs
        on a twin only; 0 leaves the figure out).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    store, journal = _open(Path(run_dir))
    try:
        header = journal.header()
        data = journal_data(journal)
        sessions = journal.sessions()
        status = journal.status()
        n_samples = journal.last_sample()
    except (ValueError, TypeError, KeyError, sqlite3.DatabaseError) as exc:
        raise _corrupt(journal, exc) from None
    finally:
        journal.close()
    if n_samples == 0:
        raise InputError(
            "the run has no committed samples yet; there is nothing to plot",
            where=str(store.path),
            hint="resume it with 'aeqlab resume' first",
        )
    out = Path(out) if out is not None else store.path / "report"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the report folder: {exc.strerror}", where=str(out)) from None
    result = ReportResult(out=out, data=data)

    def save(fig, name: str) -> None:
        path = out / f"{name}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        result.files.append(path)

    lc = data["learning_curves"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.plot(lc["test_samples"], lc["test_accuracy"], "o-", label="test")
    ax1.plot(lc["epoch_samples"], lc["train_accuracy"], "s-", label="train (epoch)")
    if lc["running_samples"].size:
        ax1.plot(lc["running_samples"], lc["running_accuracy"], lw=0.8, alpha=0.6, label="train (running)")
    ax1.set(xlabel="training samples", ylabel="accuracy", title="accuracy", ylim=(-0.02, 1.02))
    ax1.legend()
    ax2.plot(lc["test_samples"], lc["test_loss"], "o-", label="test")
    ax2.plot(lc["epoch_samples"], lc["train_loss"], "s-", label="train (epoch)")
    if lc["running_samples"].size:
        ax2.plot(lc["running_samples"], lc["running_loss"], lw=0.8, alpha=0.6, label="train (running)")
    ax2.set(xlabel="training samples", ylabel="loss ½‖ŷ − y‖²", title="loss")
    ax2.legend()
    save(fig, "learning_curves")

    pr = data["parameters"]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for j, idx in enumerate(pr["indices"]):
        ax.plot(pr["samples"], pr["tracked"][:, j], lw=0.9, label=f"θ[{idx}]")
    ax.set(xlabel="training samples", ylabel="θ* (model units)", title="trajectories of tracked parameters")
    ax.legend(fontsize=6, ncol=4)
    save(fig, "parameters")

    ho = data["homeostasis"]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    ax1.plot(ho["samples"], ho["iterations"], ".", ms=2)
    sat = ho["saturated"] > 0
    if sat.any():
        ax1.plot(ho["samples"][sat], ho["iterations"][sat], "rx", label="knob saturated")
        ax1.legend()
    ax1.set(ylabel="iterations per sample", title="homeostasis")
    ax2.semilogy(ho["samples"], np.maximum(ho["residual"], 1e-16), ".", ms=2)
    ax2.set(xlabel="training samples", ylabel="residual max|θ − θ*|")
    save(fig, "homeostasis")

    nu = data["nudges"]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.semilogy(nu["samples"], np.maximum(nu["nudge_norm"], 1e-16), ".", ms=2, label="‖I‖ clamped nudge")
    ax.semilogy(nu["samples"], np.maximum(nu["step_norm"], 1e-16), ".", ms=2, label="‖θ′ − θ_h‖ step")
    ax.set(xlabel="training samples", ylabel="model units", title="nudge and step size")
    ax.legend()
    save(fig, "nudges")

    fidelity = None
    if header.backend == "sim" and gradcheck_samples > 0:
        fidelity = _fidelity(store, header, gradcheck_samples)
        if fidelity is not None:
            data["gradient_fidelity"] = fidelity
            fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
            ax1.semilogy(fidelity["sample"], fidelity["relative_error"], "o")
            ax1.set(xlabel="checked step", ylabel="relative error", title="measured step vs oracle")
            ax2.plot(fidelity["sample"], fidelity["cosine"], "o", label="to the oracle's step")
            ax2.plot(fidelity["sample"], fidelity["cosine_to_gradient"], "s", label="to −∇L")
            ax2.set(xlabel="checked step", ylabel="cosine", title=f"β = {fidelity['beta'][0]:g}")
            ax2.legend()
            save(fig, "gradient_fidelity")

    page = out / "summary.md"
    page.write_text(_summary_page(store, header, data, sessions, status, n_samples, result.files), encoding="utf-8")
    result.files.append(page)
    return result


def _fidelity(store: RunStore, header, samples: int) -> dict[str, np.ndarray] | None:
    """Gradient fidelity of the run's protocol on its twin (the step measured through the instruments vs the oracle)."""
    from aeqlab.protocol import load_protocol
    from aeqlab.tools.gradcheck import gradcheck

    protocol, _ = load_protocol(store.path / "protocol.yaml")
    beta = protocol.method.beta
    results = gradcheck(protocol, beta=beta, samples=samples)
    return {
        "sample": np.array([r.index for r in results], dtype=float),
        "relative_error": np.array([r.relative_error for r in results]),
        "cosine": np.array([r.cosine for r in results]),
        "cosine_to_gradient": np.array([r.cosine_to_gradient for r in results]),
        "beta": np.full(len(results), beta),
    }


def _summary_page(store, header, data, sessions, status, n_samples, files) -> str:
    lc = data["learning_curves"]
    lines = [
        f"# Run {store.path.name}",
        "",
        f"* protocol: `{header.protocol_name}` (SHA-256 `{header.protocol_sha256[:16]}…`), backend `{header.backend}`, "
        f"seed {header.seed}",
        f"* status: **{status}**, {n_samples} of {header.epochs * header.samples_per_epoch} samples, "
        f"{int(np.sum(~np.isnan(lc['epoch_samples'])))} of {header.epochs} epochs",
        f"* parameters: {header.n_params}; started {header.started}",
    ]
    if lc["test_accuracy"].size > 1:
        lines.append(
            f"* test accuracy: {lc['test_accuracy'][0]:.3f} before training → {lc['test_accuracy'][-1]:.3f} "
            f"(best {np.nanmax(lc['test_accuracy']):.3f}); test loss {lc['test_loss'][-1]:.4f}"
        )
    elif lc["test_accuracy"].size:
        lines.append(f"* test accuracy before training: {lc['test_accuracy'][0]:.3f} (no epoch has ended yet)")
    ho = data["homeostasis"]
    lines.append(
        f"* homeostasis: {np.mean(ho['iterations']):.1f} iterations per sample, "
        f"{int(np.sum(ho['converged'] == 0))} unconverged, {int(np.sum(ho['saturated'] > 0))} saturated"
    )
    if "gradient_fidelity" in data:
        gf = data["gradient_fidelity"]
        lines.append(
            f"* gradient fidelity (β = {gf['beta'][0]:g}, first {gf['sample'].size} step(s) from θ₀): "
            f"relative error ≤ {np.max(gf['relative_error']):.2e}, cosine ≥ {np.min(gf['cosine']):.6f}"
        )
    lines += ["", "## Sessions", "", "| # | kind | started | ended | status | samples | safe state |"]
    lines.append("|---|---|---|---|---|---|---|")
    for k, s in enumerate(sessions):
        st = s["exit_status"]
        if st == "running" and k + 1 < len(sessions):
            st = "killed (no end recorded)"
        last = s["last_sample"] if s["last_sample"] is not None else "?"
        lines.append(
            f"| {s['id']} | {s['kind']} | {s['started']} | {s['ended'] or '-'} | {st} | "
            f"{s['first_sample']}–{last} | {s['safe_state'] or '-'} |"
        )
    lines += ["", "## Figures", ""]
    lines += [f"![{p.stem}]({p.name})" for p in files if p.suffix == ".png"]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------- runs table


def _seconds(a: str | None, b: str | None) -> float | None:
    if not a or not b:
        return None
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    return time.mktime(time.strptime(b, fmt)) - time.mktime(time.strptime(a, fmt))


def run_row(path: Path) -> dict[str, Any]:
    """One line of the runs table; never raises (an unreadable journal says so)."""
    row: dict[str, Any] = {"run": path.name, "path": str(path)}
    try:
        con = sqlite3.connect(f"file:{path / FILE}?mode=ro", uri=True)
        try:
            h = con.execute("SELECT protocol_name, backend, started, epochs, samples_per_epoch FROM header").fetchone()
            sess = con.execute("SELECT started, ended, exit_status FROM sessions ORDER BY id").fetchall()
            last = con.execute("SELECT coalesce(max(seq), 0) FROM samples").fetchone()[0]
            ep = con.execute("SELECT test_accuracy FROM epochs ORDER BY epoch DESC LIMIT 1").fetchone()
        finally:
            con.close()
    except (sqlite3.Error, TypeError) as exc:
        row.update(status="unreadable", error=str(exc))
        return row
    status = sess[-1][2] if sess else "created"
    if status == "running":
        try:
            with RunLock(path):
                status = "killed"  # nobody holds the folder: the process died without ending its session
        except AeqlabError:
            pass
    durations = [_seconds(s[0], s[1]) for s in sess]
    row.update(
        protocol=h[0],
        backend=h[1],
        started=h[2],
        status=status,
        samples=last,
        planned=h[3] * h[4],
        test_accuracy=ep[0] if ep else None,
        duration_s=sum(d for d in durations if d is not None) if any(d is not None for d in durations) else None,
    )
    return row


def list_runs(folder: Path) -> list[dict[str, Any]]:
    """Every run folder directly inside ``folder``, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("no such folder", where=str(folder), hint="give the folder 'aeqlab run --out' wrote into")
    return [run_row(p) for p in sorted(folder.iterdir()) if (p / FILE).is_file()]


# --------------------------------------------------------------------------- export


def export_csv(run_dir: Path, out: Path | None = None) -> list[Path]:
    """Write samples.csv (small vectors spread over numbered columns), epochs.csv and sessions.csv."""
    store, journal = _open(Path(run_dir))
    try:
        tables = {
            "samples": journal.rows("SELECT * FROM samples ORDER BY seq"),
            "epochs": journal.rows("SELECT * FROM epochs ORDER BY epoch"),
            "sessions": journal.rows("SELECT * FROM sessions ORDER BY id"),
        }
    except sqlite3.DatabaseError as exc:
        raise _corrupt(journal, exc) from None
    finally:
        journal.close()
    out = Path(out) if out is not None else store.path
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the export folder: {exc.strerror}", where=str(out)) from None
    vector_cols = ("free_output", "target", "nudge_homeostatic", "nudge_clamped", "tracked")
    try:
        return _write_csv(tables, vector_cols, out)
    except (ValueError, TypeError) as exc:
        raise _corrupt(journal, exc) from None


def _write_csv(tables: dict[str, list[dict[str, Any]]], vector_cols: tuple[str, ...], out: Path) -> list[Path]:
    files = []
    for name, rows in tables.items():
        if name == "samples" and rows:
            widths = {c: max(len(json.loads(r[c])) for r in rows) for c in vector_cols}
            flat = []
            for r in rows:
                f = {k: v for k, v in r.items() if k not in vector_cols}
                for c in vector_cols:
                    v = json.loads(r[c])
                    f.update({f"{c}_{i}": (v[i] if i < len(v) else "") for i in range(widths[c])})
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
