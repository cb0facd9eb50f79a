"""Command line: ``aeqlab run``, ``aeqlab gradcheck``.

The CLI is the composition root: it alone wires simulated backends in. Errors are
one line on stderr; exit codes are 2 for bad input, 1 for a runtime failure, 130
when interrupted.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console

from aeqlab.errors import AeqlabError, InputError, ProtocolError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Train physical systems on a lab bench with Agnostic Equilibrium Propagation.",
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(exc: AeqlabError) -> None:
    for line in exc.one_line().splitlines() if "\n" not in exc.message else exc.message.splitlines():
        err.print(f"[red]error:[/red] {line}", soft_wrap=True)
    raise typer.Exit(exc.exit_code)


def _load(path: Path):
    from aeqlab.protocol import load_protocol

    return load_protocol(path)


def _select_backend(protocol, sim: bool, bench: bool) -> str:
    if sim and bench:
        raise InputError("--sim and --bench exclude each other", where="command line")
    if bench:
        raise InputError(
            "no driver for a real bench is available in this version",
            where="--bench",
            hint="use --sim for a dry run on the protocol's twin",
        )
    if not sim and not protocol.is_simulated_only():
        raise InputError(
            "this protocol names real instruments; they are never driven unless you say so",
            where="command line",
            hint="add --sim for a dry run on the twin, or --bench to drive them",
        )
    return "sim"


@app.command()
def run(
    protocol_path: Annotated[Path, typer.Argument(metavar="PROTOCOL", help="protocol YAML file")],
    sim: Annotated[bool, typer.Option("--sim", help="dry run on the protocol's twin")] = False,
    bench: Annotated[bool, typer.Option("--bench", help="drive the real instruments the protocol names")] = False,
    epochs: Annotated[int | None, typer.Option(min=1, help="override schedule.epochs")] = None,
    seed: Annotated[int | None, typer.Option(help="override the protocol's seed (training order)")] = None,
    out: Annotated[Path | None, typer.Option(help="folder for run folders (default: output.dir)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON summary as the last line")] = False,
) -> None:
    """Train: every sample is an Aeqprop cycle through the bench's instruments."""
    try:
        _run(protocol_path, sim, bench, epochs, seed, out, as_json)
    except AeqlabError as exc:
        _fail(exc)


def _run(protocol_path, sim, bench, epochs, seed, out, as_json) -> None:
    from aeqlab.compose import build_sim_bench, stability_preflight
    from aeqlab.datasets import load
    from aeqlab.engine import Trainer
    from aeqlab.progress import Progress
    from aeqlab.store import RunStore, params_sha256, versions

    protocol, text = _load(protocol_path)
    _select_backend(protocol, sim, bench)
    n_epochs = epochs or protocol.schedule.epochs
    run_seed = protocol.seed if seed is None else seed
    data = load(protocol.dataset)
    sb = build_sim_bench(protocol)
    rho = stability_preflight(sb.twin, data.x_train)
    if rho >= 1.0:
        spec = protocol.simulation.epsilon
        raise ProtocolError(
            f"the twin is unstable at its starting parameters: stability ratio rho = {rho:.2f} >= 1 "
            f"with epsilon weights {spec.weights}, biases {spec.biases}",
            where=f"{protocol_path}: simulation.epsilon",
            hint=f"scale every epsilon by {0.6 / rho:.2g} or less",
        )
    store = RunStore(out or protocol.output.dir, protocol.name)
    protocol_hash = store.write_protocol(text)
    started = time.time()
    store.write_json(
        "run.json",
        {
            "protocol": str(protocol_path),
            "protocol_sha256": protocol_hash,
            "backend": "sim",
            "seed": run_seed,
            "epochs": n_epochs,
            "versions": versions(),
            "instruments": sb.bench.identities(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "preflight_rho": rho,
        },
    )
    progress = Progress(err, n_epochs, len(data.y_train), quiet=False)
    trainer = Trainer(
        protocol,
        sb.bench,
        data,
        on_sample=progress.sample,
        on_epoch=lambda m: (progress.epoch(m), store.append_metrics(m.as_dict())),
    )
    status = "failed"
    t0 = time.perf_counter()
    summary: dict = {"run_dir": str(store.path)}
    try:
        with progress:
            initial, history = trainer.run(n_epochs, run_seed)
        status = "completed"
    except KeyboardInterrupt:
        status = "interrupted"
        err.print(f"interrupted: sources are in their safe state; partial results in {store.path}")
        raise typer.Exit(130) from None
    finally:
        wall = time.perf_counter() - t0
        if trainer.state is not None:
            store.write_params(trainer.state.targets)
        summary.update({"status": status, "wall_s": round(wall, 3)})
        if status != "completed":
            store.write_json("summary.json", summary)
    last = history[-1]
    samples = trainer.samples_done
    summary.update(
        {
            "protocol": protocol.name,
            "backend": "sim",
            "epochs": n_epochs,
            "samples": samples,
            "seed": run_seed,
            "initial_test_accuracy": initial.accuracy,
            "initial_test_loss": initial.loss,
            "train_accuracy": last.train_accuracy,
            "test_accuracy": last.test_accuracy,
            "test_loss": last.test_loss,
            "best_test_accuracy": max(m.test_accuracy for m in history),
            "params_sha256": params_sha256(trainer.state.targets),
            "samples_per_s": round(samples / wall, 2) if wall > 0 else None,
            "homeostasis_iterations_mean": float(np.mean([m.homeostasis_iterations for m in history])),
            "homeostasis_unconverged": int(sum(m.homeostasis_unconverged for m in history)),
            "knob_saturations": int(sum(m.saturated for m in history)),
            "round_trips_per_sample": {k: round(v / max(samples, 1), 2) for k, v in sb.bench.round_trips.items()},
            "twin_relaxations": sb.twin.stats.relaxations,
            "twin_jumps": len(sb.twin.stats.jumps),
        }
    )
    store.write_json("summary.json", summary)
    err.print(
        f"done: test accuracy {initial.accuracy:.3f} -> {last.test_accuracy:.3f}, "
        f"{samples} samples in {wall:.1f} s; run folder {store.path}"
    )
    if as_json:
        print(json.dumps(summary))


@app.command()
def gradcheck(
    protocol_path: Annotated[Path, typer.Argument(metavar="PROTOCOL", help="protocol YAML file (needs a twin)")],
    beta: Annotated[float, typer.Option(help="nudging strength")] = 1e-3,
    variant: Annotated[str | None, typer.Option(help="centered | optimistic | pessimistic")] = None,
    nudging: Annotated[str | None, typer.Option(help="tracking | linearized")] = None,
    samples: Annotated[int, typer.Option(min=1, help="how many steps to check")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON summary as the last line")] = False,
) -> None:
    """Check real Aeqprop steps taken through the twin's instruments against the exact oracle."""
    try:
        _gradcheck(protocol_path, beta, variant, nudging, samples, as_json)
    except AeqlabError as exc:
        _fail(exc)


def _gradcheck(protocol_path, beta, variant, nudging, samples, as_json) -> None:
    from aeqlab.gradcheck import gradcheck as check

    if not (math.isfinite(beta) and beta > 0):
        raise InputError(f"beta must be a positive number, got {beta}", where="--beta")
    if variant is not None and variant not in ("centered", "optimistic", "pessimistic"):
        raise InputError(
            f"unknown variant {variant!r}", where="--variant", hint="use centered, optimistic or pessimistic"
        )
    if nudging is not None and nudging not in ("tracking", "linearized"):
        raise InputError(f"unknown nudging {nudging!r}", where="--nudging", hint="use tracking or linearized")
    protocol, _ = _load(protocol_path)
    if protocol.simulation is None:
        raise ProtocolError("gradcheck needs the protocol's twin ('simulation:' section)", where=str(protocol_path))
    if variant in ("centered", "pessimistic") or (variant is None and protocol.method.variant != "optimistic"):
        b1 = -beta / 2 if (variant or protocol.method.variant) == "centered" else -beta
        if (nudging or protocol.method.nudging) == "tracking" and b1 <= -1:
            raise InputError(f"tracking nudging is singular at beta1 = {b1:g} <= -1", where="--beta")
    results = check(protocol, beta=beta, variant=variant, nudging=nudging, samples=samples)
    from rich.table import Table

    table = Table(
        title=f"gradcheck: beta={beta:g}, {variant or protocol.method.variant}, {nudging or protocol.method.nudging}"
    )
    for col in ("sample", "relative error", "cosine", "cosine to gradient", "|step|", "instrument calls"):
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(
            str(r.index),
            f"{r.relative_error:.3e}",
            f"{r.cosine:.8f}",
            f"{r.cosine_to_gradient:.6f}",
            f"{r.step_norm:.3e}",
            str(r.instrument_calls),
        )
    err.print(table)
    summary = {
        "status": "completed",
        "beta": beta,
        "variant": variant or protocol.method.variant,
        "nudging": nudging or protocol.method.nudging,
        "samples": len(results),
        "relative_error": max(r.relative_error for r in results),
        "cosine": min(r.cosine for r in results),
        "cosine_to_gradient": min(r.cosine_to_gradient for r in results),
        "per_sample": [r.__dict__ for r in results],
    }
    if as_json:
        print(json.dumps(summary))


def main() -> None:
    """Entry point: one-line errors, never a traceback (set AEQLAB_DEBUG=1 to see one)."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except AeqlabError as exc:  # raised outside a command body
        err.print(f"error: {exc.one_line()}")
        sys.exit(exc.exit_code)
    except Exception as exc:  # noqa: BLE001 - the last line of defence against tracebacks
        if os.environ.get("AEQLAB_DEBUG"):
            raise
        err.print(f"internal error: {exc.__class__.__name__}: {exc} (rerun with AEQLAB_DEBUG=1 for details)")
        sys.exit(1)


if __name__ == "__main__":
    main()
