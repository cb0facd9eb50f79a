"""Wall time of the journal per training sample, with a twin's sparse full checkpoints and with one per sample.

    python benchmarks/journal_cost.py [--protocol protocols/digits_hopfield_sim.yaml] [--samples 300]

Runs the protocol's first samples twice on its twin, journaled: as aeqlab does (the full
checkpoint with every 64th sample, the rest replayed on resume) and with the full
checkpoint in every sample's transaction (as on a bench), and prints the journal's wall
time per sample (inside ``Journal.record_sample``) for both and their ratio.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from threadpoolctl import threadpool_limits

import aeqlab
from aeqlab.journal import Journal
from aeqlab.runs import training


def measure(protocol, samples: int, full_every: int) -> tuple[float, float]:
    spent = [0.0, 0]
    real = Journal.record_sample

    def timed(self, *a, **k):
        t0 = time.perf_counter()
        try:
            return real(self, *a, **k)
        finally:
            spent[0] += time.perf_counter() - t0
            spent[1] += 1

    Journal.record_sample = timed
    saved = training.FULL_CHECKPOINT_EVERY
    training.FULL_CHECKPOINT_EVERY = full_every
    try:
        with tempfile.TemporaryDirectory() as out, aeqlab.open_bench(protocol) as bench:
            t0 = time.perf_counter()
            aeqlab.train(
                protocol,
                bench,
                epochs=1,
                out=out,
                callbacks=[lambda e: e.kind == "sample" and e.samples_done >= samples and e.request_stop()],
            )
            wall = time.perf_counter() - t0
    finally:
        Journal.record_sample = real
        training.FULL_CHECKPOINT_EVERY = saved
    return 1e3 * spent[0] / spent[1], 1e3 * wall / spent[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--protocol", default=str(Path(__file__).resolve().parents[1] / "protocols/digits_hopfield_sim.yaml")
    )
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    protocol = aeqlab.load_protocol(args.protocol)
    sparse, full = [], []
    with threadpool_limits(1):
        for _ in range(args.rounds):  # interleaved, pair by pair
            sparse.append(measure(protocol, args.samples, training.FULL_CHECKPOINT_EVERY))
            full.append(measure(protocol, args.samples, 1))
    s = min(j for j, _ in sparse)
    f = min(j for j, _ in full)
    print(f"journal wall per sample, full checkpoint every {training.FULL_CHECKPOINT_EVERY}: {s:.3f} ms")
    print(f"journal wall per sample, full checkpoint every sample:      {f:.3f} ms")
    print(f"ratio: {f / s:.1f}x; whole sample wall (sparse): {min(w for _, w in sparse):.2f} ms")


if __name__ == "__main__":
    main()
