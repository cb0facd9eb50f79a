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

Usage::

    python benchmarks/sweep_parallel.py [--sweep FILE] [--rounds 1] [--out DIR]
"""

from __future__ import annotations

import argparse
import statistics
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", type=Path, default=ROOT / "protocols/sweeps/iris_beta_eps.yaml")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="keep the folders here (default: a temporary one)")
    args = ap.parse_args()
    base = args.out or Path(tempfile.mkdtemp(prefix="sweep-parallel-"))
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
