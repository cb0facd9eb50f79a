"""Sweeps: many runs of one protocol over its fields and seeds, on Dask (docs/sweeps.md).

>>> import aeqlab
>>> result = aeqlab.sweep("protocols/sweeps/iris_beta_eps.yaml")          # doctest: +SKIP
>>> result.dataset.final_test.mean("seed")                                 # doctest: +SKIP

Modules: :mod:`~aeqlab.sweeps.model` (the file and its schema), :mod:`~aeqlab.sweeps.loader`
(file:line:col errors), :mod:`~aeqlab.sweeps.points` (the grid or draw, keys),
:mod:`~aeqlab.sweeps.worker` (one point: start, resume, skip), :mod:`~aeqlab.sweeps.runner`
(Dask, the plan, Ctrl-C), :mod:`~aeqlab.sweeps.results` and :mod:`~aeqlab.sweeps.progress`.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class SweepResult:
    """A sweep's outcome: ``status`` (completed, interrupted, failed), its folder, results and files."""

    status: str
    path: Path
    dataset: Any  # xarray.Dataset
    points: list[dict[str, Any]]
    netcdf: Path | None = None
    figures: list[Path] = field(default_factory=list)
    dashboard: str | None = None

    @property
    def exit_code(self) -> int:
        return {"completed": 0, "interrupted": 130}.get(self.status, 1)


def sweep(
    sweep_file: str | Path,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    out: str | Path | None = None,
    stop: threading.Event | None = None,
    progress: bool = False,
    console: Any | None = None,
) -> SweepResult:
    """Run a sweep file: every point not yet finished, in parallel where that is safe.

    Parameters
    ----------
    sweep_file
        The sweep file (YAML; ``docs/sweeps.md``).
    scheduler
        A Dask scheduler address; default: the file's, else a LocalCluster on 127.0.0.1.
    workers
        LocalCluster worker processes (default: the file's, else the CPU count).
    out
        The sweep's folder (default: the file's ``out``, else ``runs/sweeps/<name>``).
    stop
        Set it (from any thread) to stop every running point after its sample in flight.
    progress
        Print the plan, a line per point and the live progress on stderr (or ``console``).

    Returns
    -------
    SweepResult
        Also written to the folder: ``results.nc``, ``figures/*.png``, ``sweep.json``.

    Raises
    ------
    aeqlab.InputError
        A bad sweep file or any bad point (one line per problem), before anything runs.
    """
    from aeqlab.sweeps import results as res
    from aeqlab.sweeps.loader import load_sweep
    from aeqlab.sweeps.points import expand
    from aeqlab.sweeps.progress import Progress
    from aeqlab.sweeps.runner import in_worker_bootstrap, run, sweep_folder

    if in_worker_bootstrap():  # a worker importing a script without its `__main__` guard: the parent says why
        raise SystemExit(1)
    loaded = load_sweep(sweep_file)
    points = expand(loaded)
    folder = sweep_folder(loaded, out)
    if progress and console is None:
        from rich.console import Console

        console = Console(stderr=True, highlight=False, soft_wrap=True)
    shown = console if progress else None
    say = (lambda line: shown.print(line, markup=False, highlight=False)) if shown else (lambda _: None)
    outcome = run(
        loaded,
        points,
        folder,
        scheduler=scheduler,
        workers=workers or loaded.spec.workers,
        stop=stop,
        say=say,
        progress=Progress(shown),
    )
    ds = res.to_dataset(loaded, points, outcome.results)
    netcdf = res.save_netcdf(ds, folder / "results.nc")
    figures = res.figures(ds, folder / "figures")
    (folder / "sweep.json").write_text(
        json.dumps({"status": outcome.status, "points": outcome.results}, indent=1, default=str) + "\n",
        encoding="utf-8",
    )
    return SweepResult(outcome.status, folder, ds, outcome.results, netcdf, figures, outcome.dashboard)
