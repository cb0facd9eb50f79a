"""``aeqlab advise``: couplings ε and nudging β for a new network, from the stability ratio ρ and the data.

How it decides (docs/protocols.md, "Choosing ε and β: aeqlab advise"):

1. **ρ at the start.** The stability ratio the preflight reads (the largest over up to
   200 training inputs spread evenly, at the parameters homeostasis holds). With the parameters held the
   state does not depend on ε, and ρ is linear in a common factor on every ε: the factor
   ``s_max = target_rho / ρ₀`` puts the start at the target (0.5 by default), whatever
   the protocol's own ε; the protocol's ratios between its couplings are kept.
2. **Candidates.** Common factors ``s_max · {1/8, 1/4, 1/2, 1}`` times nudging strengths β from
   ``{0.25, 0.5, 1, 2}`` (at most the largest β whose nudge current, for the worst output
   error, stays within the nudging role's limits; tracking nudging at most 1, as its
   homeostatic phase at −β/2 takes curvature from the outputs), gentlest first: a pair
   that loses stability rules out, unprobed, every pair at least as large in both.
3. **Probes.** Each candidate trains ``probe_epochs`` epochs on the twin, with a validation
   split taken from the training data (the test set is never looked at). ρ is read at
   the end and projected to the end of the schedule at the probe's rate, linearly in the
   samples: ρ grows with the weights, which grow with the steps taken (on the sine network
   linearly or faster, docs/benchmarks.md; a √samples projection let the largest steps
   through). The recommended protocol's monitor catches what grows faster still.
4. **Verdict.** A candidate is refused when its probe lost stability (a jump the twin
   refuses, ρ at the threshold), left any homeostasis unconverged, saturated knobs, or
   projects ρ beyond 0.8 by the end (a margin below the monitor's threshold, 0.9 unless
   the protocol sets one). A probe that fails for another reason (a value outside a
   role's limits, say) stops advise with that error: no other pair would avoid it.
5. **Choice.** The recommendation is the accepted pair with the best validation accuracy
   (a regression's R²), then the lowest validation loss, then the lowest projected ρ.

Probes run in a temporary folder that is removed; the protocol file is only read.
"""

from __future__ import annotations

import io
import math
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ruamel.yaml import YAML

from aeqlab.errors import AeqlabError, InputError, ProtocolError
from aeqlab.protocol import Protocol, parse_protocol
from aeqlab.protocol.text import source_of

BETAS = (2.0, 1.0, 0.5, 0.25)  # nudging strengths tried, largest first
SCALES = (1.0, 0.5, 0.25, 0.125)  # fractions of s_max tried
DEFAULT_THRESHOLD = 0.9  # the stability monitor's default threshold
END_RHO = 0.8  # the largest projected end-of-schedule rho a candidate may have (a margin below the threshold)
VALIDATION = 0.2  # the probes' validation fraction when the protocol sets none
RHO_INPUTS = 200  # training inputs advise reads rho over


@dataclass
class Candidate:
    """One (ε factor, β) pair and what its probe showed."""

    scale: float  # common factor on every ε of the protocol
    beta: float
    epsilon: Any = None  # the couplings it sets, as the protocol writes them
    rho_start: float = math.nan
    rho_end: float = math.nan  # after the probe
    rho_projected: float = math.nan  # at the end of the schedule
    validation_accuracy: float = math.nan  # a regression's R²
    validation_loss: float = math.nan
    homeostasis_iterations: float = math.nan  # per sample, mean
    unconverged: int = 0
    saturations: int = 0
    accepted: bool = False
    verdict: str = ""  # a word or two for a table: ok, jumped, rho 0.95, skipped, ...
    unstable: bool = False  # refused for stability (a jump, rho at the threshold, unconverged homeostasis)
    why: str = ""  # why it was refused


@dataclass
class Advice:
    """What ``advise`` found: the candidates, the recommendation and the settings it changes."""

    protocol: str
    task: str
    rho_protocol: float  # ρ at the start with the protocol's own ε
    target_rho: float
    threshold: float
    end_rho: float  # the largest projected rho at the end of the schedule accepted
    epochs: int
    probe_epochs: int
    beta_max: float
    candidates: list[Candidate] = field(default_factory=list)
    chosen: Candidate | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # key path -> value, to write into the protocol

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["chosen"] = asdict(self.chosen) if self.chosen else None
        return out


# --------------------------------------------------------------------------- the protocol's text
def _yaml() -> YAML:
    y = YAML()  # round trip: comments and order stay
    y.preserve_quotes = True
    y.width = 4096
    return y


def apply_settings(text: str, settings: dict[str, Any]) -> str:
    """``text`` with each ``a.b.c`` key path set to its value (missing mappings are added)."""
    y = _yaml()
    doc = y.load(text)
    for path, value in settings.items():
        node = doc
        parts = path.split(".")
        for part in parts[:-1]:
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
        node[parts[-1]] = _flow(value)
    buf = io.StringIO()
    y.dump(doc, buf)
    return buf.getvalue()


def _flow(value: Any) -> Any:
    """Lists and small mappings written inline, as protocols write them (``[0.02, 0.005]``)."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(value, list):
        seq = CommentedSeq(value)
        seq.fa.set_flow_style()
        return seq
    if isinstance(value, dict):
        m = CommentedMap(value)
        m.fa.set_flow_style()
        return m
    return value


def _sig(v: float) -> float:
    """Three significant digits: what a person writes in a protocol."""
    return float(f"{v:.3g}")


def epsilon_settings(protocol: Protocol, scale: float) -> dict[str, Any]:
    """The key paths and values of the protocol's couplings times ``scale`` (three significant digits)."""
    sim = protocol.simulation
    if sim.model == "hopfield":
        return {
            "simulation.epsilon.weights": [_sig(e * scale) for e in sim.epsilon.weights],
            "simulation.epsilon.biases": [_sig(e * scale) for e in sim.epsilon.biases],
        }
    if sim.model == "spring":
        return {"simulation.spring.eps": _sig(sim.spring.eps * scale)}
    if sim.model == "energy":
        eps = sim.energy.epsilon
        value = [_sig(e * scale) for e in eps] if isinstance(eps, list) else _sig(eps * scale)
        return {"simulation.energy.epsilon": value}
    raise InputError(
        f"advise sets the couplings of the built-in and energy-defined twins; {sim.describe()} keeps its own",
        where="simulation.model",
        hint="pass the couplings through the plug-in's options and read rho with 'aeqlab run --sim'",
    )


# --------------------------------------------------------------------------- the numbers
def beta_max(protocol: Protocol) -> float:
    """The largest β to try: the nudge current for the worst output error within the nudging limits."""
    nudges = protocol.roles.nudges
    lim = min(abs(nudges.limits.low), abs(nudges.limits.high)) if nudges.limits else math.inf
    scale = abs(nudges.calibration.scale)
    sim = protocol.simulation
    lo, hi = sim.output_clip if sim.model == "hopfield" else (-1.0, 2.0)
    t_lo, t_hi = protocol.dataset.target_range
    worst = max(abs(t_hi - lo), abs(hi - t_lo))  # model units of output error
    b = min(BETAS[0], lim / (scale * worst)) if worst > 0 else BETAS[0]
    if protocol.method.nudging == "tracking":
        b = min(b, 1.0)
    return b


def projected(rho_start: float, rho_end: float, probe_samples: int, total_samples: int) -> float:
    """ρ at the end of the schedule, growing linearly in samples at the probe's rate (never below the probe's)."""
    if not (np.isfinite(rho_start) and np.isfinite(rho_end)) or probe_samples <= 0:
        return math.nan
    growth = max(0.0, rho_end - rho_start)
    return rho_end + growth * (total_samples / probe_samples - 1.0)


def _probe(text: str, source: str, out: Path, candidate: Candidate, advice: Advice) -> None:
    """Train the candidate's protocol for the probe epochs; fill in what it showed."""
    from aeqlab.backends import open_backend
    from aeqlab.datasets import load
    from aeqlab.runs import training
    from aeqlab.runs.run import Run

    protocol = parse_protocol(text, source)
    data = load(protocol.dataset)  # the probe's split: its validation examples are not trained on
    with open_backend(protocol, "sim") as backend:
        candidate.rho_start = rho_over(backend.twin, data.x_train)
        if candidate.rho_start >= 1.0:
            candidate.why, candidate.verdict = f"unstable at the start (rho {candidate.rho_start:.2f})", "unstable"
            candidate.unstable = True  # a larger pair starts at least as unstable: rule those out too
            return
        try:
            summary = training.start(
                protocol, text, source, backend, out=out, session=training.Session(handle_signals=False)
            )
        except AeqlabError as exc:
            candidate.why, candidate.verdict = f"probe refused: {exc.one_line()}", "refused"
            return
        if summary.get("stability_stops"):
            candidate.unstable = True
            rho = summary.get("stability_max_rho", math.nan)
            candidate.why, candidate.verdict = f"rho reached {rho:.2f} during the probe", f"rho {rho:.2f}"
            return
        if summary.get("status") != "completed":
            error = str(summary.get("error", ""))
            candidate.unstable = "stability ratio" in error or "jump" in error
            jumped = "the twin jumped (rho > 1) during the probe"
            if not candidate.unstable:  # a fault no other (epsilon, beta) would avoid: say it once
                raise InputError(
                    f"a probe run failed: {error}", where=f"advise {source}", hint="fix the protocol, then advise again"
                )
            candidate.why, candidate.verdict = jumped, "jumped"
            return
    candidate.rho_end = rho_at_end(protocol, Path(summary["run_dir"]), data.x_train)
    best = Run(summary["run_dir"]).best_params()
    if best is not None:
        candidate.validation_accuracy, candidate.validation_loss = float(best["accuracy"]), float(best["loss"])
    candidate.homeostasis_iterations = float(summary.get("homeostasis_iterations_mean", math.nan))
    candidate.unconverged = int(summary.get("homeostasis_unconverged", 0))
    candidate.saturations = int(summary.get("knob_saturations", 0))
    per_epoch = len(data.y_train)
    candidate.rho_projected = projected(
        candidate.rho_start, candidate.rho_end, advice.probe_epochs * per_epoch, advice.epochs * per_epoch
    )
    if candidate.unconverged:
        candidate.unstable = True
        candidate.why = f"{candidate.unconverged} homeostasis loops did not converge"
        candidate.verdict = "unconverged"
    elif candidate.saturations:
        candidate.why, candidate.verdict = f"{candidate.saturations} knob saturations", "saturated"
    elif not np.isfinite(candidate.rho_projected) or candidate.rho_projected >= advice.end_rho:
        candidate.unstable = True
        candidate.why = f"rho projected to {candidate.rho_projected:.2f} by the end (at most {advice.end_rho:g})"
        candidate.verdict = "rho grows"
    elif not np.isfinite(candidate.validation_accuracy):
        candidate.why, candidate.verdict = "no validation reading", "no reading"
    else:
        candidate.accepted, candidate.verdict = True, "ok"


def rho_over(twin: Any, x: np.ndarray) -> float:
    """The largest held ρ over up to ``RHO_INPUTS`` training inputs (evenly spread).

    The run's monitor reads the first 20 inputs and up to 20 of the window's examples, to
    stay cheap; advise reads more, as one input can be unstable while those are not.
    """
    from aeqlab.backends.sim import stability_preflight

    pick = x[np.linspace(0, len(x) - 1, min(len(x), RHO_INPUTS)).astype(int)]
    return float(stability_preflight(twin, pick, n=len(pick)))


def rho_at_end(protocol: Protocol, run_dir: Path, x_train: np.ndarray) -> float:
    """ρ at a run's last committed state, on a fresh twin restored from its journal's snapshot.

    (The run's own twin has been through the safe state since: its knobs, and so its
    parameters, are no longer those of the last sample.)
    """
    from aeqlab.backends import open_backend
    from aeqlab.journal import Journal
    from aeqlab.runs.journaling import load_checkpoint

    journal = Journal.open(run_dir / "journal.sqlite")
    try:
        saved = load_checkpoint(journal)
    finally:
        journal.close()
    if saved is None or saved[1] is None:
        return math.nan
    with open_backend(protocol, "sim") as backend:
        backend.restore(saved[1])
        return rho_over(backend.twin, x_train)


def _rank(c: Candidate) -> tuple[float, float, float]:
    return (-c.validation_accuracy, c.validation_loss, c.rho_projected)


def advise(
    protocol: Protocol,
    *,
    target_rho: float = 0.5,
    probe_epochs: int = 2,
    betas: tuple[float, ...] | None = None,
    scales: tuple[float, ...] = SCALES,
    progress: Callable[[int, int, Candidate], None] | None = None,
) -> Advice:
    """ε and β for ``protocol``'s network from ρ and probe runs on its twin (see the module's docstring)."""
    from aeqlab.backends import open_backend
    from aeqlab.datasets import load

    if protocol.simulation is None:
        raise ProtocolError(
            "advise needs the twin to read the stability ratio: the protocol has no 'simulation:' section",
            where="simulation",
            hint="add one describing the network, as 'aeqlab init twin' writes it; on a bench, "
            "the stability monitor reads rho from homeostasis: see the stability section of the protocol docs",
        )
    if not 0.0 < target_rho < 1.0:
        raise InputError(f"target rho {target_rho:g} is not in (0, 1)", where="advise", hint="use e.g. 0.5")
    epsilon_settings(protocol, 1.0)  # a plug-in twin is refused before anything runs
    text, source = source_of(protocol)
    source = source or "<protocol>"
    data = load(protocol.dataset)
    with open_backend(protocol, "sim") as backend:
        rho0 = rho_over(backend.twin, data.x_train)
    if not np.isfinite(rho0) or rho0 <= 0.0:
        raise ProtocolError(
            f"the stability ratio at the start reads {rho0:g}: every unit is clipped at the starting parameters",
            where=f"{source}: simulation.init",
            hint="start from smaller weights: lower simulation.init.gains so that some units are free",
        )
    threshold = protocol.stability.threshold if protocol.stability is not None else DEFAULT_THRESHOLD
    advice = Advice(
        protocol=protocol.name,
        task=protocol.dataset.task,
        rho_protocol=rho0,
        target_rho=target_rho,
        threshold=threshold,
        end_rho=min(END_RHO, threshold),
        epochs=protocol.schedule.epochs,
        probe_epochs=min(probe_epochs, protocol.schedule.epochs),
        beta_max=beta_max(protocol),
    )
    tried = [b for b in (betas or BETAS) if b <= advice.beta_max + 1e-12] or [advice.beta_max]
    s_max = target_rho / rho0
    # gentlest first: a pair that loses stability rules out every pair at least as large in both
    pairs = [(s_max * f, b) for f in sorted(scales) for b in sorted(tried)]
    base: dict[str, Any] = {"schedule.epochs": advice.probe_epochs}
    if protocol.dataset.validation is None:
        base["dataset.validation"] = VALIDATION
    # the probe stops as soon as rho reaches the threshold (the protocol's own monitor would act otherwise)
    base["stability"] = {
        "monitor_every": _monitor_every(len(data.y_train)),
        "threshold": threshold,
        "action": "stop",
    }
    unstable: list[tuple[float, float]] = []  # (scale, beta) of the probes that lost stability
    with tempfile.TemporaryDirectory(prefix="aeqlab-advise-") as tmp:
        for i, (scale, beta) in enumerate(pairs):
            eps = epsilon_settings(protocol, scale)
            candidate = Candidate(scale=scale, beta=beta, epsilon=next(iter(eps.values())) if len(eps) == 1 else eps)
            if any(scale >= s and beta >= b for s, b in unstable):
                candidate.why = "skipped: a gentler setting already lost stability"
                candidate.verdict = "skipped"
            else:
                probe_text = apply_settings(text, {**base, **eps, "method.beta": beta})
                _probe(probe_text, source, Path(tmp) / f"probe{i}", candidate, advice)
                if candidate.unstable:
                    unstable.append((scale, beta))
            advice.candidates.append(candidate)
            if progress is not None:
                progress(i + 1, len(pairs), candidate)
    accepted = sorted((c for c in advice.candidates if c.accepted), key=_rank)
    if accepted:
        advice.chosen = accepted[0]
        advice.settings = {**epsilon_settings(protocol, advice.chosen.scale), "method.beta": advice.chosen.beta}
        if protocol.dataset.validation is None:
            advice.settings["dataset.validation"] = VALIDATION
        if protocol.stability is None:
            advice.settings["stability"] = {"monitor_every": _monitor_every(len(data.y_train)), "action": "rollback"}
    return advice


def _monitor_every(per_epoch: int) -> int:
    """A reading about every tenth of an epoch (at least every 20 samples, at most every 500)."""
    return int(min(500, max(20, per_epoch // 10)))


def write_protocol(protocol: Protocol, advice: Advice, path: str | Path) -> Path:
    """A copy of ``protocol``'s file with the recommendation applied (comments kept); it validates."""
    if advice.chosen is None:
        raise InputError("no candidate was accepted: there is nothing to write", where="advise --write")
    import os

    text, source = source_of(protocol)
    target = Path(path).resolve()
    settings = dict(advice.settings)
    data = protocol.dataset.path  # resolved when loaded: written relative to the new file's folder
    if data is not None:
        settings["dataset.path"] = Path(os.path.relpath(data, target.parent)).as_posix()
    new = apply_settings(text, settings)
    parse_protocol(new, str(target))
    target.write_text(new, encoding="utf-8")
    return target
