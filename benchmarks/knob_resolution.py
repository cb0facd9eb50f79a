"""Coarse knob DACs: each mitigation (incremental targets, dither) off and on, same protocol and seeds.

Trains ``protocols/iris_10bit_sim.yaml`` (or ``--protocol``) four times per seed on the twin:
neither mitigation, ``homeostasis.targets: incremental`` alone, ``homeostasis.dither``
alone, both (the protocol's own settings give the dither width; without one, one knob DAC
step). Prints a markdown table of the final test accuracy per seed and writes
``knob_resolution.png``: test accuracy per epoch (first seed), and one weight over the first
samples: the targets and the physical parameter as homeostasis holds it, with measured and
with incremental targets (no dither).

    python benchmarks/knob_resolution.py [--protocol P] [--seeds 0,1,2] [--epochs N] [--out DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import aeqlab
from aeqlab.backends import open_backend
from aeqlab.datasets import load
from aeqlab.engine.methods.aeqprop import train_sample
from aeqlab.engine.plan import execute
from aeqlab.engine.trainer import Trainer
from aeqlab.protocol import load_protocol

ROOT = Path(__file__).resolve().parents[1]


def knob_step(protocol) -> float:
    """One knob DAC step in model units (the twin's ``dac_bits`` over the knob instrument's range)."""
    lo, hi = protocol.instruments[protocol.roles.knobs.refs()[0].instrument].voltage_range
    return (hi - lo) / 2**protocol.simulation.dac_bits / abs(protocol.roles.knobs.calibration.scale)


def with_homeostasis(protocol, **fields):
    h = protocol.method.homeostasis.model_copy(update=fields)
    return protocol.model_copy(update={"method": protocol.method.model_copy(update={"homeostasis": h})})


def variants(protocol) -> dict[str, dict]:
    width = protocol.method.homeostasis.dither or knob_step(protocol)
    return {
        "neither": {"targets": "measured", "dither": 0.0},
        "incremental": {"targets": "incremental", "dither": 0.0},
        "dither": {"targets": "measured", "dither": width},
        "both": {"targets": "incremental", "dither": width},
    }


def trace(protocol, n: int, targets: str) -> tuple[np.ndarray, np.ndarray]:
    """Targets and held θ (every parameter) over the first n samples, without dither."""
    protocol = with_homeostasis(protocol, targets=targets, dither=0.0)
    backend = open_backend(protocol, "sim")
    data = load(protocol.dataset)
    trainer = Trainer(protocol, backend.bench, data)
    trainer.start()
    y = data.targets(data.y_train)
    m = protocol.method
    ts, held = [], []
    for i in range(n):
        ts.append(trainer.state.targets.copy())
        rec = execute(train_sample(trainer.state, data.x_train[i % len(y)], y[i % len(y)], m, m.beta), backend.bench)
        held.append(rec.theta_h)
    backend.close()
    return np.array(ts), np.array(held)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--protocol", default=str(ROOT / "protocols" / "iris_10bit_sim.yaml"))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--trace", type=int, default=360, help="samples in the trace panel")
    ap.add_argument("--out", default="knob-resolution")
    args = ap.parse_args()
    protocol, _ = load_protocol(args.protocol)
    seeds = [int(s) for s in args.seeds.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    acc: dict[str, list[float]] = {}
    curves: dict[str, np.ndarray] = {}
    for name, fields in variants(protocol).items():
        p = with_homeostasis(protocol, **fields)
        for seed in seeds:
            with aeqlab.open_bench(p, backend="sim") as bench:
                run = aeqlab.train(p, bench, epochs=args.epochs, seed=seed, out=out / name)
            acc.setdefault(name, []).append(float(run.summary["test_accuracy"]))
            if seed == seeds[0]:
                curves[name] = run.epochs().test_accuracy.to_numpy()
            print(f"{name:12} seed {seed}: test accuracy {acc[name][-1]:.3f}", flush=True)
    print(f"\n{protocol.name}, {len(curves['neither']) - 1} epochs, knob DAC step {knob_step(protocol):.4g}\n")
    print("| mitigations | targets | dither | " + " | ".join(f"seed {s}" for s in seeds) + " | mean |")
    print("|---|---|---|" + "---|" * (len(seeds) + 1))
    for name, fields in variants(protocol).items():
        cells = " | ".join(f"{a:.3f}" for a in acc[name])
        print(f"| {name} | {fields['targets']} | {fields['dither']:.4g} | {cells} | {np.mean(acc[name]):.3f} |")
    _figure(protocol, curves, args.trace, out / "knob_resolution.png")


def _figure(protocol, curves: dict[str, np.ndarray], n: int, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.6), layout="constrained")
    a, b = fig.subplots(1, 2)
    for name, c in curves.items():
        a.plot(np.arange(len(c)), c, "o-", markersize=3, label=name)
    a.set_xlabel("epoch")
    a.set_ylabel("test accuracy")
    a.set_ylim(0, 1.02)
    a.grid(alpha=0.3)
    a.legend(title="mitigations", loc="lower right")
    step = knob_step(protocol)
    t_inc, h_inc = trace(protocol, n, "incremental")
    t_meas, h_meas = trace(protocol, n, "measured")
    k = int(np.argmax(np.abs(t_inc[-1] - t_inc[0])))  # the parameter that moved most with incremental targets
    s = np.arange(n)
    b.plot(s, t_inc[:, k] - t_inc[0, k], "C1-", label="incremental: targets")
    b.plot(s, h_inc[:, k] - t_inc[0, k], "C1.", markersize=2, label="incremental: held θ")
    b.plot(s, t_meas[:, k] - t_meas[0, k], "C0-", label="measured: targets")
    b.plot(s, h_meas[:, k] - t_meas[0, k], "C0.", markersize=2, label="measured: held θ")
    for j in (-1, 1):
        b.axhline(j * step, color="gray", lw=0.6, ls="--")
    b.set_xlabel("training sample")
    b.set_ylabel(f"parameter {k} − its start (model units)")
    b.grid(alpha=0.3)
    b.legend(loc="best", fontsize=8)
    fig.suptitle(f"{protocol.name}: knob DAC step {step:.3g} (dashed: ± one step)")
    fig.savefig(path, dpi=90)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
