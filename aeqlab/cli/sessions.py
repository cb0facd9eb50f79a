"""How the command line shows a training session: the live view while it runs, one line when it ends."""

from __future__ import annotations

import json
from typing import Any

from aeqlab.cli.app import Exited, err


def cli_session():
    """The command line's session: the live view and its notes on stderr, Ctrl-C deferred."""
    from aeqlab.runs.progress import LiveView
    from aeqlab.runs.training import Session

    return Session([LiveView(err)], notify=lambda msg: err.print(msg, markup=False))


def finish_session(summary: dict[str, Any], as_json: bool) -> None:
    """Report how a training session ended and exit with its code (0, 1 on a fault, 130 interrupted)."""
    from aeqlab.runs.summary import exit_code

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
        raise Exited(code)


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
        "samples kept with a nudge source at its compliance limit (journal: samples.compliance_tripped)": summary.get(
            "compliance_tripped_samples", 0
        ),
        "jumps of the twin from unstable states (twin statistics, in the summary)": summary.get(
            "twin_unstable_jumps", 0
        ),
    }
    for what, count in flagged.items():
        if count:
            err.print(f"[yellow]note:[/yellow] {count} {what}; aeqlab report {summary['run_dir']} shows where")
