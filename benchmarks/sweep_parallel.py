"""A sweep on Dask against the same points trained one after another in one process.

Runs a sweep file (default ``protocols/sweeps/iris_beta_eps.yaml``: 3 β × 3 ε × 2 seeds)
twice per round, in turn:

* **sweep**: ``aeqlab.sweep`` on its default LocalCluster (one worker process per CPU,
  one thread each, BLAS threads 1), into a fresh folder;
* **loop**: every point of the same file, in the same order, by a plain ``aeqlab.train``
  in this process, BLAS limited to one thread the same way.

Prints both wall times per round, their ratio loop/sweep (the parallel speed-up; about
the worker count on a quiet machine, less what starting the cluster costs), checks that
both gave every point the same ``params_sha256``, opens the sweep's NetCDF with xarray and
names its figures.

It also measures what the machine itself allows (``--ceiling``, on by default): the first
point trained alone in a fresh process, then twice at once in two processes; the
ceiling is 2 × alone / (mean of the pair). Two processors that share caches or a
physical core give less than 2 whatever runs the points.

Usage::

    python benchmarks/sweep_parallel.py [--sweep FILE] [--rounds 1] [--out DIR]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from threadpoolctl import threadpool_limits

import aeqlab
from aeqlab.protocol import parse_protocol
from aeqlab.sweeps.loader import load_sweep
from aeqlab.sweeps.points import expand

ROOT = Path(__file__).resolve().parents[1]


def loop(sweep_file: Path, out: Path) -> tuple[float, dict[str, str]]:
    """Every point by a plain aeqlab.train, one after another: wall seconds and key -> params_sha256."""
    loaded = load_sweep(sweep_file)
    points = expand(loaded)
    found = {}
    t0 = time.perf_counter()
    with threadpool_limits(limits=1, user_api="blas"):
        for p in points:
            protocol = parse_protocol(p.text, str(loaded.protocol_path))
            with aeqlab.open_bench(protocol, backend="sim") as bench:
                run = aeqlab.train(protocol, bench, seed=p.seed, out=out)
            found[p.key] = run.summary["params_sha256"]
    return time.perf_counter() - t0, found


CHILD = """
import sys, time
from threadpoolctl import threadpool_limits
import aeqlab
from aeqlab.protocol import parse_protocol
if __name__ == "__main__":
    text, source, seed, out = sys.argv[1:5]
    protocol = parse_protocol(open(text, encoding="utf-8").read(), source)
    with threadpool_limits(limits=1, user_api="blas"):
        t = time.perf_counter()
        with aeqlab.open_bench(protocol, backend="sim") as bench:
            aeqlab.train(protocol, bench, seed=int(seed), out=out)
        print(time.perf_counter() - t)
"""


def ceiling(sweep_file: Path, base: Path) -> tuple[float, float, list[float]]:
    """The first point alone in a fresh process, then in two at once: (alone s, ceiling, pair s)."""
    loaded = load_sweep(sweep_file)
    point = expand(loaded)[0]
    text = base / "ceiling-point.yaml"
    text.write_text(point.text, encoding="utf-8")

    def start(k: int) -> subprocess.Popen:
        cmd = [sys.executable, "-c", CHILD, str(text), str(loaded.protocol_path), str(point.seed), str(base / f"c{k}")]
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)

    alone = float(start(0).communicate()[0].split()[-1])
    pair = [start(1), start(2)]
    both = [float(p.communicate()[0].split()[-1]) for p in pair]
    return alone, 2 * alone / statistics.mean(both), both


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", type=Path, default=ROOT / "protocols/sweeps/iris_beta_eps.yaml")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="keep the folders here (default: a temporary one)")
    ap.add_argument("--no-ceiling", dest="ceiling", action="store_false", help="skip the machine's ceiling")
    args = ap.parse_args()
    base = args.out or Path(tempfile.mkdtemp(prefix="sweep-parallel-"))
    base.mkdir(parents=True, exist_ok=True)
    if args.ceiling:
        alone, best, both = ceiling(args.sweep, base)
        print(
            f"machine: one point alone {alone:.1f} s; two at once {both[0]:.1f} s and {both[1]:.1f} s: "
            f"two processes give at most {best:.2f}×",
            flush=True,
        )
    ratios = []
    for r in range(args.rounds):
        t0 = time.perf_counter()
        result = aeqlab.sweep(args.sweep, out=base / f"sweep-{r}")
        t_sweep = time.perf_counter() - t0
        t_loop, reference = loop(args.sweep, base / f"loop-{r}")
        same = {p["key"]: p["params_sha256"] for p in result.points} == reference
        ratios.append(t_loop / t_sweep)
        print(
            f"round {r + 1}: sweep {t_sweep:6.1f} s ({result.status}, {len(result.points)} points)   "
            f"loop {t_loop:6.1f} s   loop/sweep {t_loop / t_sweep:.2f}×   same params_sha256: {same}",
            flush=True,
        )
    import xarray as xr

    with xr.open_dataset(result.netcdf, engine="h5netcdf") as ds:
        print(f"NetCDF {result.netcdf}: dims {dict(ds.sizes)}; final_test mean over seeds:")
        print(ds.final_test.mean("seed").to_pandas().round(3).to_string())
    print("figures: " + ", ".join(str(f) for f in result.figures))
    print(f"parallel speed-up (loop/sweep), median of {len(ratios)}: {statistics.median(ratios):.2f}×")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
