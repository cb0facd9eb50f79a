"""Command line: ``aeqlab sweep SWEEP.yaml`` (docs/sweeps.md).

Exit codes: 0 every point completed, 1 some point failed, 2 a bad sweep file or point,
130 interrupted (everything resumable: run the same command again).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from aeqlab.cli.app import Exited, app, err, fail
from aeqlab.errors import AeqlabError


@app.command()
def sweep(
    sweep_path: Annotated[Path, typer.Argument(metavar="SWEEP", help="sweep YAML file")],
    scheduler: Annotated[
        str | None, typer.Option(help="a Dask scheduler address (default: a LocalCluster on this machine)")
    ] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="LocalCluster worker processes (default: CPUs)")] = None,
    out: Annotated[Path | None, typer.Option(help="the sweep's folder (default: runs/sweeps/<name>)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON summary as the last line")] = False,
) -> None:
    """Run a sweep: points in parallel on Dask where safe; finished points are skipped, interrupted ones resume."""
    from aeqlab.sweeps import sweep as run_sweep
    from aeqlab.sweeps.results import table

    try:
        result = run_sweep(sweep_path, scheduler=scheduler, workers=workers, out=out, progress=True, console=err)
    except AeqlabError as exc:
        fail(exc)
    err.print(table(result.dataset))
    err.print(
        f"{result.status}: results {result.netcdf}; figures {', '.join(str(f) for f in result.figures)}",
        markup=False,
    )
    if result.status == "interrupted":
        err.print(f"interrupted: every point is resumable; run 'aeqlab sweep {sweep_path}' again", markup=False)
    for p in result.points:
        if p.get("status") == "failed":
            err.print(f"failed: {p.get('label')}: {p.get('error')}", markup=False)
    if as_json:
        keep = (
            "key",
            "label",
            "status",
            "did",
            "final_test",
            "best_test",
            "samples_to_target",
            "params_sha256",
            "wall_s",
            "cpu_s",
            "run_dir",
            "error",
        )
        points = [{k: p.get(k) for k in keep} for p in result.points]
        print(
            json.dumps(
                {
                    "status": result.status,
                    "folder": str(result.path),
                    "netcdf": str(result.netcdf),
                    "figures": [str(f) for f in result.figures],
                    "points": points,
                }
            )
        )
    if result.exit_code:
        raise Exited(result.exit_code)
