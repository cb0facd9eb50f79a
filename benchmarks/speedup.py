"""Speed against an earlier commit: training samples/s of one protocol, two code versions side by side.

The earlier commit is exported with ``git archive`` into a temporary directory; both
versions then train the *same* protocol file on the twin, in fresh interpreters run in
turn (A B A B ...), BLAS limited to one thread as ``aeqlab`` does. Each run trains
``--warmup`` samples, then times ``--samples`` more (the same training order in both).
Prints every run, the median samples/s of each version and their ratio.

Usage::

    python benchmarks/speedup.py                                   # digits vs d81b16a
    python benchmarks/speedup.py --baseline d81b16a --protocol protocols/digits_hopfield_sim.yaml \\
        --samples 300 --rounds 3

The default baseline, d81b16a, is the commit before the first change of the benchmark
work (the engine, twin and drivers as they were when the benchmarks were first asked for).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
from threadpoolctl import threadpool_limits
threadpool_limits(1)
import aeqlab
from aeqlab.backends import open_backend
from aeqlab.datasets import load
try:  # the layout since the run engine
    from aeqlab.engine.methods.aeqprop import train_sample
    from aeqlab.engine.plan import execute
    from aeqlab.engine.trainer import Trainer
except ImportError:  # the flat layout of earlier commits
    from aeqlab.engine import Trainer
    from aeqlab.methods.aeqprop import train_sample
    from aeqlab.plan import execute
from aeqlab.protocol import load_protocol
assert aeqlab.__file__.startswith(sys.argv[1]), aeqlab.__file__
protocol, _ = load_protocol(sys.argv[2])
warmup, n = int(sys.argv[3]), int(sys.argv[4])
data = load(protocol.dataset)
backend = open_backend(protocol, "sim")
trainer = Trainer(protocol, backend.bench, data)
trainer.start()
targets = data.targets(data.y_train)
order = np.resize(np.random.default_rng(protocol.seed).permutation(len(targets)), warmup + n)
m = protocol.method
for i in order[:warmup]:
    execute(train_sample(trainer.state, data.x_train[i], targets[i], m, m.beta), backend.bench)
t0 = time.perf_counter()
for i in order[warmup:]:
    execute(train_sample(trainer.state, data.x_train[i], targets[i], m, m.beta), backend.bench)
wall = time.perf_counter() - t0
print(json.dumps({"samples_per_s": n / wall, "wall_s": wall}))
"""


def export(commit: str, dest: Path) -> Path:
    """The tree of ``commit`` (its Python packages) in ``dest``."""
    archive = dest / "tree.tar"
    with archive.open("wb") as fh:
        subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", commit], stdout=fh, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(dest / "tree", filter="data")
    return dest / "tree"


def time_once(tree: Path, protocol: Path, warmup: int, samples: int) -> float:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(tree), str(protocol), str(warmup), str(samples)],
        capture_output=True, text=True, env=env, cwd=tree,
    )
    if out.returncode != 0:
        raise SystemExit(f"speedup: the run on {tree} failed: {out.stderr.strip().splitlines()[-1:]}")
    return float(json.loads(out.stdout.strip().splitlines()[-1])["samples_per_s"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", default="d81b16a", help="the earlier commit (default: d81b16a)")
    ap.add_argument("--protocol", type=Path, default=ROOT / "protocols/digits_hopfield_sim.yaml")
    ap.add_argument("--samples", type=int, default=300, help="samples timed per run")
    ap.add_argument("--warmup", type=int, default=20, help="samples trained before timing")
    ap.add_argument("--rounds", type=int, default=3, help="runs of each version, alternated")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    protocol = args.protocol.resolve()
    with tempfile.TemporaryDirectory(prefix="aeqlab-speedup-") as tmp:
        base = export(args.baseline, Path(tmp))
        trees = {"baseline": base, "now": ROOT}
        runs: dict[str, list[float]] = {"baseline": [], "now": []}
        for r in range(args.rounds):
            for name, tree in trees.items():
                sps = time_once(tree, protocol, args.warmup, args.samples)
                runs[name].append(sps)
                print(f"round {r + 1}: {name:8s} {sps:7.1f} samples/s", flush=True)
    med = {k: statistics.median(v) for k, v in runs.items()}
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    now = head.stdout.strip() + (" (with uncommitted changes)" if dirty else "")
    print(f"\nprotocol {args.protocol}: {args.samples} samples timed after {args.warmup}, {args.rounds} rounds")
    print(f"  {args.baseline}: median {med['baseline']:.1f} samples/s")
    print(f"  {now}: median {med['now']:.1f} samples/s")
    print(f"  ratio now / {args.baseline}: {med['now'] / med['baseline']:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"baseline": args.baseline, "now": now, "runs": runs, "median": med}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
