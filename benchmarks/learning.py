"""Learning benchmark: Aeqprop against the exact gradient and SPSA, through the same bench calls.

For each data set and seed (the training order; the twin's physics is the protocol's),
this trains on the twin

* ``exact``: SGD with the oracle's gradient, same step size and β schedule;
* ``aeqprop-centered`` and ``aeqprop-optimistic``;
* ``spsa``: its budget fixed in advance at 10× the training samples the slower
  Aeqprop variant of that seed needed to reach the target (10× its whole run when it
  never got there).

The target is 90 % of the best mean final test accuracy of exact and Aeqprop on that
data set. The test accuracy is measured every ``n_train / evals-per-epoch`` samples;
"samples to target" is the first such point at or above the target, and "round trips
to target" the instrument calls of the training samples up to that point (evaluations
excluded). Prints a table and the ratios aeqprop/exact (final accuracy) and
spsa/aeqprop (samples to target).

Usage::

    python benchmarks/learning.py                       # iris and digits, 3 seeds, protocol epochs
    python benchmarks/learning.py --datasets digits --seeds 1 --epochs 3
    python benchmarks/learning.py --quick               # iris, 1 seed, 3 epochs
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from aeqlab.backends import open_backend
from aeqlab.datasets import load
from aeqlab.engine.plan import execute
from aeqlab.engine.trainer import Trainer
from aeqlab.errors import AeqlabError
from aeqlab.protocol import Protocol, load_protocol

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
    """One run: test accuracy at evaluation points, and the cost of training up to each."""

    dataset: str
    method: str
    seed: int
    samples: list[int] = field(default_factory=list)
    round_trips: list[int] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    error: str | None = None  # a run that stopped early (e.g. the twin became unstable)

    @property
    def final(self) -> float:
        return self.accuracy[-1]

    def to_target(self, target: float) -> tuple[int | None, int | None]:
        """(samples, round trips) at the first evaluation at or above ``target``; None when never."""
        for s, r, a in zip(self.samples, self.round_trips, self.accuracy):
            if a >= target:
                return s, r
        return None, None


def method_protocol(protocol: Protocol, dataset: str, method: str) -> Protocol:
    """The protocol with its method section switched to one of the benchmark's methods."""
    update: dict = {"name": method.split("-")[0]}
    if method.startswith("aeqprop-"):
        update["variant"] = method.split("-")[1]
    if method == "spsa":
        update["spsa"] = protocol.method.spsa.model_copy(update={"a": SPSA_A.get(dataset, protocol.method.spsa.a)})
    m = protocol.method.model_copy(update=update)
    m = type(m).model_validate(m.model_dump(by_alias=True))  # re-run the method's own checks
    return protocol.model_copy(update={"method": m})


def train_curve(
    protocol: Protocol, dataset: str, method: str, seed: int, max_samples: int, evals_per_epoch: int
) -> Curve:
    """Train ``max_samples`` samples (epochs of shuffled order, β decayed per epoch), evaluating as it goes."""
    p = method_protocol(protocol, dataset, method)
    data = load(p.dataset)
    backend = open_backend(p, "sim")
    trainer = Trainer(p, backend.bench, data, oracle=backend.oracle)
    rng = np.random.default_rng(seed)
    n = len(data.y_train)
    points = {round(j * n / evals_per_epoch) for j in range(1, evals_per_epoch + 1)}  # within an epoch
    targets = data.targets(data.y_train)
    curve = Curve(dataset, method, seed)
    trips = 0
    t0 = time.perf_counter()
    try:
        trainer.require_oracle()
        trainer.start()
        curve.samples.append(0)
        curve.round_trips.append(0)
        curve.accuracy.append(trainer.evaluate(data.x_test, data.y_test).accuracy)
        beta, done = p.method.beta, 0
        while done < max_samples:
            order = rng.permutation(n) if p.schedule.shuffle else np.arange(n)
            for k in range(n):
                i = int(order[k])
                before = sum(backend.bench.round_trips.values())
                execute(trainer.sample_plan(data.x_train[i], targets[i], beta), backend.bench)
                trips += sum(backend.bench.round_trips.values()) - before
                trainer.samples_done += 1
                done += 1
                if k + 1 in points or done == max_samples:
                    curve.samples.append(done)
                    curve.round_trips.append(trips)
                    curve.accuracy.append(trainer.evaluate(data.x_test, data.y_test).accuracy)
                if done == max_samples:
                    break
            beta *= p.schedule.beta_decay
    except AeqlabError as exc:  # recorded: the curve so far stands, its final accuracy is the last one measured
        curve.error = f"{type(exc).__name__} after {done} samples: {exc.one_line()}"
    finally:
        backend.safe_state()
        backend.close()
    curve.wall_s = time.perf_counter() - t0
    return curve


def _fmt_count(values: list[int | None]) -> str:
    got = [v for v in values if v is not None]
    if not got:
        return "never"
    text = f"{np.mean(got):.0f}"
    return text if len(got) == len(values) else f"{text} ({len(values) - len(got)}× never)"


def run_dataset(
    dataset: str,
    seeds: list[int],
    epochs: int | None,
    evals_per_epoch: int,
    log,
    spsa_cap: int | None = None,
    methods: tuple[str, ...] = METHODS,
) -> dict:
    protocol, _ = load_protocol(PROTOCOLS[dataset])
    n_train = len(load(protocol.dataset).y_train)
    n_epochs = epochs or protocol.schedule.epochs
    curves: dict[str, list[Curve]] = {m: [] for m in methods}
    trained = [m for m in methods if m != "spsa"]
    for seed in seeds:
        for method in trained:
            c = train_curve(protocol, dataset, method, seed, n_epochs * n_train, evals_per_epoch)
            curves[method].append(c)
            log(f"{dataset} seed {seed} {method}: final {c.final:.3f} ({c.wall_s:.0f} s) {c.error or ''}")
    best = max(np.mean([c.final for c in curves[m]]) for m in trained)
    target = TARGET_FRACTION * best
    budgets, full = [], []
    aeqprop = [m for m in trained if m.startswith("aeqprop-")]
    for si, seed in enumerate(seeds if "spsa" in methods and aeqprop else []):
        needed = [curves[m][si].to_target(target)[0] for m in aeqprop]
        slowest = max(s if s is not None else n_epochs * n_train for s in needed)
        budget = SPSA_BUDGET * slowest if spsa_cap is None else min(SPSA_BUDGET * slowest, spsa_cap)
        budgets.append(budget)
        full.append(SPSA_BUDGET * slowest)
        c = train_curve(protocol, dataset, "spsa", seed, budget, evals_per_epoch)
        curves["spsa"].append(c)
        log(f"{dataset} seed {seed} spsa: final {c.final:.3f} after {budget} samples ({c.wall_s:.0f} s)")
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
            "samples_run": [c.samples[-1] for c in curves[m]],
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
        + (
            f" (capped; 10x Aeqprop's would be {result['spsa_full_budgets']})"
            if result["spsa_budgets"] != result["spsa_full_budgets"]
            else ""
        ),
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
    ap.add_argument("--evals-per-epoch", type=int, default=4, help="test evaluations per epoch")
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS), help="methods to run")
    ap.add_argument("--quick", action="store_true", help="iris, 1 seed, 3 epochs")
    ap.add_argument(
        "--spsa-cap", type=int, default=None, help="at most this many SPSA samples (reported when it cuts the budget)"
    )
    ap.add_argument("--json", type=Path, default=None, help="write every result and curve here")
    args = ap.parse_args(argv)
    if args.quick:
        args.datasets, args.seeds, args.epochs = ["iris"], 1, 3

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    results = []
    with threadpool_limits(limits=1, user_api="blas"):
        for ds in args.datasets:
            res = run_dataset(
                ds,
                list(range(args.first_seed, args.first_seed + args.seeds)),
                args.epochs,
                args.evals_per_epoch,
                log,
                args.spsa_cap,
                tuple(m for m in METHODS if m in args.methods),
            )
            results.append(res)
            print(report(res), "\n", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
