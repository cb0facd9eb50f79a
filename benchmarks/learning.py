"""Learning benchmark: Aeqprop against the exact gradient and SPSA, as sweeps (docs/sweeps.md).

For each data set and seed (the training order; the twin's physics is the protocol's),
this trains on the twin, every run a normal run folder of a sweep on Dask:

* ``exact``: SGD with the oracle's gradient, same step size and β schedule;
* ``aeqprop-centered`` and ``aeqprop-optimistic``;
* ``spsa``: its budget fixed in advance at 10× the training samples the slower
  Aeqprop variant of that seed needed to reach the target (10× its whole run when it
  never got there), rounded up to whole epochs.

The first three are one sweep (a linked axis over the method section × the seeds); SPSA
is a second sweep per seed, since its budget depends on the first. The target is 90 % of
the best mean final test accuracy of exact and Aeqprop on that data set. The test
accuracy is measured at the end of every epoch (the runs' own evaluations); "samples to
target" is the first epoch end at or above the target, and "round trips to target" those
samples times the run's instrument round trips per sample (its summary). Prints a table
and the ratios aeqprop/exact (final accuracy) and spsa/aeqprop (samples to target).

Reruns reuse finished points and resume interrupted ones (the sweep folders under
``--out``); ``--scheduler`` runs them on an existing Dask cluster.

Usage::

    python benchmarks/learning.py                       # iris and digits, 3 seeds, protocol epochs
    python benchmarks/learning.py --datasets digits --seeds 1 --epochs 3
    python benchmarks/learning.py --quick               # iris, 1 seed, 3 epochs
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aeqlab.datasets import load
from aeqlab.protocol import load_protocol
from aeqlab.protocol.yamlio import dump

ROOT = Path(__file__).resolve().parents[1]
PROTOCOLS = {"iris": ROOT / "protocols/iris_hopfield_sim.yaml", "digits": ROOT / "protocols/digits_hopfield_sim.yaml"}
METHODS = ("exact", "aeqprop-centered", "aeqprop-optimistic", "spsa")
# SPSA step gains a (c = 0.01) picked by one-epoch sweeps: iris over 0.002, 0.01, 0.05, 0.2, 0.8 (0.2 and up
# diverge); digits over 0.0003, 0.001, 0.003, 0.01, 0.1 (0.01 and up diverge)
SPSA_A = {"iris": 0.05, "digits": 0.003}
TARGET_FRACTION = 0.9
SPSA_BUDGET = 10


@dataclass
class Curve:
    """One run: test accuracy at the end of each epoch, and the cost of training up to each."""

    dataset: str
    method: str
    seed: int
    samples: list[int] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    round_trips_per_sample: float = 0.0
    wall_s: float = 0.0
    run_dir: str | None = None
    error: str | None = None  # a run that stopped early (e.g. the twin became unstable)

    @property
    def final(self) -> float:
        return self.accuracy[-1] if self.accuracy else float("nan")

    def to_target(self, target: float) -> tuple[int | None, int | None]:
        """(samples, round trips) at the first evaluation at or above ``target``; None when never."""
        for s, a in zip(self.samples, self.accuracy):
            if a >= target:
                return s, round(s * self.round_trips_per_sample)
        return None, None


def method_fields(dataset: str, method: str) -> dict[str, Any]:
    """The protocol fields of one of the benchmark's methods: a value of the sweep's linked axis."""
    fields: dict[str, Any] = {"label": method, "method.name": method.split("-")[0]}
    if method.startswith("aeqprop-"):
        fields["method.variant"] = method.split("-")[1]
    if method == "spsa" and dataset in SPSA_A:
        fields["method.spsa.a"] = SPSA_A[dataset]
    return fields


def run_sweep(name: str, dataset: str, methods: list[str], seeds: list[int], epochs: int, out: Path, scheduler):
    """One sweep of ``methods`` × ``seeds`` on the data set's protocol; its curves, in point order."""
    import aeqlab

    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    spec = {
        "name": name,
        "protocol": str(PROTOCOLS[dataset]),
        "backend": "sim",
        "epochs": epochs,
        "seeds": seeds,
        "axes": {"method": [method_fields(dataset, m) for m in methods]},
        "out": str(folder.resolve()),
    }
    sweep_file = folder / f"{name}.sweep.yaml"
    sweep_file.write_text(dump(spec), encoding="utf-8")
    result = aeqlab.sweep(sweep_file, scheduler=scheduler, progress=True)
    curves = []
    order = [(m, s) for m in methods for s in seeds]  # the sweep's point order: axis values, then seeds
    for (method, seed), point in zip(order, result.points, strict=True):
        curve = Curve(dataset, method, seed, wall_s=float(point.get("wall_s", 0.0)), run_dir=point.get("run_dir"))
        if point.get("status") != "completed":
            curve.error = f"{point.get('status')}: {str(point.get('error'))[:120]}"
        if curve.run_dir:
            run = aeqlab.open_run(curve.run_dir)
            ep = run.epochs()
            ep = ep[ep["test_accuracy"].notna()]
            per_epoch = run.header.samples_per_epoch
            curve.samples = [int(e) * per_epoch for e in ep.index]
            curve.accuracy = [float(a) for a in ep["test_accuracy"]]
            trips = run.summary.get("round_trips_per_sample") or {}
            curve.round_trips_per_sample = float(sum(trips.values()))
        curves.append(curve)
    return curves


def _fmt_count(values: list[int | None]) -> str:
    got = [v for v in values if v is not None]
    if not got:
        return "never"
    text = f"{np.mean(got):.0f}"
    return text if len(got) == len(values) else f"{text} ({len(values) - len(got)}× never)"


def run_dataset(
    dataset: str, seeds: list[int], epochs: int | None, out: Path, scheduler, log, methods: tuple[str, ...] = METHODS
) -> dict:
    protocol, _ = load_protocol(PROTOCOLS[dataset])
    n_train = len(load(protocol.dataset).y_train)
    n_epochs = epochs or protocol.schedule.epochs
    trained = [m for m in methods if m != "spsa"]
    curves: dict[str, list[Curve]] = {m: [] for m in methods}
    for c in run_sweep(f"learning-{dataset}", dataset, trained, seeds, n_epochs, out, scheduler):
        curves[c.method].append(c)
        log(f"{dataset} seed {c.seed} {c.method}: final {c.final:.3f} ({c.wall_s:.0f} s) {c.error or ''}")
    for m in trained:
        curves[m].sort(key=lambda c: c.seed)
    best = max(np.nanmean([c.final for c in curves[m]]) for m in trained)
    target = TARGET_FRACTION * best
    budgets, full = [], []
    aeqprop = [m for m in trained if m.startswith("aeqprop-")]
    for si, seed in enumerate(seeds if "spsa" in methods and aeqprop else []):
        needed = [curves[m][si].to_target(target)[0] for m in aeqprop]
        slowest = max(s if s is not None else n_epochs * n_train for s in needed)
        spsa_epochs = math.ceil(SPSA_BUDGET * slowest / n_train)
        budgets.append(spsa_epochs * n_train)
        full.append(SPSA_BUDGET * slowest)
        (c,) = run_sweep(f"learning-{dataset}-spsa-seed{seed}", dataset, ["spsa"], [seed], spsa_epochs, out, scheduler)
        curves["spsa"].append(c)
        log(f"{dataset} seed {seed} spsa: final {c.final:.3f} after {spsa_epochs} epochs ({c.wall_s:.0f} s)")
        if c.error:
            log(c.error)
    rows = {}
    for m in methods:
        hits = [c.to_target(target) for c in curves[m]]
        finals = [c.final for c in curves[m]]
        rows[m] = {
            "final_mean": float(np.mean(finals)),
            "final_std": float(np.std(finals)),
            "samples_to_target": [h[0] for h in hits],
            "round_trips_to_target": [h[1] for h in hits],
            "samples_run": [c.samples[-1] if c.samples else 0 for c in curves[m]],
            "wall_s": float(sum(c.wall_s for c in curves[m])),
            "errors": [c.error for c in curves[m] if c.error],
        }
    return {
        "dataset": dataset,
        "protocol": str(PROTOCOLS[dataset].relative_to(ROOT)),
        "nudging": protocol.method.nudging,
        "seeds": seeds,
        "epochs": n_epochs,
        "n_train": n_train,
        "target": target,
        "spsa_budgets": budgets,
        "spsa_full_budgets": full,
        "spsa_a": SPSA_A.get(dataset),
        "methods": rows,
        "curves": [asdict(c) for m in methods for c in curves[m]],
    }


def ratio_samples(spsa: list[int | None], aeq: list[int | None]) -> str:
    """SPSA's samples to target over Aeqprop's, per seed ("never" when SPSA missed it in its budget)."""
    out = []
    for s, a in zip(spsa, aeq):
        out.append("never" if s is None else ("n/a" if a is None else f"{s / a:.1f}"))
    return ", ".join(out)


def report(result: dict) -> str:
    r = result["methods"]
    lines = [
        f"## {result['dataset']}: {result['protocol']} ({result['nudging']} nudging), seeds {result['seeds']}, "
        f"{result['epochs']} epochs x {result['n_train']} samples; target = {result['target']:.3f} "
        f"(0.9 x best mean final accuracy); SPSA budgets {result['spsa_budgets']} samples"
        f" (10x Aeqprop's {result['spsa_full_budgets']}, rounded up to whole epochs)",
        "",
        "| method | final test acc (mean ± sd) | samples to target (mean) | round trips to target (mean) "
        "| samples run | wall s |",
        "|---|---|---|---|---|---|",
    ]
    for m, row in r.items():
        lines.append(
            f"| {m} | {row['final_mean']:.3f} ± {row['final_std']:.3f} | {_fmt_count(row['samples_to_target'])} "
            f"| {_fmt_count(row['round_trips_to_target'])} | {_fmt_count(row['samples_run'])} | {row['wall_s']:.0f} |"
        )
    lines.append("")
    for m, row in r.items():
        for err in row["errors"]:
            lines.append(f"{m} stopped early: {err}")
    lines.append("")
    for v in ("centered", "optimistic"):
        aeq = r.get(f"aeqprop-{v}")
        if aeq is None or "exact" not in r:
            continue
        lines.append(
            f"aeqprop-{v}/exact final accuracy: {aeq['final_mean'] / r['exact']['final_mean']:.3f} "
            f"(difference {aeq['final_mean'] - r['exact']['final_mean']:+.3f})"
            + (
                f"; spsa/aeqprop-{v} samples to target per seed: "
                f"{ratio_samples(r['spsa']['samples_to_target'], aeq['samples_to_target'])}"
                if "spsa" in r
                else ""
            )
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", nargs="+", choices=sorted(PROTOCOLS), default=["iris", "digits"])
    ap.add_argument("--seeds", type=int, default=3, help="number of seeds (training orders 0, 1, ...)")
    ap.add_argument("--first-seed", type=int, default=0, help="the first seed (to add seeds to an earlier run)")
    ap.add_argument("--epochs", type=int, default=None, help="epochs of exact and Aeqprop (default: the protocol's)")
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS), help="methods to run")
    ap.add_argument("--quick", action="store_true", help="iris, 1 seed, 3 epochs")
    ap.add_argument("--out", type=Path, default=Path("learning-sweeps"), help="the sweeps' folders")
    ap.add_argument("--scheduler", default=None, help="a Dask scheduler address (default: a LocalCluster)")
    ap.add_argument("--json", type=Path, default=None, help="write every result and curve here")
    args = ap.parse_args(argv)
    if args.quick:
        args.datasets, args.seeds, args.epochs = ["iris"], 1, 3

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    results = []
    for ds in args.datasets:
        seeds = list(range(args.first_seed, args.first_seed + args.seeds))
        methods = tuple(m for m in METHODS if m in args.methods)
        res = run_dataset(ds, seeds, args.epochs, args.out, args.scheduler, log, methods)
        results.append(res)
        print(report(res), "\n", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
