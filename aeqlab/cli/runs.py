"""Command line for run folders: ``aeqlab resume``, ``report``, ``runs``, ``export``.

Registered on the shared Typer app; ``aeqlab.cli`` imports this module.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from aeqlab.cli.app import app, fail
from aeqlab.errors import AeqlabError


@app.command()
def resume(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="a run folder made by 'aeqlab run'")],
    force: Annotated[bool, typer.Option("--force", help="continue even though the protocol file changed")] = False,
    from_best: Annotated[
        bool,
        typer.Option("--from-best", help="train on from the run's best parameters (best.npz), in a new child run"),
    ] = False,
    epochs: Annotated[
        int | None, typer.Option(min=1, help="with --from-best: the child's last epoch (default: the run's)")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="with --from-best: folder for the child run (default: beside RUN_DIR)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON summary as the last line")] = False,
) -> None:
    """Continue a run from its last committed sample, on the backend it used (or, --from-best, a child run
    from its best parameters; RUN_DIR is left as it is)."""
    from aeqlab.backends import open_backend
    from aeqlab.cli.sessions import cli_session, finish_session
    from aeqlab.errors import InputError
    from aeqlab.runs import training

    try:
        if from_best:
            from aeqlab.runs.frombest import from_best as start_child

            if force:
                raise InputError("--force applies to a resume of the run itself", where="--force", hint="leave it out")
            summary = start_child(run_dir, open_backend, epochs=epochs, out=out, session=cli_session())
        else:
            if epochs is not None or out is not None:
                raise InputError(
                    "--epochs and --out apply to 'resume --from-best' only",
                    where="aeqlab resume",
                    hint="add --from-best, or leave them out",
                )
            summary = training.resume(run_dir, open_backend, force=force, session=cli_session())
    except AeqlabError as exc:
        fail(exc)
    finish_session(summary, as_json)


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="a run folder made by 'aeqlab run'")],
    out: Annotated[
        Path | None,
        typer.Option(
            "-o", "--out", help="folder for the figures (default: RUN_DIR/report, or ./RUN-report when read-only)"
        ),
    ] = None,
    gradcheck_samples: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=5,
            help="steps checked against the twin's oracle at each fidelity point (0: no fidelity figure; "
            "default 3, or 1 for a network of more than 2,000 parameters)",
        ),
    ] = None,
    fidelity_points: Annotated[
        int, typer.Option(min=0, max=20, help="parameter snapshots the fidelity figure checks, spread over the run")
    ] = 20,
    figures: Annotated[
        bool, typer.Option("--figures/--no-figures", help="--no-figures: the summary page alone, in about a second")
    ] = True,
) -> None:
    """Figures of a run (PNG) and a summary page, from its journal."""
    from aeqlab.report import make_report

    try:
        result = make_report(
            run_dir, out, gradcheck_samples=gradcheck_samples, fidelity_points=fidelity_points, figures=figures
        )
    except AeqlabError as exc:
        fail(exc)
    if result.note:
        from aeqlab.cli.app import err

        err.print(result.note, markup=False)
    for path in result.files:
        print(path)


@app.command()
def runs(
    folder: Annotated[Path, typer.Argument(metavar="DIR", help="a folder of run folders")] = Path("runs"),
    hide_failed: Annotated[
        bool, typer.Option("--hide-failed", help="leave out failed starts (runs that committed no sample)")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the table as JSON")] = False,
) -> None:
    """A table of the runs in a folder: status and reason, protocol file, seed, backend, epochs, score."""
    from rich.console import Console
    from rich.table import Table

    from aeqlab.report import list_runs

    try:
        rows = list_runs(folder, hide_failed=hide_failed)
    except AeqlabError as exc:
        fail(exc)
    if as_json:
        print(json.dumps(rows))
        return
    table = Table(title=f"runs in {folder}")
    cols = (
        "run",
        "protocol file",
        "backend",
        "seed",
        "epochs",
        "status",
        "reason",
        "samples",
        "test score",
        "duration",
    )
    for col in cols:
        table.add_column(
            col, justify="right" if col in ("seed", "epochs", "samples", "test score", "duration") else "left"
        )
    for r in rows:
        acc = r.get("test_accuracy")
        dur = r.get("duration_s")
        metric = "R²" if r.get("metric") == "R²" else "acc"
        table.add_row(
            r["run"],
            str(r.get("protocol_file") or r.get("protocol", "-")),
            r.get("backend", "-"),
            str(r.get("seed", "-")),
            str(r.get("epochs", "-")),
            r["status"],
            r.get("reason") or "-",
            f"{r.get('samples', '-')}/{r.get('planned', '-')}",
            "-" if acc is None else f"{metric} {acc:.3f}",
            "-" if dur is None else f"{dur:.0f} s",
        )
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    console.print(table)


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="a run folder made by 'aeqlab run'")],
    out: Annotated[
        Path | None,
        typer.Option("-o", "--out", help="folder for the files (default: RUN_DIR, or ./RUN-export when read-only)"),
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="csv (samples, epochs, sessions) or netcdf (one xarray Dataset)")
    ] = "csv",
) -> None:
    """Write the journal as CSV files, or as one NetCDF file (the run's xarray Dataset)."""
    from aeqlab.cli.app import err
    from aeqlab.errors import InputError
    from aeqlab.report import export_csv
    from aeqlab.runs.run import Run, writable_folder

    try:
        if fmt not in ("csv", "netcdf"):
            raise InputError(f"unknown format {fmt!r}", where="--format", hint="use csv or netcdf")
        run = Run(run_dir)
        folder, note = writable_folder(run.path, out)
        if note:
            err.print(note, markup=False)
        files = export_csv(run_dir, folder) if fmt == "csv" else [run.export_netcdf(folder / "run.nc")]
    except AeqlabError as exc:
        fail(exc)
    for path in files:
        print(path)
