"""``aeqlab advise``: ε and β for a new network, from the stability ratio and probe runs on the twin."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from aeqlab.cli.app import app, err, fail
from aeqlab.errors import AeqlabError

TRADE_OFF = """\
[bold]The trade-off[/bold]
  Each sample moves θ by about ε·β times the loss gradient: ε (the coupling of each parameter
  to its knob) and β (the nudging strength) set the learning rate together.
  [bold]ε[/bold] sets the stability ratio rho: floating parameters feed back on the states, and the joint
  equilibrium is a minimum only while rho < 1. rho is proportional to ε and grows as the weights
  grow; past 1 the clamped phase jumps to a distant state and the step is garbage. On a bench ε is
  the device's; on the twin the protocol sets it.
  [bold]β[/bold] sets the nudge: a larger β is a larger signal above the readback noise and a faster step,
  but a larger gradient error (centered: of order β²), a larger nudge current, and with tracking
  nudging a softer homeostatic phase.
  So: the largest ε that keeps rho well below 1 for the whole schedule, then the β that learns best
  on a validation split (never the test set). The recommended protocol also keeps its best
  parameters by that split and rolls back if rho still reaches the threshold."""


def _fmt(v: float, spec: str = ".3f") -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


@app.command()
def advise(
    protocol_file: Annotated[Path, typer.Argument(metavar="PROTOCOL", help="a protocol YAML file with a twin")],
    target_rho: Annotated[
        float, typer.Option("--target-rho", min=0.01, max=0.99, help="the stability ratio to start at")
    ] = 0.5,
    probe_epochs: Annotated[int, typer.Option("--probe-epochs", min=1, help="epochs each probe trains")] = 2,
    write: Annotated[
        Path | None, typer.Option("--write", metavar="FILE", help="write the protocol with the recommendation")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the advice as JSON on stdout")] = False,
) -> None:
    """Recommend the couplings ε and the nudging β for a protocol's network.

    Reads the stability ratio rho at the start, probes candidate (ε, β) pairs with short
    runs on the twin (a validation split of the training data, never the test set), and
    explains the choice. The protocol file is only read; --write saves a copy with the
    recommendation (comments kept).
    """
    try:
        _advise(protocol_file, target_rho, probe_epochs, write, as_json)
    except AeqlabError as exc:
        fail(exc)


def _advise(protocol_file: Path, target_rho: float, probe_epochs: int, write: Path | None, as_json: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    from aeqlab.api import load_protocol
    from aeqlab.tools.advise import advise as _run
    from aeqlab.tools.advise import write_protocol

    protocol = load_protocol(protocol_file)

    def progress(i: int, n: int, c) -> None:
        verdict = "ok" if c.accepted else c.why
        err.print(f"probe {i}/{n}: epsilon x{c.scale:.3g}, beta {c.beta:g}: {escape(verdict)}", highlight=False)

    advice = _run(protocol, target_rho=target_rho, probe_epochs=probe_epochs, progress=progress)
    written = write_protocol(protocol, advice, write) if write is not None and advice.chosen else None
    if as_json:
        out = advice.as_dict()
        out["written"] = str(written) if written else None
        typer.echo(json.dumps(out, indent=2, default=float))
        if advice.chosen is None:
            raise typer.Exit(1)
        return
    console = Console(highlight=False, soft_wrap=True)
    metric = "val R²" if advice.task == "regression" else "val acc"
    console.print(
        f"[bold]{escape(advice.protocol)}[/bold]: rho at the start with the protocol's epsilon "
        f"{advice.rho_protocol:.3f}; target {advice.target_rho:g}; threshold {advice.threshold:g}; "
        f"probes of {advice.probe_epochs} of {advice.epochs} epochs"
    )
    table = Table(show_edge=False, pad_edge=False, caption="rho: start, after the probe, projected to the end")
    for col in ("eps x", "beta", "rho0", "rho", "rho end", metric, "val loss", "homeo", ""):
        table.add_column(col, justify="left" if not col else "right", no_wrap=True)
    for c in advice.candidates:
        mark = "[green]recommended[/green]" if c is advice.chosen else escape(c.verdict)
        table.add_row(
            f"{c.scale:.3g}",
            f"{c.beta:g}",
            _fmt(c.rho_start, ".2f"),
            _fmt(c.rho_end, ".2f"),
            _fmt(c.rho_projected, ".2f"),
            _fmt(c.validation_accuracy),
            _fmt(c.validation_loss, ".4f"),
            _fmt(c.homeostasis_iterations, ".1f"),
            mark,
        )
    console.print(table)
    if advice.chosen is None:
        err.print(
            "error: advise: no candidate trained stably; lower --target-rho, or start from smaller weights "
            "(simulation.init.gains)",
            markup=False,
        )
        raise typer.Exit(1)
    console.print("[bold]Recommended[/bold] (set these in the protocol):")
    for path, value in advice.settings.items():
        console.print(f"  {path}: {json.dumps(value)}", markup=False)
    if written:
        console.print(f"written: {written}", markup=False)
    console.print(TRADE_OFF)
