"""Command line: ``aeqlab run``, ``aeqlab gradcheck``, ``aeqlab calibrate``.

The CLI is the composition root: it alone wires simulated backends in. Errors are
one line on stderr; exit codes are 2 for bad input, 1 for a runtime failure, 130
when interrupted.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from aeqlab.cli.app import app, err, fail
from aeqlab.errors import AeqlabError, InputError, ProtocolError


def _load(path: Path):
    from aeqlab.protocol import load_protocol

    return load_protocol(path)


@app.command()
def run(
    protocol_path: Annotated[Path, typer.Argument(metavar="PROTOCOL", help="protocol YAML file")],
    sim: Annotated[bool, typer.Option("--sim", help="dry run on the protocol's twin")] = False,
    emulate: Annotated[bool, typer.Option("--emulate", help="real drivers against emulated instruments")] = False,
    bench: Annotated[bool, typer.Option("--bench", help="drive the real instruments the protocol names")] = False,
    epochs: Annotated[int | None, typer.Option(min=1, help="override schedule.epochs")] = None,
    realtime: Annotated[
        bool, typer.Option("--realtime", help="on a twin, pace settling and latencies on the wall clock")
    ] = False,
    seed: Annotated[int | None, typer.Option(help="override the protocol's seed (training order)")] = None,
    out: Annotated[Path | None, typer.Option(help="folder for run folders (default: output.dir)")] = None,
    snapshot_every: Annotated[
        int | None, typer.Option(min=1, help="journal a full parameter snapshot every N samples (default: 4 per epoch)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON summary as the last line")] = False,
) -> None:
    """Train: every sample is an Aeqprop cycle through the bench's instruments, journaled as it commits."""
    from aeqlab.backends import choose_kind, open_backend
    from aeqlab.cli.sessions import cli_session, finish_session
    from aeqlab.protocol.text import attach_source
    from aeqlab.runs import training

    try:
        protocol, text = _load(protocol_path)
        attach_source(protocol, text, str(Path(protocol_path).resolve()))
        kind = choose_kind(protocol, sim=sim, emulate=emulate, bench=bench)
        backend = open_backend(protocol, kind, **({"realtime": True} if realtime else {}))
        try:
            summary = training.start(
                protocol,
                text,
                str(Path(protocol_path).resolve()),
                backend,
                epochs=epochs,
                seed=seed,
                out=out,
                snapshot_every=snapshot_every,
                session=cli_session(),
            )
        finally:
            backend.__exit__(None, None, None)  # safe again (also when training never started), then closed
    except AeqlabError as exc:
        fail(exc)
    finish_session(summary, as_json)


@app.command()
def gradcheck(
    source: Annotated[
        Path,
        typer.Argument(
            metavar="PROTOCOL|RUN_DIR",
            help="a protocol YAML file (needs a twin): check at θ₀; or a run folder: check at a journaled θ*",
        ),
    ],
    at: Annotated[
        int | None,
        typer.Option("--at", min=0, metavar="SAMPLE", help="run folder: the snapshot at or before this sample"),
    ] = None,
    epoch: Annotated[
        int | None,
        typer.Option("--epoch", min=0, help="run folder: the snapshot at the end of this epoch (0: before training)"),
    ] = None,
    beta: Annotated[float, typer.Option(help="nudging strength")] = 1e-3,
    variant: Annotated[str | None, typer.Option(help="centered | optimistic | pessimistic")] = None,
    nudging: Annotated[str | None, typer.Option(help="tracking | linearized")] = None,
    samples: Annotated[int, typer.Option(min=1, help="how many steps to check")] = 3,
    beta_scan: Annotated[
        str | None,
        typer.Option("--beta-scan", metavar="B1,B2,...", help="the same steps at each beta: the cosine's trade-off"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON summary as the last line")] = False,
) -> None:
    """Check real Aeqprop steps taken through the twin's instruments against the exact oracle.

    From a run folder the check starts at a parameter snapshot of its journal (default:
    the last one): its knobs are set and homeostasis brings the twin's θ to its θ*.
    """
    try:
        if beta_scan is not None:
            from aeqlab.cli.betascan import parse_betas, scan

            betas = parse_betas(beta_scan)
            protocol, snap = _checked(source, at, epoch, betas, variant, nudging, "--beta-scan")
            scan(protocol, snap, betas, variant, nudging, samples, as_json)
        else:
            _gradcheck(source, at, epoch, beta, variant, nudging, samples, as_json)
    except AeqlabError as exc:
        fail(exc)


def _start_from_run(run_dir: Path, at: int | None, epoch: int | None):
    """(protocol, start) for a check at a run's journaled snapshot."""
    from aeqlab.report.data import open_run
    from aeqlab.tools.fidelity import pick, run_protocol

    _, journal = open_run(run_dir)
    try:
        snap = pick(journal, at=at, epoch=epoch)
        header = journal.header()
    finally:
        journal.close()
    return run_protocol(run_dir, header.protocol_path, header.n_params), snap


def _checked(source, at, epoch, betas: list[float], variant, nudging, where: str):
    """(protocol, snapshot or None) for a gradcheck at every beta of ``betas``, each option checked first."""
    for beta in betas:
        if not (math.isfinite(beta) and beta > 0):
            raise InputError(f"beta must be a positive number, got {beta}", where=where)
    if variant is not None and variant not in ("centered", "optimistic", "pessimistic"):
        raise InputError(
            f"unknown variant {variant!r}", where="--variant", hint="use centered, optimistic or pessimistic"
        )
    if nudging is not None and nudging not in ("tracking", "linearized"):
        raise InputError(f"unknown nudging {nudging!r}", where="--nudging", hint="use tracking or linearized")
    snap = None
    if Path(source).is_dir():
        protocol, snap = _start_from_run(Path(source), at, epoch)
    else:
        if at is not None or epoch is not None:
            raise InputError(
                f"{'--at' if at is not None else '--epoch'} needs a run folder, not a protocol file",
                where=str(source),
                hint="give the run folder made by 'aeqlab run'",
            )
        protocol, _ = _load(source)
    if protocol.simulation is None:
        raise ProtocolError("gradcheck needs the protocol's twin ('simulation:' section)", where=str(source))
    if variant in ("centered", "pessimistic") or (variant is None and protocol.method.variant != "optimistic"):
        beta = max(betas)
        b1 = -beta / 2 if (variant or protocol.method.variant) == "centered" else -beta
        if (nudging or protocol.method.nudging) == "tracking" and b1 <= -1:
            raise InputError(f"tracking nudging is singular at beta1 = {b1:g} <= -1", where=where)
    return protocol, snap


def _gradcheck(source, at, epoch, beta, variant, nudging, samples, as_json) -> None:
    from aeqlab.tools.gradcheck import bench_like
    from aeqlab.tools.gradcheck import gradcheck as check

    protocol, snap = _checked(source, at, epoch, [beta], variant, nudging, "--beta")
    start = None if snap is None else snap.start()
    results = check(protocol, beta=beta, variant=variant, nudging=nudging, samples=samples, start=start)
    from rich.table import Table

    the_variant = variant or protocol.method.variant
    centered = the_variant == "centered"
    worst = max(r.relative_error for r in results)
    threshold = 1e-3
    noisy = bench_like(protocol)  # its steps carry the bench's noise: no exactness threshold applies
    verdict = "noisy" if noisy else ("pass" if worst <= threshold else "FAIL")
    mean_cosine = float(np.mean([r.cosine for r in results]))
    mean_to_gradient = float(np.mean([r.cosine_to_gradient for r in results]))
    table = Table(title=f"gradcheck: beta={beta:g}, {the_variant}, {nudging or protocol.method.nudging}")
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
    if snap is not None:
        err.print(
            f"from {source}: θ* of the snapshot at sample {snap.seq} (epoch {snap.epoch}); the twin's θ was brought "
            f"to it within {results[0].start_offset:.1e} (max|θ_h − θ*| of the first step)",
            markup=False,
        )
    if beta != protocol.method.beta:
        err.print(
            f"note: checked at beta = {beta:g} (--beta); the protocol trains at beta = {protocol.method.beta:g}",
            markup=False,
        )
    order = "O(beta^2)" if centered else "O(beta)"
    err.print(
        f"cosine to the exact step, mean over {len(results)} samples: {mean_cosine:.6f} "
        f"(to the gradient step: {mean_to_gradient:.6f})",
        markup=False,
    )
    if noisy:
        sim = protocol.simulation
        err.print(
            f"noisy: a twin with bench non-idealities (adc_noise {sim.adc_noise:g}, dac_bits {sim.dac_bits or '-'}, "
            f"drift {sim.drift:g}), its steps taken with the protocol's homeostasis and tracking as training "
            f"takes them; worst relative error {worst:.2e} (the noise's share of each step, not an exactness test)",
            markup=False,
        )
    else:
        err.print(
            f"{verdict}: worst relative error {worst:.2e} {'<=' if worst <= threshold else '>'} {threshold:g} "
            f"(the step's error against implicit differentiation shrinks as {order} for {the_variant} Aeqprop: "
            f"halving beta divides it by about {4 if centered else 2})",
            markup=False,
        )
    summary = {
        "status": "completed",
        "verdict": verdict,
        "threshold": threshold,
        "expected_order": 2 if centered else 1,
        "beta": beta,
        "protocol_beta": protocol.method.beta,
        "variant": the_variant,
        "nudging": nudging or protocol.method.nudging,
        "samples": len(results),
        "start": "theta0" if snap is None else {"sample": snap.seq, "epoch": snap.epoch, "run_dir": str(source)},
        "relative_error": worst,
        "cosine": min(r.cosine for r in results),
        "cosine_to_gradient": min(r.cosine_to_gradient for r in results),
        "mean_cosine": mean_cosine,
        "mean_cosine_to_gradient": mean_to_gradient,
        "adc_noise": protocol.simulation.adc_noise,
        "per_sample": [r.__dict__ for r in results],
    }
    if as_json:
        print(json.dumps(summary))


@app.command()
def calibrate(
    protocol_path: Annotated[Path, typer.Argument(metavar="PROTOCOL", help="protocol YAML file")],
    sim: Annotated[bool, typer.Option("--sim", help="calibrate the protocol's twin")] = False,
    emulate: Annotated[bool, typer.Option("--emulate", help="real drivers against emulated instruments")] = False,
    bench: Annotated[bool, typer.Option("--bench", help="drive the real instruments the protocol names")] = False,
    write: Annotated[
        bool, typer.Option("--write", help="store the results in the twin section and the homeostasis settings")
    ] = False,
    knob_bits: Annotated[
        int | None,
        typer.Option("--knob-bits", min=1, max=32, help="resolution of the knob DACs; default simulation.dac_bits"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON summary as the last line")] = False,
) -> None:
    """Measure knob gains and offsets, noise floors and settling; recommend homeostasis gain, averages, tolerance."""
    from aeqlab.backends import choose_kind

    try:
        protocol, _ = _load(protocol_path)
        kind = choose_kind(protocol, sim=sim, emulate=emulate, bench=bench)
        summary = _calibrate(protocol_path, protocol, kind, write, knob_bits)
    except AeqlabError as exc:
        fail(exc)
    if as_json:
        print(json.dumps(summary))


def _calibrate(protocol_path: Path, protocol, kind: str, write: bool, knob_bits: int | None = None) -> dict:
    from rich.table import Table

    from aeqlab.backends import open_backend
    from aeqlab.engine.methods.calibration import calibrate as calibration_plan
    from aeqlab.engine.methods.calibration import homeostasis_floor, iteration_time
    from aeqlab.engine.plan import execute

    if write and protocol.simulation is None:
        raise InputError(
            "the protocol has no 'simulation:' section to write to",
            where=str(protocol_path),
            hint="add a twin section first: 'aeqlab init twin' writes one",
        )
    with open_backend(protocol, kind) as backend:  # safe state and closed on the way out
        bench = backend.bench
        knobs = bench.setpoints("knobs")
        # the twin section never says what a bench's DACs are: --knob-bits does
        step = max((s for s, _, _ in protocol.knob_dac_steps(knob_bits).values()), default=0.0)
        # the gain's two levels twenty knob steps apart or more: rounding and dither cost it at most ~10 %
        plan = calibration_plan(
            knobs, bench.roles["inputs"].size, bench.roles["nudges"].size, gain_step=max(0.05, 20 * step)
        )
        result = execute(plan, bench)
    h = protocol.method.homeostasis
    iteration = iteration_time(getattr(protocol.method, "settle_policy", None), result.settle_time)
    drift_max = float(np.max(result.params_drift)) if result.params_drift is not None else 0.0
    floor = homeostasis_floor(
        result.params_noise,
        result.knob_gain,
        step,
        h.tolerance,
        dither=h.dither,
        drift_rate=drift_max,
        iteration_time=iteration,
    )
    summary = {
        "status": "completed",
        "backend": kind,
        **result.summary(),
        "knob_step": step,
        "homeostasis_floor": floor.floor,
        "homeostasis_iteration_s": iteration,
        "homeostasis_floor_drift": floor.drift,
        "recommended_homeostasis_averages": floor.averages,
        "recommended_homeostasis_tolerance": floor.tolerance,
    }
    table = Table(title=f"calibration of {protocol.name} ({kind})")
    table.add_column("quantity")
    table.add_column("min", justify="right")
    table.add_column("median", justify="right")
    table.add_column("max", justify="right")
    for name, values in (
        ("knob gain dθ/du", result.knob_gain),
        ("knob offset (model units)", result.knob_offset),
        ("parameter readback noise σ", result.params_noise),
        ("output noise σ", result.outputs_noise),
        ("parameter drift |dθ/dt| beyond the noise (1/s)", result.params_drift),
    ):
        table.add_row(name, f"{values.min():.4g}", f"{np.median(values):.4g}", f"{values.max():.4g}")
    table.add_row("settling time constant τ (s)", "", f"{result.settling_tau:.4g}", "")
    table.add_row("recommended settle wait (s)", "", f"{result.settle_time:.4g}", "")
    table.add_row("recommended homeostasis gain", "", f"{result.recommended_gain:.3g}", "")
    knob = f"knob step and dither {floor.quantization:.3g}" if step else "knob resolution unknown: --knob-bits"
    table.add_row(
        f"homeostasis floor: {knob} + noise {floor.noise:.3g} + drift over one {iteration:.3g} s iteration "
        f"{floor.drift:.3g}",
        "",
        f"{floor.floor:.3g}",
        "",
    )
    table.add_row("recommended homeostasis averages", "", f"{floor.averages}", "")
    table.add_row("recommended homeostasis tolerance", "", f"{floor.tolerance:.3g}", "")
    err.print(table)
    if write:
        _write_calibration(protocol_path, result, floor)
        err.print(f"wrote the measured non-idealities and the homeostasis averages and tolerance into {protocol_path}")
    return summary


def _write_calibration(path: Path, result, floor) -> None:
    """Store measured non-idealities in the twin section and the floor's homeostasis settings, keeping comments."""
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    doc = yaml.load(path.read_text(encoding="utf-8"))
    sim = doc["simulation"]
    sim["knob_errors"] = {
        "gain_low": round(float(result.knob_gain.min()), 6),
        "gain_high": round(float(result.knob_gain.max()), 6),
        "offset": round(float(np.max(np.abs(result.knob_offset))), 6),
    }
    sim["adc_noise"] = round(float(np.median(result.params_noise)), 9)
    sim["settling_tau"] = round(float(result.settling_tau), 9)
    if result.params_drift is not None and result.params_drift.size:
        # the twin drifts each knob at drift · N(0, 1): the median of |N(0, 1)| is 0.674
        sim["drift"] = float(f"{float(np.median(result.params_drift)) / 0.6745:.3g}")
    method = doc.setdefault("method", {})
    homeostasis = method.get("homeostasis")
    if homeostasis is None:
        method["homeostasis"] = homeostasis = {}
    homeostasis["averages"] = int(floor.averages)
    homeostasis["tolerance"] = float(f"{floor.tolerance:.3g}")
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        yaml.dump(doc, fh)
    tmp.replace(path)
