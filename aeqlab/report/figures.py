"""One function per figure: journal arrays in, a matplotlib :class:`~matplotlib.figure.Figure` out.

Built with the object API (no pyplot state, no backend switch), so they render inline in a
notebook as well as into PNG/SVG files. Axes are in SI units where the protocol has a
calibration for the role, else in model units (the label says which). Every figure stays
readable from 1 to thousands of epochs: markers are thinned to at most ``MAX_MARKERS`` per
line, tick counts are bounded, legends sit outside the axes. Every per-sample series is
decimated to at most ``MAX_POINTS`` points before it is drawn (:func:`decimate`: the
minimum and maximum of each stretch of samples, so spikes stay visible), which keeps
the figures of a run of hundreds of thousands of samples quick to draw and small as SVG.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, MaxNLocator

from aeqlab.report.names import Naming, param_label

MAX_MARKERS = 30
MAX_TICKS = 8
MAX_POINTS = 1000


def envelope(y: np.ndarray, max_points: int = MAX_POINTS) -> np.ndarray:
    """Indices of at most ``max_points`` of ``y``: the first, the last, and each stretch's minimum and maximum.

    ``y`` may be 2-D (rows are samples): the stretches' extremes of every column are kept, for
    series drawn together (a stack), in at most ``max_points`` indices in all.
    """
    y = np.asarray(y, dtype=float)
    n = y.shape[0]
    if n <= max_points:
        return np.arange(n)
    y2 = y.reshape(n, -1)
    buckets = max(1, (max_points - 2) // (2 * y2.shape[1]))
    size = -(-n // buckets)
    pad = buckets * size - n
    keep = [np.array([0, n - 1])]
    for col in y2.T:
        lo = np.pad(np.where(np.isnan(col), np.inf, col), (0, pad), constant_values=np.inf).reshape(buckets, size)
        hi = np.pad(np.where(np.isnan(col), -np.inf, col), (0, pad), constant_values=-np.inf).reshape(buckets, size)
        base = np.arange(buckets) * size
        keep += [base + lo.argmin(axis=1), base + hi.argmax(axis=1)]
    idx = np.unique(np.concatenate(keep))
    return idx[idx < n]


def decimate(x: np.ndarray, y: np.ndarray, max_points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """``x`` and ``y`` at the indices of :func:`envelope` (unchanged when they hold at most ``max_points``)."""
    idx = envelope(y, max_points)
    return np.asarray(x)[idx], np.asarray(y)[idx]


def _axes_style(ax: Any, integer_x: bool = True) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(nbins=MAX_TICKS, integer=integer_x))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=MAX_TICKS))
    ax.grid(alpha=0.3)


def _legend_outside(ax: Any, **kw: Any) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=8, **kw)


def _style(j: int) -> dict[str, Any]:
    """Colour and dash of the j-th of many lines: past the 10 colours the dash changes, so no two look alike."""
    return {"color": f"C{j % 10}", "ls": ("-", "--", ":", "-.")[(j // 10) % 4]}


def _every(n: int) -> int:
    return max(1, -(-n // MAX_MARKERS))


def _si(n: Naming, role: str, values: np.ndarray) -> tuple[np.ndarray, str]:
    """Values of a role in SI with the unit, or in model units when the role has no calibration."""
    if role in n.calibration:
        scale, offset, unit = n.calibration[role]
        return offset + scale * np.asarray(values, dtype=float), unit
    return np.asarray(values, dtype=float), "model units, no calibration"


def _new(width: float, height: float, rows: int = 1, cols: int = 1, **kw: Any) -> tuple[Figure, Any]:
    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots(rows, cols, squeeze=False, **kw)


def learning_curves(data: dict[str, dict[str, np.ndarray]], n: Naming) -> Figure:
    """Test and train score and loss against training samples (regression: R², never accuracy)."""
    lc = data["learning_curves"]
    regression = n.task == "regression"
    metric = "R²" if regression else "accuracy"
    fig, axs = _new(11, 4, 1, 2)
    ax1, ax2 = axs[0]
    for ax, key, name in ((ax1, "accuracy", metric), (ax2, "loss", "loss ½‖ŷ − y‖²")):
        ts, ty = decimate(lc["test_samples"], lc[f"test_{key}"])
        es, ey = decimate(lc["epoch_samples"], lc[f"train_{key}"])
        ax.plot(ts, ty, "o-", ms=4, markevery=_every(ts.size), label="test")
        ax.plot(es, ey, "s-", ms=4, markevery=_every(es.size), label="train (epoch)")
        show_running = lc["running_samples"].size and not (regression and key == "accuracy")
        if show_running:  # a regression's per-sample 'correct' is meaningless: its running R² is not drawn
            rs, ry = decimate(lc["running_samples"], lc[f"running_{key}"])
            ax.plot(rs, ry, lw=0.8, alpha=0.6, label=running_label(lc))
        ax.set(xlabel="training samples", ylabel=name, title=name)
        _axes_style(ax)
        if key == "loss":
            _log_if_decades(ax, [lc["test_loss"], lc["train_loss"], lc["running_loss"]])
        _legend_outside(ax)
    if not regression:
        ax1.set_ylim(-0.02, 1.02)
    return fig


def running_label(lc: dict[str, np.ndarray]) -> str:
    """The legend of the running curves: which window they average over."""
    w = int(lc["running_window"][0]) if "running_window" in lc else 0
    return f"train (running: mean of the last {w} samples)" if w > 1 else "train (running)"


def _log_if_decades(ax: Any, arrays: list[np.ndarray], decades: float = 1.5) -> None:
    """A log y axis when the (positive) values span more than ``decades`` decades: a falling loss stays legible."""
    v = np.concatenate([np.asarray(a, dtype=float).ravel() for a in arrays])
    v = v[np.isfinite(v)]
    if v.size and v.min() > 0 and np.log10(v.max() / v.min()) > decades:
        ax.set_yscale("log")
        ax.set_ylabel(ax.get_ylabel() + " (log)")


def parameters(data: dict[str, dict[str, np.ndarray]], n: Naming) -> Figure:
    """Trajectories of the tracked parameters θ*, named by layer/index and channel, in SI when calibrated."""
    pr = data["parameters"]
    fig, axs = _new(10, 4.5)
    ax = axs[0, 0]
    values, unit = _si(n, "params", pr["tracked"])
    for j, idx in enumerate(pr["indices"]):
        if j < values.shape[1]:
            ax.plot(*decimate(pr["samples"], values[:, j]), lw=0.9, label=param_label(n, int(idx)), **_style(j))
    ax.set(xlabel="training samples", ylabel=f"θ* ({unit})", title="tracked parameters")
    _axes_style(ax)
    _legend_outside(ax, ncol=1 if len(pr["indices"]) <= 16 else 2)
    return fig


def knobs(data: dict[str, dict[str, np.ndarray]], n: Naming) -> Figure:
    """Knob setpoints over time against the role's limits (top), and zoomed to the setpoints (bottom)."""
    if "knobs" not in data:
        fig, axs = _new(10, 4.5)
        ax = axs[0, 0]
        ax.text(0.5, 0.5, "knob setpoints: not journaled by this run", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    fig, axs = _new(10, 6.5, 2, 1, sharex=True, gridspec_kw={"height_ratios": [1, 1.4]})
    full, zoom = axs[0, 0], axs[1, 0]
    kn = data["knobs"]
    values, unit = _si(n, "knobs", kn["knobs"])
    if "knobs" not in n.calibration:
        unit = "V" if "knobs" in n.limits else unit  # a voltage role without a calibration: V = model
    idx = data["parameters"]["indices"]
    shown = [int(i) for i in idx if i < values.shape[1]] or list(range(min(16, values.shape[1])))
    for ax in (full, zoom):
        ax.plot(*decimate(kn["samples"], values.min(axis=1)), "k:", lw=0.8, label="lowest knob")
        ax.plot(*decimate(kn["samples"], values.max(axis=1)), "k--", lw=0.8, label="highest knob")
        for j, i in enumerate(shown):
            name = n.knob_channels[i] if i < len(n.knob_channels) else f"knob {i}"
            ax.plot(*decimate(kn["samples"], values[:, i]), lw=0.9, label=name, **_style(j))
        _axes_style(ax)
    if "knobs" in n.limits:
        lo, hi, lunit = n.limits["knobs"]
        full.axhline(lo, color="r", lw=1.2, label=f"limit low {lo:g} {lunit}")
        full.axhline(hi, color="r", lw=1.2, label=f"limit high {hi:g} {lunit}")
    full.set(ylabel=f"setpoint ({unit})", title="knob setpoints against their limits")
    zoom.set(xlabel="training samples", ylabel=f"setpoint ({unit})")
    zoom.set_title("zoomed to the setpoints (all knobs lie between the dotted and dashed lines)", fontsize=9)
    # one legend for both panels, right of them (on the top panel alone it would push the panels apart)
    handles, labels = full.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=8, ncol=1 if len(shown) <= 16 else 2)
    return fig


MAX_TARGET_PANELS = 4


def _regression_predictions(pr: dict[str, np.ndarray], n: Naming, k: int) -> Figure:
    """ŷ against y, one panel per target (the first few), each with its R² over the samples shown."""
    targets = pr["target"].reshape(pr["target"].shape[0], -1)
    outputs = pr["free_output"].reshape(targets.shape[0], -1)
    width = targets.shape[1]
    shown = min(width, MAX_TARGET_PANELS)
    fig, axs = _new(4.2 * shown + 1.3, 4.8, 1, shown)
    for j in range(shown):
        ax = axs[0, j]
        y, unit = _si(n, "outputs", targets[-k:, j])
        yh, _ = _si(n, "outputs", outputs[-k:, j])
        ax.plot(y, yh, ".", ms=4)
        lo, hi = np.nanmin([y.min(), yh.min()]), np.nanmax([y.max(), yh.max()])
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="ŷ = y")
        sst = float(np.sum((y - y.mean()) ** 2))
        r2 = 1.0 - float(np.sum((yh - y) ** 2)) / sst if sst > 0 else float("nan")
        name = f"target {j + 1} of {width}: " if width > 1 else ""
        ax.set(xlabel=f"target y ({unit})", ylabel=f"prediction ŷ ({unit})", title=f"{name}R² {r2:.3f}, last {k}")
        _axes_style(ax, integer_x=False)
    if width > shown:
        fig.suptitle(f"the first {shown} of {width} targets")
    _legend_outside(axs[0, shown - 1])
    return fig


def predictions(data: dict[str, dict[str, np.ndarray]], n: Naming, last: int | None = None) -> Figure:
    """Confusion matrix (classification) or ŷ against y (regression) of the last epoch's training samples."""
    pr = data["predictions"]
    k = last if last is not None else max(1, min(pr["samples"].size, 200))
    if n.task == "regression":
        return _regression_predictions(pr, n, k)
    fig, axs = _new(5.5, 4.8)
    ax = axs[0, 0]
    labels, pred = pr["label"][-k:].astype(int), pr["predicted"][-k:].astype(int)
    m = max(int(labels.max(initial=0)), int(pred.max(initial=0))) + 1
    cm = confusion(labels, pred, m)
    im = ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        if m <= 12:
            ax.text(j, i, str(v), ha="center", va="center", fontsize=8, color="w" if v > cm.max() / 2 else "k")
    ax.set(xlabel="predicted class", ylabel="true class", title=f"confusion, last {k} training samples")
    ax.xaxis.set_major_locator(MaxNLocator(nbins=min(m, 12), integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=min(m, 12), integer=True))
    fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


def confusion(labels: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """Counts ``cm[true, predicted]``."""
    cm = np.zeros((classes, classes), dtype=int)
    np.add.at(cm, (labels, predicted), 1)
    return cm


def timing(data: dict[str, dict[str, np.ndarray]], n: Naming) -> Figure:
    """Time per sample split into the free, homeostatic and clamped phases (and the rest)."""
    ti = data["timing"]
    fig, axs = _new(10, 4)
    ax = axs[0, 0]
    parts = [np.nan_to_num(ti[k]) for k in ("free_s", "homeostatic_s", "clamped_s")]
    rest = np.maximum(np.nan_to_num(ti["sample_s"]) - sum(parts), 0.0)
    idx = envelope(np.column_stack([*parts, rest]))
    ax.stackplot(
        ti["samples"][idx],
        *(p[idx] for p in parts),
        rest[idx],
        labels=["free", "homeostatic", "clamped", "other"],
        alpha=0.8,
    )
    ax.set(xlabel="training samples", ylabel="time per sample (s)", title="time per phase")
    _axes_style(ax)
    _legend_outside(ax)
    return fig


def homeostasis(data: dict[str, dict[str, np.ndarray]], n: Naming) -> Figure:
    """Homeostasis iterations per phase (each capped at max_iterations) and the residual with its tolerance."""
    ho = data["homeostasis"]
    fig, axs = _new(10, 6.5, 2, 1, sharex=True)
    ax1, ax2 = axs[0, 0], axs[1, 0]
    ax1.plot(*decimate(ho["samples"], ho["free_iterations"]), ".", ms=2, label="free phase")
    ax1.plot(*decimate(ho["samples"], ho["homeostatic_iterations"]), ".", ms=2, label="homeostatic phase")
    cap = n.homeostasis.get("max_iterations")
    if cap:
        ax1.axhline(cap, color="r", lw=1, label=f"max_iterations {cap} (per phase)")
    sat = ho["saturated"] > 0
    if sat.any():
        s = np.flatnonzero(sat)[:: _every(int(sat.sum()))]
        ax1.plot(ho["samples"][s], ho["homeostatic_iterations"][s], "rx", label="knob saturated")
    ax1.set(ylabel="iterations per phase", title="homeostasis: each sample runs a free and a homeostatic phase")
    _axes_style(ax1)
    _legend_outside(ax1)
    ax2.semilogy(*decimate(ho["samples"], np.maximum(ho["residual"], 1e-16)), ".", ms=2, label="residual")
    tol = n.homeostasis.get("tolerance")
    if tol:
        ax2.axhline(tol, color="r", lw=1, label=f"tolerance {tol:g}")
    ax2.set(xlabel="training samples", ylabel="max|θ − θ*| (model units)")
    ax2.xaxis.set_major_locator(MaxNLocator(nbins=MAX_TICKS, integer=True))
    ax2.grid(alpha=0.3)
    _legend_outside(ax2)
    return fig


def nudges(data: dict[str, dict[str, np.ndarray]], n: Naming) -> Figure:
    """Norm of the clamped nudge (SI when the nudges role is calibrated) and of the parameter step."""
    nu = data["nudges"]
    fig, axs = _new(10, 5, 2, 1, sharex=True)
    scale, _, unit = n.calibration.get("nudges", (1.0, 0.0, "model units, no calibration"))
    axs[0, 0].semilogy(*decimate(nu["samples"], np.maximum(np.abs(scale) * nu["nudge_norm"], 1e-16)), ".", ms=2)
    axs[0, 0].set(ylabel=f"‖I‖ ({unit})", title="clamped nudge and parameter step")
    axs[1, 0].semilogy(*decimate(nu["samples"], np.maximum(nu["step_norm"], 1e-16)), ".", ms=2)
    axs[1, 0].set(xlabel="training samples", ylabel="‖θ′ − θ_h‖ (model units)")
    for ax in axs[:, 0]:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=MAX_TICKS, integer=True))
        ax.grid(alpha=0.3)
    return fig


def gradient_fidelity(fid: dict[str, np.ndarray], n: Naming | None = None) -> Figure:
    """Relative error and cosine of the Aeqprop step against the twin's oracle at snapshots over the run.

    Each point is a parameter snapshot; at it, the same first training examples are stepped
    (``fid["step_relative_error"]``: every step, drawn faint; the line is the worst of them).
    The cosines are drawn as 1 − cosine on a log axis (0 is perfect agreement).
    """
    fig, axs = _new(10, 6.5, 2, 1, sharex=True)
    ax1, ax2 = axs[0, 0], axs[1, 0]
    x = fid["sample"]
    steps = int(fid["steps"][0]) if "steps" in fid else 1
    if "step_relative_error" in fid:
        per = fid["step_relative_error"]
        xs = np.repeat(x[:, None], per.shape[1], axis=1)
        ax1.semilogy(xs.ravel(), per.ravel(), ".", color="0.6", ms=4, label="each step")
    ax1.semilogy(x, fid["relative_error"], "o-", ms=4, label=f"worst of {steps} step(s)")
    ax1.set(ylabel="relative error of the step")
    where = f", on the twin of a {fid['on_twin_of'][0]} run" if "on_twin_of" in fid else " on the twin"
    ax1.set_title(
        f"Aeqprop step Δθ against the oracle's{where}: β = {fid['beta'][0]:g}, {x.size} snapshot(s) × {steps} step(s)",
        fontsize=10,
    )
    floor = 1e-16
    ax2.semilogy(x, np.maximum(1 - fid["cosine"], floor), "o-", ms=4, label="to the oracle's step (worst)")
    ax2.semilogy(x, np.maximum(1 - fid["cosine_to_gradient"], floor), "s--", ms=4, label="to −ε∇L (worst)")
    ax2.set(xlabel="training samples (parameter snapshot)", ylabel="1 − cosine")
    for ax in (ax1, ax2):
        ax.xaxis.set_major_locator(MaxNLocator(nbins=MAX_TICKS, integer=True))
        ax.yaxis.set_major_locator(LogLocator(numticks=MAX_TICKS))
        ax.grid(alpha=0.3)
        _legend_outside(ax)
    return fig


FIGURES = {
    "learning_curves": learning_curves,
    "parameters": parameters,
    "knobs": knobs,
    "predictions": predictions,
    "timing": timing,
    "homeostasis": homeostasis,
    "nudges": nudges,
}
