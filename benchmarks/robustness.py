"""Test accuracy against the twin's ADC noise σ and knob DAC resolution: a sweep (docs/sweeps.md).

Does a protocol that learns on an ideal twin still learn on a bench with noisy readings
and coarse DACs? Each point is a full training run on the twin with one non-ideality
changed; the homeostasis tolerance is raised where the bench makes it unreachable
(at least one DAC step, and the largest noise a max-norm over all readbacks will see,
with four readings averaged at every step when the readbacks are noisy). The points are
one linked axis of a sweep file written into the output folder, run in parallel on a
Dask LocalCluster (or ``--scheduler``); a rerun reuses finished points.

    python benchmarks/robustness.py [--protocol P] [--epochs N] [--out DIR] [--scheduler ADDR]

Prints a table and writes ``robustness.png`` (accuracy against σ and against bits).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from aeqlab.protocol import load_protocol
from aeqlab.protocol.yamlio import dump

ROOT = Path(__file__).resolve().parents[1]


def variant(protocol, *, noise: float = 0.0, bits: int | None = None) -> dict:
    """The fields of a point with one non-ideality, with tolerances a bench with it can reach."""
    method = protocol.method
    tol, track_tol, averages = method.homeostasis.tolerance, method.tracking.tolerance, 1
    if bits is not None:
        lo, hi = protocol.instruments[protocol.roles.knobs.refs()[0].instrument].voltage_range
        # a loop on a quantized knob lands within about a step once the physics couples channels;
        # a looser tolerance lets the held parameters wander by more than a learning step
        tol = max(tol, 1.0 * (hi - lo) / 2**bits / abs(protocol.roles.knobs.calibration.scale))
    if noise > 0:
        averages = 4  # each step averages four readings: the noise halves
        sigma = noise / np.sqrt(averages)
        # a max-norm over n noisy readbacks: the largest of n normal samples is about σ·√(2 ln 2n)
        n, m = protocol.roles.params.size, protocol.roles.outputs.size
        tol = max(tol, sigma * (np.sqrt(2 * np.log(2 * n)) + 1.0))
        track_tol = max(track_tol, method.beta * sigma * (np.sqrt(2 * np.log(2 * m)) + 1.0))
    return {
        "simulation.adc_noise": float(noise),
        "simulation.dac_bits": bits,
        "method.homeostasis.tolerance": float(tol),
        "method.homeostasis.averages": averages,
        "method.tracking.tolerance": float(track_tol),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--protocol", default=str(ROOT / "protocols" / "iris_hopfield_sim.yaml"))
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--noise", default="0,1e-3,3e-3,1e-2", help="ADC noise σ values (model units)")
    ap.add_argument("--bits", default="16,12,10", help="knob DAC resolutions")
    ap.add_argument("--out", default="robustness-sweep")
    ap.add_argument("--scheduler", default=None, help="a Dask scheduler address (default: a LocalCluster)")
    args = ap.parse_args()
    import aeqlab

    protocol, _ = load_protocol(args.protocol)
    epochs = args.epochs or protocol.schedule.epochs
    points = [("noise", float(v), None) for v in args.noise.split(",")]
    points += [("bits", 0.0, int(v)) for v in args.bits.split(",")]
    points += [("both", 1e-3, 12)]  # the acceptance point: σ = 1e-3 and 12-bit knob DACs together
    values = [{"label": f"{k} σ={n:g} bits={b or '-'}", **variant(protocol, noise=n, bits=b)} for k, n, b in points]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    spec = {
        "name": "robustness",
        "protocol": str(Path(args.protocol).resolve()),
        "epochs": epochs,
        "seeds": [protocol.seed],
        "axes": {"bench": values},
        "out": str(out.resolve()),
    }
    sweep_file = out / "robustness.sweep.yaml"
    sweep_file.write_text(dump(spec), encoding="utf-8")
    result = aeqlab.sweep(sweep_file, scheduler=args.scheduler, progress=True)
    print(f"{protocol.name}, {epochs} epochs per point ({result.status}; sweep folder {result.path})")
    print(
        f"{'sweep':6} {'ADC noise σ':>12} {'DAC bits':>9} {'tolerance':>10} {'test acc':>9} {'best':>6} "
        f"{'unconverged':>12} {'wall s':>7}",
        flush=True,
    )
    rows = []
    for (kind, noise, bits), fields, r in zip(points, values, result.points):
        failed = r.get("status") != "completed"
        unconverged = -1
        if r.get("run_dir"):
            unconverged = int(aeqlab.open_run(r["run_dir"]).summary.get("homeostasis_unconverged", -1))
        acc = float("nan") if failed else r["final_test"]
        rows.append((kind, noise, bits, acc))
        print(
            f"{kind:6} {noise:12.1e} {str(bits or '-'):>9} {fields['method.homeostasis.tolerance']:10.1e} {acc:9.3f} "
            f"{r.get('best_test', float('nan')):6.3f} {unconverged:12d} {r.get('wall_s', 0.0):7.1f}"
            + (f"  failed: {str(r.get('error'))[:90]}" if failed else ""),
            flush=True,
        )
    _figure(rows, out / "robustness.png", protocol.name)


def _figure(rows, path: Path, title: str) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.5), layout="constrained")
    a, b = fig.subplots(1, 2, sharey=True)
    noise = [(n, acc) for k, n, _, acc in rows if k == "noise"]
    bits = [(bb, acc) for k, _, bb, acc in rows if k == "bits"]
    for ax, pts, scale in ((a, noise, lambda n: max(n, 1e-4)), (b, bits, lambda v: v)):
        failed = [scale(p) for p, v in pts if not np.isfinite(v)]
        if failed:  # a run the twin stopped as unstable
            ax.plot(failed, [0.02] * len(failed), "rx", markersize=10, label="stopped: unstable")
            ax.legend(loc="lower left")
    a.plot([max(n, 1e-4) for n, _ in noise], [v for _, v in noise], "o-")
    a.set_xscale("log")
    a.set_xlabel("ADC noise σ (model units; 0 drawn at 1e-4)")
    a.set_ylabel("final test accuracy")
    b.plot([bb for bb, _ in bits], [v for _, v in bits], "s-")
    b.set_xlabel("knob DAC bits")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.set_ylim(0, 1.02)
    fig.suptitle(f"{title}: robustness to bench non-idealities")
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
