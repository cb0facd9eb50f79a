"""The run's summary page (Markdown): headline numbers, flags and where they happened, sessions, figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def _spans(samples: np.ndarray, mask: np.ndarray, limit: int = 8) -> str:
    """Sample ranges where ``mask`` holds, e.g. ``12–15, 40, 77–80`` (at most ``limit``, then a count)."""
    idx = samples[mask].astype(int)
    if idx.size == 0:
        return ""
    breaks = np.flatnonzero(np.diff(idx) > 1)
    starts = np.concatenate([[idx[0]], idx[breaks + 1]])
    ends = np.concatenate([idx[breaks], [idx[-1]]])
    parts = [f"{a}" if a == b else f"{a}–{b}" for a, b in zip(starts, ends)]
    more = f" and {len(parts) - limit} more ranges" if len(parts) > limit else ""
    return ", ".join(parts[:limit]) + more


def flags(data: dict[str, dict[str, np.ndarray]], per_epoch: int, run_summary: dict[str, Any] | None) -> list[str]:
    """The run's flags (unconverged, saturated, unstable), each with where in the run it happened."""
    ho = data["homeostasis"]
    s = ho["samples"]
    out = []
    for name, mask in (
        ("unconverged", ho["converged"] == 0),
        ("saturated (a knob held at its limit)", ho["saturated"] > 0),
    ):
        count = int(mask.sum())
        if count:
            epochs = sorted({int((k - 1) // max(per_epoch, 1)) + 1 for k in s[mask]})
            out.append(
                f"**{name}**: {count} samples, in epoch(s) {', '.join(map(str, epochs[:12]))}"
                f"{'…' if len(epochs) > 12 else ''}; samples {_spans(s, mask)}"
            )
        else:
            out.append(f"{name}: none")
    jumps = (run_summary or {}).get("twin_unstable_jumps")
    if jumps is None:
        out.append("unstable jumps of the twin: not recorded for this run")
    else:
        out.append(
            f"{'**unstable**' if jumps else 'unstable'}: {jumps} jump(s) of the twin from unstable states "
            "(a twin statistic kept in summary.json for the last session only; the journal has no per-sample record)"
        )
    return out


def read_run_summary(run_dir: Path) -> dict[str, Any] | None:
    """``summary.json`` of the run's last session, or None."""
    try:
        return json.loads((Path(run_dir) / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def summary_page(run: dict[str, Any], files: list[Path]) -> str:
    """The Markdown of ``summary.md`` for a run read by :func:`aeqlab.report.data.read_run`."""
    store, header, data, n = run["store"], run["header"], run["data"], run["naming"]
    lc = data["learning_curves"]
    metric = "R²" if n.task == "regression" else "accuracy"
    lines = [
        f"# Run {store.path.name}",
        "",
        f"* protocol: `{header.protocol_name}` (SHA-256 `{header.protocol_sha256[:16]}…`), backend `{header.backend}`, "
        f"seed {header.seed}, task {n.task}",
        f"* status: **{run['status']}**, {run['n_samples']} of {header.epochs * header.samples_per_epoch} samples, "
        f"{int(np.sum(~np.isnan(lc['epoch_samples'])))} of {header.epochs} epochs",
        f"* parameters: {header.n_params}; started {header.started}",
        "* units: "
        + (", ".join(f"{r} in {u}" for r, (_, _, u) in sorted(n.calibration.items())) or "no calibration")
        + "; other roles in model units",
    ]
    acc, loss = lc["test_accuracy"], lc["test_loss"]
    if acc.size > 1:
        lines.append(
            f"* test {metric}: {acc[0]:.3f} before training → {acc[-1]:.3f} (best {np.nanmax(acc):.3f}); "
            f"test loss {loss[0]:.4f} → {loss[-1]:.4f}"
        )
    elif acc.size:
        lines.append(f"* test {metric} before training: {acc[0]:.3f}, loss {loss[0]:.4f} (no epoch has ended yet)")
    width = data["predictions"]["target"].reshape(data["predictions"]["target"].shape[0], -1).shape[1]
    if n.task == "regression" and width > 1:
        lines.append(
            f"* R² pools the {width} targets: 1 − Σ‖ŷ − y‖² / Σ‖y − ȳ‖² over every target column (each target's "
            "R² on the last training samples: predictions.png)"
        )
    ho = data["homeostasis"]
    lines.append(f"* homeostasis: {np.mean(ho['iterations']):.1f} iterations per sample (free + homeostatic phase)")
    if "gradient_fidelity" in data:
        gf = data["gradient_fidelity"]
        lines.append(
            f"* gradient fidelity (β = {gf['beta'][0]:g}, {gf['sample'].size} step(s) from θ₀): "
            f"relative error ≤ {np.max(gf['relative_error']):.2e}, cosine ≥ {np.min(gf['cosine']):.6f}"
        )
    lines += [f"* {note}" for note in run.get("notes", [])]
    if "knobs" not in data:
        lines.append("* knob setpoints: not journaled by this run (the knobs figure is empty)")
    lines += ["", "## Flags", ""]
    lines += [f"* {f}" for f in flags(data, header.samples_per_epoch, read_run_summary(store.path))]
    lines += ["", "## Sessions", "", "| # | kind | started | ended | status | samples | safe state |"]
    lines.append("|---|---|---|---|---|---|---|")
    sessions = run["sessions"]
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
