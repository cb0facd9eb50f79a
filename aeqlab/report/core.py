"""``make_report``: the PNG figures and ``summary.md`` of a run, from its journal.

A composition-level module (like the CLI): for a run on a twin it may call
:func:`aeqlab.tools.gradcheck.gradcheck` for the gradient-fidelity figure. Every figure's
data comes from the journal, and :func:`make_report` returns the arrays it plotted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aeqlab.errors import InputError
from aeqlab.report import figures
from aeqlab.report.data import read_run
from aeqlab.report.summary import summary_page
from aeqlab.runs.run import writable_folder


@dataclass
class ReportResult:
    """What :func:`make_report` wrote, and the arrays behind each figure (figure name → arrays)."""

    out: Path
    files: list[Path] = field(default_factory=list)
    data: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    note: str | None = None  # where the figures went instead, when the run folder was read-only


def make_report(run_dir: Path, out: Path | None = None, gradcheck_samples: int = 3) -> ReportResult:
    """Write the figures and the summary page of a run; return the files and the plotted arrays.

    Parameters
    ----------
    run_dir
        The run folder.
    out
        Where to write (default ``RUN_DIR/report``; ``./<run name>-report`` when the run
        folder is read-only, which :attr:`ReportResult.note` then says).
    gradcheck_samples
        Steps checked against the twin's oracle for the gradient-fidelity figure (runs
        on a twin only; 0 leaves the figure out).
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

    def save(fig, name: str) -> None:
        path = out / f"{name}.png"
        fig.savefig(path, dpi=110)
        result.files.append(path)

    for name, build in figures.FIGURES.items():
        save(build(data, run["naming"]), name)
    if header.backend == "sim" and gradcheck_samples > 0:
        fidelity = _fidelity(store.path, header.protocol_path, gradcheck_samples)
        if isinstance(fidelity, str):
            run["notes"] = [fidelity]
        else:
            data["gradient_fidelity"] = fidelity
            save(figures.gradient_fidelity(fidelity), "gradient_fidelity")
    page = out / "summary.md"
    page.write_text(summary_page(run, result.files), encoding="utf-8")
    result.files.append(page)
    return result


def _fidelity(run_dir: Path, source: str | None, samples: int) -> dict[str, np.ndarray] | str:
    """Gradient fidelity of the run's protocol on its twin (the step measured through the instruments vs the oracle).

    The protocol is loaded from the file the run started from when it is still there (its
    relative data paths resolve from it), else from the run folder's copy; a note (str) when
    neither loads.
    """
    from aeqlab.errors import AeqlabError
    from aeqlab.protocol import load_protocol
    from aeqlab.tools.gradcheck import gradcheck

    candidates = [Path(source)] if source and Path(source).is_file() else []
    candidates.append(run_dir / "protocol.yaml")
    problem = ""
    for path in candidates:
        try:
            protocol, _ = load_protocol(path)
            break
        except AeqlabError as exc:
            problem = exc.one_line()
    else:
        return f"gradient fidelity left out: the protocol does not load ({problem})"
    beta = protocol.method.beta
    results = gradcheck(protocol, beta=beta, samples=samples)
    return {
        "sample": np.array([r.index + 1 for r in results], dtype=float),
        "relative_error": np.array([r.relative_error for r in results]),
        "cosine": np.array([r.cosine for r in results]),
        "cosine_to_gradient": np.array([r.cosine_to_gradient for r in results]),
        "beta": np.full(len(results), beta),
    }
