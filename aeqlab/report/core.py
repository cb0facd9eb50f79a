"""``make_report``: the PNG figures and ``summary.md`` of a run, from its journal.

A composition-level module (like the CLI): for a run whose protocol has a twin it calls
:func:`aeqlab.tools.fidelity.over_run` (gradcheck at the journal's parameter snapshots)
for the gradient-fidelity figure. Every figure's
data comes from the journal, and :func:`make_report` returns the arrays it plotted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aeqlab.errors import InputError
from aeqlab.report import figures as builders
from aeqlab.report.data import read_run
from aeqlab.report.summary import summary_page
from aeqlab.runs.run import writable_folder

STEPS = 3  # Aeqprop steps per fidelity point by default ...
LARGE_STEPS = 1  # ... and for a network of more than LARGE_NETWORK parameters (a step costs ∝ its size)
LARGE_NETWORK = 2000


def default_steps(n_params: int) -> int:
    """Steps per fidelity point when none are asked for: fewer on a large network (digits: 1, not 3)."""
    return LARGE_STEPS if n_params > LARGE_NETWORK else STEPS


@dataclass
class ReportResult:
    """What :func:`make_report` wrote, and the arrays behind each figure (figure name → arrays)."""

    out: Path
    files: list[Path] = field(default_factory=list)
    data: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    note: str | None = None  # where the figures went instead, when the run folder was read-only


def make_report(
    run_dir: Path,
    out: Path | None = None,
    gradcheck_samples: int | None = None,
    fidelity_points: int = 20,
    figures: bool = True,
) -> ReportResult:
    """Write the figures and the summary page of a run; return the files and the plotted arrays.

    Parameters
    ----------
    run_dir
        The run folder.
    out
        Where to write (default ``RUN_DIR/report``; ``./<run name>-report`` when the run
        folder is read-only, which :attr:`ReportResult.note` then says).
    gradcheck_samples
        Aeqprop steps checked against the twin's oracle at each point of the gradient-fidelity
        figure (at most 5; 0 leaves the figure out; None: 3, or 1 on a network of more than
        2,000 parameters, see :func:`default_steps`, and the summary says so). Needs the
        protocol's twin (a ``simulation:`` section); a run on a bench is checked on its twin
        at its journaled θ*.
    fidelity_points
        Parameter snapshots the fidelity figure checks, spread over the run (at most 20).
        The work, done at report time, is at most points × steps Aeqprop cycles on the twin
        (digits, 9,610 parameters: about 1 s per cycle on a loaded 2-core machine).
    figures
        False: the summary page alone (no PNG, no fidelity check; about a second less per run).
    """
    run = read_run(Path(run_dir))
    store, header, data = run["store"], run["header"], run["data"]
    if run["n_samples"] == 0:
        raise InputError(
            "the run has no committed samples yet; there is nothing to plot",
            where=str(store.path),
            hint="resume it with 'aeqlab resume' first",
        )
    out, note = writable_folder(store.path, out, inside="report", suffix="report")
    result = ReportResult(out=out, data=data, note=note)
    notes: list[str] = []
    if gradcheck_samples is None:
        gradcheck_samples = default_steps(header.n_params)
        if gradcheck_samples != STEPS:
            notes.append(
                f"gradient fidelity: {gradcheck_samples} step per snapshot, the default for a network of more than "
                f"{LARGE_NETWORK:,} parameters (this one has {header.n_params:,}); --gradcheck-samples N checks more"
            )

    def save(fig, name: str) -> None:
        path = out / f"{name}.png"
        fig.savefig(path, dpi=110)
        result.files.append(path)

    for name, build in builders.FIGURES.items() if figures else ():
        save(build(data, run["naming"]), name)
    if figures and gradcheck_samples > 0 and fidelity_points > 0:
        fidelity = _fidelity(store.path, header, gradcheck_samples, fidelity_points)
        if isinstance(fidelity, str):
            run["notes"] = [fidelity]
        else:
            run["notes"] = notes + [f"gradient fidelity: {note}" for note in fidelity.pop("notes")]
            if header.backend != "sim":
                fidelity["on_twin_of"] = np.array([header.backend])
            data["gradient_fidelity"] = fidelity
            save(builders.gradient_fidelity(fidelity, run["naming"]), "gradient_fidelity")
    page = out / "summary.md"
    page.write_text(summary_page(run, result.files), encoding="utf-8")
    result.files.append(page)
    return result


def _fidelity(run_dir: Path, header, steps: int, points: int) -> dict[str, np.ndarray] | str:
    """Gradient fidelity over the run on the protocol's twin (see :func:`aeqlab.tools.fidelity.over_run`),
    or a note (str) saying why it cannot be computed."""
    from aeqlab.errors import AeqlabError
    from aeqlab.report.data import open_run
    from aeqlab.tools.fidelity import over_run, run_protocol, snapshots

    try:
        protocol = run_protocol(run_dir, header.protocol_path, header.n_params)
        _, journal = open_run(run_dir)
        try:
            snaps = snapshots(journal)
        finally:
            journal.close()
        if not snaps:
            return "gradient fidelity over the run: not computed, the journal holds no parameter snapshot"
        return over_run(protocol, snaps, steps=steps, points=points)
    except AeqlabError as exc:
        return f"gradient fidelity over the run: cannot be computed ({exc.one_line()})"
