"""Why each bench mitigation works, measured on the iris twin: the figure of docs/design.md.

Three panels, each from runs or steps taken here (nothing is drawn from a formula alone):

1. **Signal to noise: β and averaging.** With ADC noise σ = 1e-3 on every reading, the mean
   cosine of a measured Aeqprop step to the exact step (``aeqlab gradcheck``) against β,
   for 1, 4 and 16 readings averaged per step. Noise is a fixed size, so relative to the
   step it falls as 1/β and as 1/√averages.
2. **A tolerance at the loop's floor.** On the realistic iris bench (σ = 1e-3 with four
   readings, 12-bit DACs with a dither of one step, knob gains 0.8–1.2, drift 1e-4) one
   epoch at homeostasis tolerances from half to three times the floor of
   ``aeqlab calibrate`` (half a step plus half the dither at the largest gain, plus the
   largest of n averaged noises): iterations per held phase and the share of phases at their
   cap. Below the floor every phase runs to its cap.
3. **Drift needs homeostasis, at a tolerance above the drift's own floor.** Iris with a
   knob → parameter drift of 1e-3 per simulated second: the offset the drift has built up by
   each sample (what frozen knobs would leave in θ) against the residual every held phase
   ends with, at the protocol's tolerance 1e-6 (the drift over one loop iteration is about
   as large: every phase runs to its cap) and at 1e-5.

    python benchmarks/mitigations.py [--out DIR] [--epochs N] [--quick]

Prints each panel's numbers and writes ``mitigations.png`` (``--out``, default the current
folder; docs/design.md shows ``docs/mitigations.png``).
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import numpy as np

import aeqlab
from aeqlab.protocol import parse_protocol
from aeqlab.protocol.text import source_of
from aeqlab.tools.advise import apply_settings

SIGMA = 1.0e-3
BETAS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
AVERAGES = (1, 4, 16)
FLOOR_FACTORS = (0.35, 0.4, 0.5, 0.7, 1.0, 1.5, 3.0)  # validate refuses less than half a step (0.32 here)
DRIFT = 1.0e-3
DRIFT_TOLERANCES = (1.0e-6, 1.0e-5)  # the iris protocol's, and above the drift's floor


def variant(base, settings: dict):
    """``base`` with dotted ``settings`` applied to its text (as a sweep point is made)."""
    text, source = source_of(base)
    return parse_protocol(apply_settings(text, settings), source or "<iris>")


def n_params(protocol) -> int:
    layers = protocol.simulation.layers
    return sum(a * b + b for a, b in zip(layers[:-1], layers[1:]))


def noise_tail(protocol) -> float:
    """√(2 ln 2n): the largest of n Gaussian readbacks, in σ."""
    return math.sqrt(2.0 * math.log(2.0 * n_params(protocol)))


def signal_to_noise(base, samples: int) -> dict[int, list[float]]:
    """Mean step cosine at each β, per averaging count (σ fixed)."""
    n_out = base.simulation.layers[-1]
    out: dict[int, list[float]] = {}
    for a in AVERAGES:
        s = SIGMA / math.sqrt(a)
        cosines = []
        for beta in BETAS:
            p = variant(
                base,
                {
                    "simulation.adc_noise": SIGMA,
                    "method.homeostasis.averages": a,
                    "method.homeostasis.tolerance": float(f"{1.5 * s * noise_tail(base):.3g}"),
                    "method.tracking.tolerance": float(f"{beta * s * (math.sqrt(2 * math.log(2 * n_out)) + 1):.3g}"),
                },
            )
            steps = aeqlab.gradcheck(p, beta=beta, samples=samples)
            cosines.append(float(np.mean([r.cosine for r in steps])))
        out[a] = cosines
        print(f"  {a:2d} reading(s): " + "  ".join(f"β {b:g}: {c:.3f}" for b, c in zip(BETAS, cosines)))
    return out


def realistic(base) -> tuple[dict, float]:
    """The realistic iris bench's settings (as the iris sweep's point) and its homeostasis floor."""
    bits, gain_high, averages = 12, 1.2, 4
    lo, hi = base.instruments[base.roles.knobs.refs()[0].instrument].voltage_range
    step = (hi - lo) / 2**bits / abs(base.roles.knobs.calibration.scale)
    settings = {
        "simulation.adc_noise": SIGMA,
        "simulation.dac_bits": bits,
        "simulation.knob_errors.gain_low": 0.8,
        "simulation.knob_errors.gain_high": gain_high,
        "simulation.knob_errors.offset": 0.05,
        "simulation.drift": 1.0e-4,
        "method.homeostasis.targets": "incremental",
        "method.homeostasis.averages": averages,
        "method.homeostasis.dither": step,
        "method.tracking.tolerance": 7.2e-4,
    }
    floor = 0.5 * (step + step) * gain_high + SIGMA / math.sqrt(averages) * noise_tail(base)
    return settings, floor


def tolerance_floor(base, out: Path) -> tuple[float, list[dict]]:
    """One epoch per tolerance factor: mean iterations per held phase and the share at the cap."""
    settings, floor = realistic(base)
    rows = []
    for f in FLOOR_FACTORS:
        p = variant(base, {**settings, "method.homeostasis.tolerance": float(f"{f * floor:.3g}")})
        cap = p.method.homeostasis.max_iterations
        with aeqlab.open_bench(p, backend="sim") as bench:
            run = aeqlab.train(p, bench, epochs=1, seed=0, out=out)
        df = run.samples()
        rows.append(
            {
                "factor": f,
                "iterations": float(df["homeostatic_iterations"].mean()),
                "at_cap": float((df["homeostatic_iterations"] >= cap).mean()),
                "test_accuracy": float(run.summary["test_accuracy"]),
            }
        )
        r = rows[-1]
        print(
            f"  tolerance {f:>3g} × floor: {r['iterations']:6.1f} iterations per held phase, "
            f"{100 * r['at_cap']:5.1f} % at the cap of {cap}, test {r['test_accuracy']:.3f} after one epoch"
        )
    return floor, rows


def drift(base, out: Path, epochs: int) -> dict[float, dict]:
    """Drift's offset by each sample against the residual each held phase ends with, at two tolerances."""
    results = {}
    for tol in DRIFT_TOLERANCES:
        p = variant(
            base,
            {
                "simulation.drift": DRIFT,
                "method.homeostasis.targets": "incremental",
                "method.homeostasis.tolerance": tol,
            },
        )
        clock: list[float] = []  # the twin's clock at each sample's end: what the drift has had to build up
        with aeqlab.open_bench(p, backend="sim") as bench:

            def on_sample(event, twin=bench.twin, clock=clock):
                if event.kind == "sample":
                    clock.append(twin.clock.now())

            run = aeqlab.train(p, bench, epochs=epochs, seed=0, out=out, callbacks=[on_sample])
        df = run.samples()
        t = np.asarray(clock[: len(df)])
        r = {
            "sample": np.arange(1, len(df) + 1),
            "offset": DRIFT * t,
            "residual": df["residual"].to_numpy(),
            "iterations": float(df["homeostatic_iterations"].mean()),
            "unconverged": int(run.summary["homeostasis_unconverged"]),
            "test_accuracy": float(run.summary["test_accuracy"]),
        }
        results[tol] = r
        print(
            f"  tolerance {tol:g}: held residual median {np.median(r['residual']):.3g}, "
            f"{int((r['residual'] > tol).sum())} of {len(df)} held phases above it, {r['iterations']:.1f} "
            f"iterations each, {r['unconverged']} unconverged phases, offset {r['offset'][-1]:.3g} by the end, "
            f"test {r['test_accuracy']:.3f}"
        )
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("."))
    ap.add_argument("--epochs", type=int, default=10, help="epochs of the drift runs")
    ap.add_argument("--samples", type=int, default=4, help="gradcheck steps per point")
    args = ap.parse_args()

    base = aeqlab.example("iris_hopfield_sim")
    print(f"1. step cosine to the exact step, σ = {SIGMA:g} (iris, {args.samples} steps per point)")
    snr = signal_to_noise(base, args.samples)
    with tempfile.TemporaryDirectory(prefix="aeqlab-mitigations-") as tmp:
        print("2. homeostasis tolerance against the floor (realistic iris bench, one epoch each)")
        floor, rows = tolerance_floor(base, Path(tmp))
        print(f"   floor {floor:.3g}")
        print(f"3. drift (iris, {args.epochs} epochs)")
        dr = drift(base, Path(tmp), args.epochs)

    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 3.8), layout="constrained")
    ax1, ax2, ax3 = fig.subplots(1, 3)
    for a, cos in snr.items():
        ax1.plot(BETAS, cos, "o-", label=f"{a} reading{'s' if a > 1 else ''} averaged")
    ax1.set_xscale("log")
    ax1.set_xlabel("β")
    ax1.set_ylabel("mean cosine, measured step to exact step")
    ax1.set_title(f"signal to noise at σ = {SIGMA:g}")
    ax1.legend(fontsize=8)

    fac = [r["factor"] for r in rows]
    ax2.semilogy(fac, [max(r["iterations"], 1e-2) for r in rows], "o-", color="C0")
    ax2.axvline(1.0, color="grey", ls=":")
    ax2.set_xscale("log")
    ticks = [f for f in fac if f >= 0.4]  # 0.35 and 0.4 would overlap
    ax2.set_xticks(ticks, [f"{f:g}" for f in ticks], minor=False)
    ax2.minorticks_off()
    ax2.set_xlabel("homeostasis tolerance / floor")
    ax2.set_ylabel("iterations per held phase", color="C0")
    ax2.set_title(f"tolerance at the floor ({floor:.2g}), realistic bench")
    twin = ax2.twinx()
    twin.plot(fac, [100 * r["at_cap"] for r in rows], "s--", color="C3")
    twin.set_ylabel("phases at the iteration cap (%)", color="C3")

    first = dr[DRIFT_TOLERANCES[0]]
    ax3.semilogy(first["sample"], first["offset"], color="k", label="drift offset (frozen knobs)")
    for i, (tol, r) in enumerate(dr.items()):
        ax3.semilogy(
            r["sample"],
            np.maximum(r["residual"], 1e-12),
            ".",
            ms=1.5,
            color=f"C{i}",
            label=f"held residual, tolerance {tol:g} ({r['iterations']:.0f} iterations)",
        )
        ax3.axhline(tol, color=f"C{i}", ls=":")
    ax3.set_xlabel("training sample")
    ax3.set_ylabel("model units")
    ax3.set_title(f"drift {DRIFT:g}/s, cancelled above its floor")
    ax3.legend(fontsize=7, markerscale=6)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "mitigations.png"
    fig.savefig(path, dpi=90)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
