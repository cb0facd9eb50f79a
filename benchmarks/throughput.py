"""Throughput benchmark: where the time of a training sample goes, on the twin.

Per protocol (the protocol's own method, Aeqprop by default):

1. **dry run** (simulated clock, nothing sleeps): training samples per second and
   process CPU time per sample (after 10 warm-up samples, which also load the twin's
   compiled kernel); twin relaxations per sample and their mean cost, with the kernel
   that ran them (``numba``, or ``numpy`` and why); the share of wall time spent outside
   the twin's relaxation (engine, plans, feedback loops, bench, simulated drivers);
   instrument round trips per sample. Relaxation time is measured by wrapping the
   physics object's ``relax`` on the instance (the class is not edited).
1b. **end to end** (``--full-epochs``, default 1): ``aeqlab run`` itself, with its
   journal, checkpoints and test evaluations: training samples per second over the
   whole epoch, and the wall time split into the twin's relaxations, the evaluations,
   the journal and the rest (engine, bench, drivers, the run's start).
2. **real time** (``SimulatedClock(realtime=True)``: settle waits and instrument
   latency are slept on the wall clock) with latency L per instrument call and
   first-order settling time constant τ: wall time per sample against its lower bound

       bound = Σ over settles τ·ln(Δ/tol)⁺  +  round trips × L,

   where Δ is how far the readings (θ and ŷ) move across that settle and tol the
   protocol's homeostasis tolerance: the least wait after which a first-order system is
   within tol of its new equilibrium. Δ and the round trips come from the same
   samples run without τ and L (the procedure the method needs, not whatever wait
   the engine chose), so the bound is what the method's plan would take on an ideal
   clock. ``--settle`` compares the protocol's settle policy with others side by side,
   all against the bound of the protocol's own procedure. The last column is the bench
   time alone (the simulated clock: settle waits and latencies, no computing and no
   oversleeping of the wall clock) and its ratio to the same bound; the very last, from
   the same samples on the simulated clock, is the share of readings taken right after
   a settle that are more than tol from the equilibrium the twin is heading for, and the
   worst of them in units of tol (how settled the readings the method uses are).

Usage::

    python benchmarks/throughput.py                         # iris and digits
    python benchmarks/throughput.py --datasets iris --samples 200 --realtime-samples 30
    python benchmarks/throughput.py --samples 100 --realtime-samples 30 --settle adaptive:0.001 fixed:0.004
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from aeqlab.backends import open_backend
from aeqlab.datasets import load
from aeqlab.engine.plan import Message, Read, Set, Settle, execute
from aeqlab.engine.trainer import Trainer
from aeqlab.protocol import Protocol, load_protocol

ROOT = Path(__file__).resolve().parents[1]
PROTOCOLS = {"iris": ROOT / "protocols/iris_hopfield_sim.yaml", "digits": ROOT / "protocols/digits_hopfield_sim.yaml"}


class SettleMeter:
    """A target in front of the bench that measures how far readings move across each settle."""

    def __init__(self, bench: Any, tau: float, tol: float):
        self.bench, self.tau, self.tol = bench, tau, tol
        self.last: dict[str, np.ndarray] = {}
        self.pending = False
        self.wrote = False
        self.delta = 0.0
        self.required = 0.0  # Σ τ·ln(Δ/tol)⁺ so far (seconds)
        self.settles = 0

    def apply(self, msg: Message) -> Any:
        out = self.bench.apply(msg)
        if isinstance(msg, Set):
            self.wrote = True
        elif isinstance(msg, Settle):
            self._close()
            self.pending, self.delta, self.settles = True, 0.0, self.settles + 1
        elif isinstance(msg, Read):
            prev = self.last.get(msg.role)
            if self.pending and prev is not None:
                self.delta = max(self.delta, float(np.max(np.abs(out - prev))))
            self.last[msg.role] = np.asarray(out).copy()
        return out

    def _close(self) -> None:
        if self.pending and self.delta > self.tol:
            self.required += self.tau * math.log(self.delta / self.tol)
        self.pending = False

    def finish(self) -> float:
        self._close()
        return self.required


class StaleMeter:
    """A target in front of the bench that measures, for every reading taken right after a
    settle, how far the twin's observed values are from the equilibrium they are heading for."""

    def __init__(self, bench: Any, twin: Any):
        self.bench, self.twin = bench, twin
        self.after = False
        self.errors: list[float] = []

    def apply(self, msg: Message) -> Any:
        out = self.bench.apply(msg)
        if isinstance(msg, Settle):
            self.after = True
        elif isinstance(msg, Read) and self.after and msg.role in ("params", "outputs"):
            seen = self.twin.read(msg.role, np.arange(self.twin.sizes[msg.role]))
            eq = self.twin.net.theta if msg.role == "params" else self.twin.net.outputs
            self.errors.append(float(np.max(np.abs(seen - eq))) if seen.size else 0.0)
            self.after = msg.role == "params"
        return out


def _with_simulation(protocol: Protocol, **update: Any) -> Protocol:
    sim = protocol.simulation.model_copy(update=update)
    return protocol.model_copy(update={"simulation": sim})


def _with_settle(protocol: Protocol, settle: str | None) -> Protocol:
    """The protocol with another settle policy: ``fixed:SECONDS``, ``until_stable:INTERVAL`` or ``adaptive:TAU``.

    ``until_stable`` and ``adaptive`` settle to the protocol's homeostasis tolerance.
    """
    if settle is None:
        return protocol
    mode, _, value = settle.partition(":")
    tol = protocol.method.homeostasis.tolerance
    if mode == "fixed":
        policy = {"mode": "fixed", "time": float(value)}
    elif mode == "until_stable":
        interval = float(value)
        policy = {"mode": "until_stable", "tolerance": tol, "interval": interval, "timeout": 1000 * interval}
    elif mode == "adaptive":
        policy = {"mode": "adaptive", "tau": float(value)}
    else:
        raise SystemExit(f"--settle {settle}: use fixed:SECONDS, until_stable:INTERVAL or adaptive:TAU")
    dumped = protocol.method.model_dump(by_alias=True)
    dumped["settle"] = policy
    method = type(protocol.method).model_validate(dumped)
    return protocol.model_copy(update={"method": method})


def _train(
    protocol: Protocol,
    samples: int,
    *,
    realtime: bool = False,
    meter: tuple[float, float] | None = None,
    stale: bool = False,
) -> dict[str, Any]:
    """Train ``samples`` samples (after 10 warm-up ones) and time them.

    ``meter`` (τ, tol) measures the least settle time the procedure needs; ``stale``
    measures how far each reading after a settle is from its equilibrium.
    """
    data = load(protocol.dataset)
    backend = open_backend(protocol, "sim", realtime=realtime)
    net = backend.twin.net
    relax = net.relax
    spent = [0.0]

    def timed_relax(*args: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return relax(*args, **kw)
        finally:
            spent[0] += time.perf_counter() - t0

    net.relax = timed_relax  # an instance attribute: the physics class is untouched
    trainer = Trainer(protocol, backend.bench, data, oracle=backend.oracle)
    targets = data.targets(data.y_train)
    order = np.random.default_rng(protocol.seed).permutation(len(targets))
    order = np.resize(order, samples + 10)
    beta = protocol.method.beta
    try:
        trainer.start()
        for i in order[:10]:
            execute(trainer.sample_plan(data.x_train[i], targets[i], beta), backend.bench)
        target: Any = backend.bench
        if meter is not None:
            target = SettleMeter(backend.bench, *meter)
        elif stale:
            target = StaleMeter(backend.bench, backend.twin)
        trips0 = Counter(backend.bench.round_trips)
        spent[0] = 0.0
        clock0 = backend.twin.clock.now()
        relax0 = backend.twin.stats.relaxations
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        for i in order[10:]:
            execute(trainer.sample_plan(data.x_train[i], targets[i], beta), target)
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        trips = Counter(backend.bench.round_trips)
        trips.subtract(trips0)
        return {
            "samples": samples,
            "wall_s": wall,
            "samples_per_s": samples / wall,
            "cpu_ms_per_sample": 1e3 * cpu / samples,
            "relax_s": spent[0],
            "relaxations_per_sample": (backend.twin.stats.relaxations - relax0) / samples,
            "outside_relax_share": 1.0 - spent[0] / wall,
            "round_trips_per_sample": {k: v / samples for k, v in sorted(trips.items())},
            "simulated_s_per_sample": (backend.twin.clock.now() - clock0) / samples,
            "required_settle_s_per_sample": target.finish() / samples if meter is not None else None,
            "settles_per_sample": target.settles / samples if meter is not None else None,
            "reading_errors": target.errors if stale else None,
        }
    finally:
        backend.safe_state()
        backend.close()


def end_to_end(protocol_path: Path, epochs: int) -> dict[str, Any]:
    """``aeqlab run`` (journal, checkpoints, evaluations) for ``epochs``, with where its wall time goes.

    Exclusive shares of the wall time: the twin's relaxations during training, the test
    evaluations (their relaxations included), the journal (every sample's transaction
    with its checkpoint, snapshots, epoch rows) and the rest (engine, bench, drivers).
    """
    import tempfile

    import aeqlab
    from aeqlab.engine.trainer import Trainer as EngineTrainer
    from aeqlab.journal import Journal
    from sim_backends.hopfield import HopfieldNetwork

    spent = {"relax": 0.0, "relax_in_eval": 0.0, "evaluate": 0.0, "journal": 0.0}
    in_eval = [False]

    def timed(fn, key):
        def wrapper(*args: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            if key == "evaluate":
                in_eval[0] = True
            try:
                return fn(*args, **kw)
            finally:
                dt = time.perf_counter() - t0
                spent[key] += dt
                if key == "evaluate":
                    in_eval[0] = False
                elif key == "relax" and in_eval[0]:
                    spent["relax_in_eval"] += dt

        return wrapper

    patched = [
        (HopfieldNetwork, "relax", "relax"),
        (EngineTrainer, "evaluate", "evaluate"),
        (Journal, "record_sample", "journal"),
        (Journal, "record_epoch", "journal"),
    ]
    originals = [(cls, name, getattr(cls, name)) for cls, name, _ in patched]
    protocol, text = load_protocol(protocol_path)
    try:
        for cls, name, key in patched:
            setattr(cls, name, timed(getattr(cls, name), key))
        with tempfile.TemporaryDirectory(prefix="aeqlab-throughput-") as out:
            t0 = time.perf_counter()
            api_protocol = aeqlab.load_protocol(protocol_path)
            with aeqlab.open_bench(api_protocol, backend="sim") as bench:
                summary = aeqlab.train(api_protocol, bench, epochs=epochs, out=Path(out)).summary
            wall = time.perf_counter() - t0
    finally:
        for cls, name, fn in originals:
            setattr(cls, name, fn)
    n = summary["samples"]
    shares = {
        "twin relaxation (training)": spent["relax"] - spent["relax_in_eval"],
        "evaluations": spent["evaluate"],
        "journal": spent["journal"],
    }
    shares["the rest (engine, bench, drivers, start-up)"] = wall - sum(shares.values())
    return {
        "epochs": epochs,
        "samples": n,
        "wall_s": wall,
        "samples_per_s": n / wall,
        "journal_ms_per_sample": 1e3 * spent["journal"] / n,
        "shares": {k: v / wall for k, v in shares.items()},
    }


def run(
    dataset: str,
    samples: int,
    rt_samples: int,
    latency: float,
    tau: float,
    settles: list[str | None],
    full_epochs: int = 0,
) -> dict[str, Any]:
    protocol, _ = load_protocol(PROTOCOLS[dataset])
    dry = _train(protocol, samples)
    from sim_backends.kernels import kernel_status

    result: dict[str, Any] = {
        "dataset": dataset,
        "protocol": str(PROTOCOLS[dataset].relative_to(ROOT)),
        "kernel": f"twin kernel: {kernel_status()}",
        "dry": dry,
    }
    if full_epochs:
        result["end_to_end"] = end_to_end(PROTOCOLS[dataset], full_epochs)
    tol = protocol.method.homeostasis.tolerance
    rows = []
    bound = None
    for settle in settles:
        p = _with_settle(protocol, settle)
        ideal = _train(p, rt_samples, meter=(tau, tol))
        trips = sum(ideal["round_trips_per_sample"].values())
        if bound is None:  # the protocol's own procedure on an ideal clock sets the bound for every row
            bound = ideal["required_settle_s_per_sample"] + trips * latency
        settling = _with_simulation(p, latency=latency, settling_tau=tau)
        real = _train(settling, rt_samples, realtime=True)
        errors = np.array(_train(settling, rt_samples, stale=True)["reading_errors"]) / tol
        per_sample = real["wall_s"] / rt_samples
        rows.append(
            {
                "settle": settle or f"protocol ({p.method.settle_policy.mode})",
                "wall_s_per_sample": per_sample,
                "bound_s_per_sample": bound,
                "ratio": per_sample / bound,
                "ideal_round_trips_per_sample": trips,
                "real_round_trips_per_sample": sum(real["round_trips_per_sample"].values()),
                "required_settle_s_per_sample": ideal["required_settle_s_per_sample"],
                "simulated_s_per_sample": real["simulated_s_per_sample"],
                "bench_ratio": real["simulated_s_per_sample"] / bound,
                "dry_compute_s_per_sample": 1.0 / ideal["samples_per_s"],
                "reads_beyond_tol": float(np.mean(errors > 1.0)),
                "worst_read_error_tol": float(errors.max()),
            }
        )
    result["realtime"] = {"latency_s": latency, "tau_s": tau, "tolerance": tol, "rows": rows}
    return result


def report(r: dict[str, Any]) -> str:
    d = r["dry"]
    trips = ", ".join(f"{k} {v:.1f}" for k, v in d["round_trips_per_sample"].items())
    rt = r["realtime"]
    lines = [
        f"## {r['dataset']} ({r['protocol']})",
        f"dry run: {d['samples_per_s']:.1f} samples/s over {d['samples']} samples, "
        f"{d['cpu_ms_per_sample']:.2f} ms CPU/sample; twin relaxations {d['relaxations_per_sample']:.1f}/sample at "
        f"{1e3 * d['relax_s'] / max(d['relaxations_per_sample'] * d['samples'], 1):.3f} ms "
        f"({r['kernel']}); outside the twin's relaxation: {100 * d['outside_relax_share']:.0f} % of wall time; "
        f"round trips per sample: {trips}",
    ]
    e = r.get("end_to_end")
    if e:
        where = ", ".join(f"{k} {100 * v:.0f} %" for k, v in e["shares"].items())
        lines.append(
            f"end to end (aeqlab run, {e['epochs']} epoch(s), journal on): {e['samples_per_s']:.1f} training "
            f"samples/s over {e['samples']} samples, journal {e['journal_ms_per_sample']:.2f} ms/sample; "
            f"wall time: {where}"
        )
    lines += [
        f"real time, L = {1e3 * rt['latency_s']:g} ms per call, τ = {1e3 * rt['tau_s']:g} ms, "
        f"tol = {rt['tolerance']:g}:",
        "",
        "| settle policy | wall ms/sample | bound ms/sample | ratio | round trips (ideal / real) | required settle ms "
        "| compute ms (dry) | bench ms/sample (ratio) | reads > tol (worst, in tol) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rt["rows"]:
        lines.append(
            f"| {row['settle']} | {1e3 * row['wall_s_per_sample']:.1f} | {1e3 * row['bound_s_per_sample']:.1f} "
            f"| {row['ratio']:.2f} | {row['ideal_round_trips_per_sample']:.1f} / "
            f"{row['real_round_trips_per_sample']:.1f} | {1e3 * row['required_settle_s_per_sample']:.1f} "
            f"| {1e3 * row['dry_compute_s_per_sample']:.1f} "
            f"| {1e3 * row['simulated_s_per_sample']:.1f} ({row['bench_ratio']:.2f}) "
            f"| {100 * row['reads_beyond_tol']:.0f} % ({row['worst_read_error_tol']:.3g}) |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", nargs="+", choices=sorted(PROTOCOLS), default=["iris", "digits"])
    ap.add_argument("--samples", type=int, default=300, help="dry-run samples timed")
    ap.add_argument("--realtime-samples", type=int, default=30, help="real-time samples timed")
    ap.add_argument(
        "--full-epochs", type=int, default=1, help="epochs of the end-to-end 'aeqlab run' (journal on); 0: skip it"
    )
    ap.add_argument("--latency", type=float, default=1e-3, help="L, seconds per instrument call")
    ap.add_argument("--tau", type=float, default=1e-3, help="τ, settling time constant (s)")
    ap.add_argument(
        "--settle",
        nargs="*",
        default=[],
        help="settle policies compared with the protocol's: fixed:SECONDS, until_stable:INTERVAL, adaptive:TAU "
        "(τ·ln(Δ̂/tol) per settle, τ the bench's settling constant as the policy believes it)",
    )
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    results = []
    with threadpool_limits(limits=1, user_api="blas"):
        for ds in args.datasets:
            r = run(
                ds, args.samples, args.realtime_samples, args.latency, args.tau, [None, *args.settle], args.full_epochs
            )
            results.append(r)
            print(report(r), "\n", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print("(ran one configuration after another in this process)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
