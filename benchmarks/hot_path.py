"""The dry run's hot path: CPU per training sample, and the Python overhead per bench call.

Trains a protocol on the twin in this process (BLAS limited to one thread), journal on,
first ``--warmup`` samples (compiling and filling caches), then ``--samples`` more, timed.
Over the timed samples it counts

* the process CPU time (``time.process_time``),
* the CPU time spent inside the twin's relaxations (the physics itself),
* the bench messages (every Set, Read, Settle, Switch and Setpoints a plan sends),

and prints CPU per sample, its split, and the overhead per bench call:

    (process CPU − CPU inside the relaxations) / bench messages

which is everything the procedure, the instruments, the guards and the journal cost on
top of the physics, spread over the messages that caused it.

Usage::

    python benchmarks/hot_path.py [--protocol protocols/digits_hopfield_sim.yaml] [--samples 600]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from threadpoolctl import threadpool_limits

import aeqlab
from aeqlab.engine.bench import Bench

ROOT = Path(__file__).resolve().parents[1]


class Meter:
    """Counts bench messages and times the twin's relaxations (wrapping both, restored on exit)."""

    def __init__(self):
        self.messages = 0
        self.relax_cpu = 0.0
        self.relaxations = 0
        self.on = False

    def wrap_bench(self):
        original = Bench.apply
        meter = self

        def apply(bench, msg):
            if meter.on:
                meter.messages += 1
            return original(bench, msg)

        Bench.apply = apply
        return lambda: setattr(Bench, "apply", original)

    def wrap_net(self, net):
        original = net.relax
        meter = self

        def relax(*args, **kwargs):
            if not meter.on:
                return original(*args, **kwargs)
            t0 = time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                meter.relax_cpu += time.process_time() - t0
                meter.relaxations += 1

        net.relax = relax


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--protocol", type=Path, default=ROOT / "protocols" / "digits_hopfield_sim.yaml")
    ap.add_argument("--samples", type=int, default=600)
    ap.add_argument("--warmup", type=int, default=100)
    args = ap.parse_args()

    protocol = aeqlab.load_protocol(args.protocol)
    meter = Meter()
    restore = meter.wrap_bench()
    seen = {"samples": 0}
    t = {}

    def callback(event):
        if event.kind != "sample":
            return
        seen["samples"] += 1
        if seen["samples"] == args.warmup:
            t["cpu0"], t["wall0"] = time.process_time(), time.perf_counter()
            meter.on = True
        elif seen["samples"] == args.warmup + args.samples:
            t["cpu1"], t["wall1"] = time.process_time(), time.perf_counter()
            meter.on = False
            event.request_stop()

    try:
        with threadpool_limits(limits=1, user_api="blas"), tempfile.TemporaryDirectory() as out:
            with aeqlab.open_bench(protocol, backend="sim") as bench:
                meter.wrap_net(bench.twin.net)
                aeqlab.train(protocol, bench, out=out, callbacks=[callback], epochs=1000)
    finally:
        restore()
    if "cpu1" not in t:
        raise SystemExit(f"the run ended before {args.warmup + args.samples} samples: ask for fewer")
    n = args.samples
    cpu = t["cpu1"] - t["cpu0"]
    rest = cpu - meter.relax_cpu
    print(f"{args.protocol.name}: {n} training samples timed after {args.warmup} (evaluations inside them included)")
    wall = t["wall1"] - t["wall0"]
    print(f"  process CPU per sample       {1e3 * cpu / n:7.3f} ms   (wall {1e3 * wall / n:.3f} ms)")
    print(f"  inside the relaxations       {1e3 * meter.relax_cpu / n:7.3f} ms   ({meter.relaxations / n:.1f} /sample)")
    print(f"  everything else              {1e3 * rest / n:7.3f} ms")
    print(f"  bench messages per sample    {meter.messages / n:7.1f}")
    print(f"  overhead per bench call      {1e6 * rest / max(meter.messages, 1):7.1f} µs   (target <= 15 µs)")


if __name__ == "__main__":
    main()
