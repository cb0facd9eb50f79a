"""Test accuracy against the twin's ADC noise σ and knob DAC resolution.

Does a protocol that learns on an ideal twin still learn on a bench with noisy readings
and coarse DACs? Each point is a full training run on the twin with one non-ideality
changed; the homeostasis tolerance is raised where the bench makes it unreachable
(at least one DAC step, and the largest noise a max-norm over all readbacks will see,
with four readings averaged at every step when the readbacks are noisy).

    python benchmarks/robustness.py [--protocol P] [--epochs N] [--out DIR]

Prints a table and writes ``robustness.png`` (accuracy against σ and against bits).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from aeqlab.backends import open_backend
from aeqlab.datasets import load
from aeqlab.engine.trainer import Trainer
from aeqlab.errors import AeqlabError
from aeqlab.protocol import load_protocol
from aeqlab.runs.training import run_unjournaled

ROOT = Path(__file__).resolve().parents[1]


def variant(protocol, *, noise: float = 0.0, bits: int | None = None):
    """The protocol with one non-ideality, and tolerances a bench with it can reach."""
    sim = protocol.simulation.model_copy(update={"adc_noise": noise, "dac_bits": bits})
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
    method = method.model_copy(
        update={
            "homeostasis": method.homeostasis.model_copy(update={"tolerance": tol, "averages": averages}),
            "tracking": method.tracking.model_copy(update={"tolerance": track_tol}),
        }
    )
    return protocol.model_copy(update={"simulation": sim, "method": method}), tol


def run(protocol, epochs: int) -> dict:
    backend = open_backend(protocol, "sim")
    data = load(protocol.dataset)
    trainer = Trainer(protocol, backend.bench, data)
    t0 = time.perf_counter()
    try:
        _, history = run_unjournaled(trainer, epochs, protocol.seed)
    except AeqlabError as exc:  # a bench too poor to train on is a result, not a crash
        return {
            "test_accuracy": float("nan"),
            "best": float("nan"),
            "unconverged": -1,
            "wall_s": time.perf_counter() - t0,
            "failed": exc.one_line(),
        }
    finally:
        backend.close()
    return {
        "test_accuracy": history[-1].test_accuracy,
        "best": max(m.test_accuracy for m in history),
        "unconverged": sum(m.homeostasis_unconverged for m in history),
        "wall_s": time.perf_counter() - t0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--protocol", default=str(ROOT / "protocols" / "iris_hopfield_sim.yaml"))
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--noise", default="0,1e-3,3e-3,1e-2", help="ADC noise σ values (model units)")
    ap.add_argument("--bits", default="16,12,10", help="knob DAC resolutions")
    ap.add_argument("--out", default=".")
    args = ap.parse_args()
    threadpool_limits(limits=1, user_api="blas")
    protocol, _ = load_protocol(args.protocol)
    epochs = args.epochs or protocol.schedule.epochs
    print(f"{protocol.name}, {epochs} epochs per point")
    print(
        f"{'sweep':6} {'ADC noise σ':>12} {'DAC bits':>9} {'tolerance':>10} {'test acc':>9} {'best':>6} "
        f"{'unconverged':>12} {'wall s':>7}",
        flush=True,
    )
    points = [("noise", float(v), None) for v in args.noise.split(",")]
    points += [("bits", 0.0, int(v)) for v in args.bits.split(",")]
    points += [("both", 1e-3, 12)]  # the acceptance point: σ = 1e-3 and 12-bit knob DACs together
    rows = []
    for kind, noise, bits in points:
        p, tol = variant(protocol, noise=noise, bits=bits)
        r = run(p, epochs)
        rows.append((kind, noise, bits, tol, r))
        print(
            f"{kind:6} {noise:12.1e} {str(bits or '-'):>9} {tol:10.1e} {r['test_accuracy']:9.3f} "
            f"{r['best']:6.3f} {r['unconverged']:12d} {r['wall_s']:7.1f}"
            + (f"  failed: {r['failed'][:90]}" if "failed" in r else ""),
            flush=True,
        )
    _figure(rows, Path(args.out) / "robustness.png", protocol.name)


def _figure(rows, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5), sharey=True)
    noise = [(n, r["test_accuracy"]) for k, n, _, _, r in rows if k == "noise"]
    bits = [(bb, r["test_accuracy"]) for k, _, bb, _, r in rows if k == "bits"]
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
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
