"""A run's summary (what ``aeqlab run --json`` prints and ``summary.json`` holds), from its journal."""

from __future__ import annotations

from typing import Any

import numpy as np

from aeqlab.datasets import Split
from aeqlab.engine.backend import Backend
from aeqlab.engine.records import r_squared
from aeqlab.journal import Header, Journal
from aeqlab.runs.events import Closed
from aeqlab.runs.store import RunStore, params_sha256


def exit_code(summary: dict[str, Any]) -> int:
    """The CLI exit code of a session's summary: 0, 130 when interrupted, else the error's code."""
    status = summary.get("status")
    if status == "completed":
        return 0
    if status == "interrupted":
        return int(summary.get("exit_code", 130))  # 3: the stability monitor stopped it
    return int(summary.get("exit_code", 1))


def summarize(
    store: RunStore, journal: Journal, header: Header, closed: Closed, backend: Backend, here: int
) -> dict[str, Any]:
    """The summary of a run so far, from its journal.

    Accuracies, losses, samples and counts are the whole run's (a resumed run reports
    every session); throughput, wall time and the backend's statistics are this
    session's, and are repeated under ``this_session`` to say so.
    """
    rows = journal.epochs()
    initial = next((r for r in rows if r["epoch"] == 0), None)
    history = [r for r in rows if r["epoch"] > 0]
    tested = [r for r in history if r["test_accuracy"] is not None]
    wall = closed.wall_s
    summary: dict[str, Any] = {
        "run_dir": str(store.path),
        "status": closed.status,
        "wall_s": round(wall, 3),
        "protocol": header.protocol_name,
        "backend": header.backend,
        "epochs": header.epochs,
        "epochs_done": len(history),
        "samples": journal.last_sample(),
        "seed": header.seed,
        "sessions": len(journal.sessions()),
    }
    if "parent" in header.extra:  # a child run (resume --from-best): the run and the best it started from
        summary["parent"] = header.extra["parent"]
    if initial is not None:
        summary["initial_test_accuracy"] = initial["test_accuracy"]
        summary["initial_test_loss"] = initial["test_loss"]
    if history:
        last = history[-1]
        summary["train_accuracy"] = last["train_accuracy"]
        if tested:
            summary["test_accuracy"] = tested[-1]["test_accuracy"]
            summary["test_loss"] = tested[-1]["test_loss"]
            summary["best_test_accuracy"] = max(r["test_accuracy"] for r in tested)
        summary["homeostasis_iterations_mean"] = float(np.mean([r["homeostasis_iterations"] for r in history]))
        summary["homeostasis_unconverged"] = int(sum(r["homeostasis_unconverged"] for r in history))
        summary["knob_saturations"] = int(sum(r["saturated"] for r in history))
    if journal.has_sample_column("compliance_tripped"):
        summary["compliance_tripped_samples"] = len(journal.flagged("compliance_tripped"))
    if closed.targets is not None:
        summary["params_sha256"] = params_sha256(closed.targets)  # of the last committed θ*
    elif (store.path / "params.npy").is_file():
        summary["params_sha256"] = params_sha256(np.load(store.path / "params.npy"))
    summary["samples_per_s"] = round(here / wall, 2) if wall > 0 and here else None
    summary["round_trips_per_sample"] = {k: round(v / max(here, 1), 2) for k, v in backend.bench.round_trips.items()}
    diagnostics = backend.diagnostics()
    summary.update(diagnostics)
    # the figures above measure this session (a resumed run's earlier sessions ran in other processes)
    summary["this_session"] = {
        "mode": journal.sessions()[-1]["kind"] if journal.sessions() else None,
        "samples": here,
        "wall_s": round(wall, 3),
        "samples_per_s": summary["samples_per_s"],
        "round_trips_per_sample": summary["round_trips_per_sample"],
        **diagnostics,
    }
    if header.extra.get("task") == "regression" and "test_accuracy" in summary:
        # a regression's accuracy columns hold R²; name it so, beside the loss
        summary["test_r2"] = summary["test_accuracy"]
        summary["train_r2"] = summary["train_accuracy"]
        if initial is not None:
            summary["initial_test_r2"] = summary["initial_test_accuracy"]
        if "linear_test_r2" in header.extra:
            summary["linear_test_r2"] = header.extra["linear_test_r2"]
    readings = journal.stability()
    if readings:
        summary["stability_max_rho"] = max(r["rho"] for r in readings)
        summary["stability_source"] = readings[-1]["source"]
        for action in ("warn", "stop", "rollback"):
            n = sum(r["action"] == action for r in readings)
            if n:
                summary[{"warn": "stability_warnings", "stop": "stability_stops", "rollback": "rollbacks"}[action]] = n
    best = store.read_best()
    if best is not None:
        summary["best"] = {k: v for k, v in best.items() if k != "theta"} | {"file": str(store.path / "best.npz")}
    summary["safe_state"] = closed.safe_state
    if closed.error:
        summary["error"] = closed.error
    if closed.status != "completed":
        summary["exit_code"] = closed.exit_code
        if journal.has_checkpoint():
            summary["resume"] = f"aeqlab resume {store.path}"
        else:
            summary["resume"] = f"nothing to resume yet: start again with aeqlab run {header.protocol_path}"
    return summary


def linear_baseline(data: Split) -> dict[str, float]:
    """For a regression, the test R² of an ordinary least-squares fit (what a linear system could do)."""
    if data.task != "regression":
        return {}
    design = np.c_[data.x_train, np.ones(len(data.x_train))]
    coef, *_ = np.linalg.lstsq(design, data.targets(data.y_train), rcond=None)
    pred = np.c_[data.x_test, np.ones(len(data.x_test))] @ coef
    targets = data.targets(data.y_test)
    return {"linear_test_r2": r_squared(0.5 * float(np.sum((pred - targets) ** 2)), targets)}
