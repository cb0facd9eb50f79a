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


def _where(name: str, s: np.ndarray, mask: np.ndarray, per_epoch: int) -> str:
    """``**name**: N samples, in epoch(s) …; samples …`` or ``name: none``."""
    count = int(mask.sum())
    if not count:
        return f"{name}: none"
    epochs = sorted({int((k - 1) // max(per_epoch, 1)) + 1 for k in s[mask]})
    return (
        f"**{name}**: {count} samples, in epoch(s) {', '.join(map(str, epochs[:12]))}"
        f"{'…' if len(epochs) > 12 else ''}; samples {_spans(s, mask)}"
    )


def flags(
    data: dict[str, dict[str, np.ndarray]],
    per_epoch: int,
    run_summary: dict[str, Any] | None,
    sessions: list[dict[str, Any]] | None = None,
) -> list[str]:
    """The run's flags (unconverged, saturated, compliance, unstable, faults), each with where it happened."""
    ho = data["homeostasis"]
    s = ho["samples"]
    out = [
        _where("unconverged", s, ho["converged"] == 0, per_epoch),
        _where("saturated (a knob held at its limit)", s, ho["saturated"] > 0, per_epoch),
    ]
    tripped = data.get("nudges", {}).get("compliance_tripped")
    if tripped is None or (tripped.size and np.all(np.isnan(tripped))):
        out.append("compliance trips: not recorded for this run (its journal predates samples.compliance_tripped)")
    else:
        name = "compliance tripped (a nudge source at its limit; samples kept under safety.on_compliance: flag)"
        unknown = np.isnan(tripped)
        out.append(
            _where(name, s, tripped == 1, per_epoch)
            + (f" (not recorded for samples {_spans(s, unknown)}, journaled before it was)" if unknown.any() else "")
        )
    jumps = (run_summary or {}).get("twin_unstable_jumps")
    if jumps is None:
        out.append("unstable jumps of the twin: not recorded for this run")
    else:
        out.append(
            f"{'**unstable**' if jumps else 'unstable'}: {jumps} jump(s) of the twin from unstable states "
            "(a twin statistic kept in summary.json for the last session only; the journal has no per-sample record)"
        )
    for k in sessions or ():
        if k.get("exit_status") == "failed" and k.get("error"):
            out.append(f"**fault**: session {k['id']} stopped after sample {k.get('last_sample')}: {k['error']}")
    return out


def fidelity_line(gf: dict[str, np.ndarray]) -> str:
    """The summary's line on gradient fidelity over the run (worst point named by its sample)."""
    ok = ~np.isnan(gf["relative_error"])
    where = f" on the twin of this {gf['on_twin_of'][0]} run" if "on_twin_of" in gf else " on the twin"
    head = (
        f"gradient fidelity over the run{where} (β = {gf['beta'][0]:g}; {gf['sample'].size} parameter snapshots "
        f"from sample {int(gf['sample'][0])} to {int(gf['sample'][-1])}, {int(gf['steps'][0])} step(s) each on the "
        f"first training examples; computed at report time in {float(gf['seconds'][0]):.1f} s)"
    )
    if not ok.any():
        return f"{head}: no snapshot could be checked"
    rel = gf["relative_error"][ok]
    k = int(np.argmax(rel))
    return (
        f"{head}: relative error median {np.median(rel):.2e}, worst {rel[k]:.2e} "
        f"(at sample {int(gf['sample'][ok][k])}); cosine to the oracle's step ≥ {np.nanmin(gf['cosine']):.6f}; "
        f"see gradient_fidelity.png"
    )


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
            f"test loss {loss[0]:.4g} → {loss[-1]:.4g}"
        )
    elif acc.size:
        lines.append(f"* test {metric} before training: {acc[0]:.3f}, loss {loss[0]:.4g} (no epoch has ended yet)")
    width = data["predictions"]["target"].reshape(data["predictions"]["target"].shape[0], -1).shape[1]
    if n.task == "regression" and width > 1:
        lines.append(
            f"* R² pools the {width} targets: 1 − Σ‖ŷ − y‖² / Σ‖y − ȳ‖² over every target column (each target's "
            "R² on the last training samples: predictions.png)"
        )
    ho = data["homeostasis"]
    lines.append(f"* homeostasis: {np.mean(ho['iterations']):.1f} iterations per sample (free + homeostatic phase)")
    if "gradient_fidelity" in data:
        lines.append(f"* {fidelity_line(data['gradient_fidelity'])}")
    lines += [f"* {note}" for note in run.get("notes", [])]
    if "knobs" not in data:
        lines.append("* knob setpoints: not journaled by this run (the knobs figure is empty)")
    lines += ["", "## Flags", ""]
    run_flags = flags(data, header.samples_per_epoch, read_run_summary(store.path), run["sessions"])
    lines += [f"* {f}" for f in run_flags]
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
