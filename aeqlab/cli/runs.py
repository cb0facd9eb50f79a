"""Command line for run folders: ``aeqlab resume``, ``report``, ``runs``, ``export``.

Registered on the shared Typer app; ``aeqlab.cli`` imports this module.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from aeqlab.cli.app import app, err, fail
from aeqlab.errors import AeqlabError


def finish_session(summary: dict[str, Any], as_json: bool) -> None:
    """Report how a training session ended and exit with its code (0, 1 on a fault, 130 interrupted)."""
    from aeqlab.runs.training import exit_code

    code = exit_code(summary)
    if code == 0:
        _done(summary)
    if code:
        what = "interrupted" if summary["status"] == "interrupted" else "error"
        safe = summary.get("safe_state", "unknown")
        safe_txt = "every source is in its safe state" if safe == "safe" else f"safe state: {safe}"
        err.print(
            f"[red]{what}:[/red] {summary.get('error', '')}; {safe_txt}; "
            f"{summary['samples']} samples are committed; "
            + (f"resume with: {summary['resume']}" if summary["resume"].startswith("aeqlab") else summary["resume"]),
            markup=True,
            soft_wrap=True,
        )
    if as_json:
        print(json.dumps(summary))
    if code:
        raise typer.Exit(code)


def _done(summary: dict[str, Any]) -> None:
    """The closing lines of a completed session: the result, and the run's flags with where to see them."""
    regression = "test_r2" in summary
    metric = "R²" if regression else "accuracy"
    if "test_accuracy" in summary:
        err.print(
            f"done: test {metric} {summary.get('initial_test_accuracy', float('nan')):.3f} -> "
            f"{summary['test_accuracy']:.3f}, {summary['samples']} samples in {summary['wall_s']:.1f} s; "
            f"run folder {summary['run_dir']}",
            markup=False,
        )
    flagged = {
        "samples whose homeostasis did not reach its tolerance (journal: samples.converged)": summary.get(
            "homeostasis_unconverged", 0
        ),
        "samples with a knob held at its limit (journal: samples.saturated)": summary.get("knob_saturations", 0),
        "jumps of the twin from unstable states (twin statistics, in the summary)": summary.get(
            "twin_unstable_jumps", 0
        ),
    }
    for what, count in flagged.items():
        if count:
            err.print(f"[yellow]note:[/yellow] {count} {what}; aeqlab report {summary['run_dir']} shows where")


@app.command()
def resume(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="a run folder made by 'aeqlab run'")],
    force: Annotated[bool, typer.Option("--force", help="continue even though the protocol file changed")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON summary as the last line")] = False,
) -> None:
    """Continue a run from its last committed sample, on the backend it used."""
    from aeqlab.backends import open_backend
    from aeqlab.cli.train import cli_session
    from aeqlab.runs import training

    try:
        summary = training.resume(run_dir, open_backend, force=force, session=cli_session())
    except AeqlabError as exc:
        fail(exc)
    finish_session(summary, as_json)


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="a run folder made by 'aeqlab run'")],
    out: Annotated[
        Path | None, typer.Option("-o", "--out", help="folder for the figures (default: RUN_DIR/report)")
    ] = None,
    gradcheck_samples: Annotated[
        int, typer.Option(min=0, help="steps checked against the twin's oracle for the fidelity figure (0: none)")
    ] = 3,
) -> None:
    """Figures of a run (PNG) and a summary page, from its journal."""
    from aeqlab.report import make_report

    try:
        result = make_report(run_dir, out, gradcheck_samples=gradcheck_samples)
    except AeqlabError as exc:
        fail(exc)
    for path in result.files:
        print(path)


@app.command()
def runs(
    folder: Annotated[Path, typer.Argument(metavar="DIR", help="a folder of run folders")] = Path("runs"),
    as_json: Annotated[bool, typer.Option("--json", help="print the table as JSON")] = False,
) -> None:
    """A table of the runs in a folder: status, accuracy, samples and duration."""
    from rich.console import Console
    from rich.table import Table

    from aeqlab.report import list_runs

    try:
        rows = list_runs(folder)
    except AeqlabError as exc:
        fail(exc)
    if as_json:
        print(json.dumps(rows))
        return
    table = Table(title=f"runs in {folder}")
    for col in ("run", "protocol", "backend", "status", "samples", "test acc", "duration", "started"):
        table.add_column(col, justify="right" if col in ("samples", "test acc", "duration") else "left")
    for r in rows:
        acc = r.get("test_accuracy")
        dur = r.get("duration_s")
        table.add_row(
            r["run"],
            r.get("protocol", "-"),
            r.get("backend", "-"),
            r["status"],
            str(r.get("samples", "-")),
            "-" if acc is None else f"{acc:.3f}",
            "-" if dur is None else f"{dur:.0f} s",
            r.get("started", "-"),
        )
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    console.print(table)


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="a run folder made by 'aeqlab run'")],
    out: Annotated[Path | None, typer.Option("-o", "--out", help="folder for the CSV files (default: RUN_DIR)")] = None,
) -> None:
    """Write the journal's samples, epochs and sessions as CSV files."""
    from aeqlab.report import export_csv

    try:
        files = export_csv(run_dir, out)
    except AeqlabError as exc:
        fail(exc)
    for path in files:
        print(path)
