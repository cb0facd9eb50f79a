"""The stability monitor and the best parameters: sub-plans of a run plan (see docs/protocols.md, "stability").

Every ``stability.monitor_every`` committed samples the plan reads the stability ratio
ρ and acts on it when it reaches ``stability.threshold``:

* on a twin ρ comes from the twin itself (:attr:`aeqlab.engine.backend.Backend.stability`,
  the ratio the preflight uses: the largest over the first 20 training inputs, at the
  parameters homeostasis holds), or ρ at an unstable jump the twin saw since the last reading
  when that is larger (a brief excursion past 1 between two readings: the twin jumped from an
  equilibrium with ρ ≥ 1, and five such jumps close together fail the run);
* on a bench (or an emulated one, which offers no twin) it is the *bench stability
  indicator*: the 90th percentile, over the homeostasis loops of the window's samples,
  of each loop's mean contraction per correction ``(r_end / r_first)^(1/iterations)``
  (a loop that did not reach its tolerance reads at least 1). The joint equilibrium of
  parameters and states softens as ρ grows, the loop's corrections shrink less from
  one iteration to the next, and the indicator rises toward 1 with ρ.

Actions: ``warn`` journals and flags it (the summary's ``stability_warnings``), ``stop``
ends the run resumable (:class:`aeqlab.errors.StabilityStop`, exit code 3), ``rollback``
restores the best parameters (by the validation split when there is one, else those of
the last reading below the threshold), multiplies β by ``beta_factor`` (and, on a twin,
every ε by ``epsilon_factor``) and goes on; after ``max_rollbacks`` it stops instead.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from aeqlab.engine.records import Checkpoint, Evaluation
from aeqlab.protocol import Stability
from aeqlab.runs.events import RunEvent
from aeqlab.runs.messages import Emit, Halt, MeasureStability, Rollback, RunMessage

BENCH_QUANTILE = 90  # percentile of the window's loop contractions the bench indicator reads


@dataclass
class StabilityChecked(RunEvent):
    """A reading of the stability monitor, and what the run did about it."""

    kind: ClassVar[str] = "stability"
    samples_done: int = 0
    epoch: int = 0
    rho: float = 0.0
    source: str = "twin"  # twin: the twin's own ρ; bench: the bench stability indicator
    threshold: float = 0.9
    action: str = "none"  # none | warn | stop | rollback
    beta: float = 0.0  # β from here on
    epsilon_scale: float = 1.0  # product of the rollbacks' epsilon factors so far (a twin)
    detail: str = ""
    checkpoint: Checkpoint | None = None  # a rollback's: the state it left, to resume from
    replayed: bool = False


@dataclass
class BestParams(RunEvent):
    """New best parameters by the validation split (kept as ``best.npz`` in the run folder)."""

    kind: ClassVar[str] = "best"
    epoch: int = 0
    samples_done: int = 0
    accuracy: float = 0.0  # validation accuracy (a regression's R²)
    loss: float = 0.0
    theta: np.ndarray | None = None


def better(a: Evaluation, best: tuple[float, float] | None) -> bool:
    """Whether evaluation ``a`` beats ``best`` (accuracy, loss): higher accuracy, then lower loss."""
    if best is None:
        return True
    acc, loss = float(a.accuracy), float(a.loss)
    if not np.isfinite(acc):
        return False
    return acc > best[0] or (acc == best[0] and loss < best[1])


class Best:
    """The best parameters by the validation split so far (θ*, and its accuracy and loss)."""

    def __init__(self) -> None:
        self.theta: np.ndarray | None = None
        self.score: tuple[float, float] | None = None

    def remember(self, theta: np.ndarray, evaluation: Evaluation) -> bool:
        """Keep θ* when its validation is the best so far; True when it was."""
        if not better(evaluation, self.score):
            return False
        self.theta, self.score = theta.copy(), (float(evaluation.accuracy), float(evaluation.loss))
        return True


class StabilityMonitor:
    """The plan's view of ``stability:``: the window of samples, the parameters to roll back to, the counts.

    Parameters
    ----------
    config
        The protocol's ``stability`` section.
    tolerance
        The homeostasis tolerance (a loop that ends above it did not converge).
    scale_epsilon
        ``scale_epsilon(factor)`` on a twin whose ε can be lowered, else None.
    quiet_until
        Readings at or before this sample were acted on in an earlier session (a twin's
        replay): a rollback is redone (the state must come out the same), a stop or a
        warning is not.
    """

    def __init__(
        self,
        config: Stability,
        tolerance: float,
        scale_epsilon: Callable[[float], None] | None = None,
        quiet_until: int = 0,
    ) -> None:
        self.config = config
        self.every = config.monitor_every
        self.tolerance = tolerance
        self.scale_epsilon = scale_epsilon
        self.quiet_until = quiet_until
        self.window: list[float] = []
        self.unconverged = 0
        self.rollbacks = 0
        self.epsilon_scale = 1.0
        self.healthy: np.ndarray | None = None  # θ* at the last reading below the threshold
        self.best = Best()  # the plan's, by the validation split

    def observe(self, record) -> None:
        """Take a committed sample's homeostasis loops into the window."""
        self.unconverged += not record.converged
        for name in ("free", "homeostatic"):
            phase = getattr(record, name, None)
            q = phase.contraction(self.tolerance) if phase is not None and hasattr(phase, "contraction") else None
            if q is not None:
                self.window.append(q)

    def bench_indicator(self) -> tuple[float, str]:
        """The bench stability indicator over the window, and what it saw."""
        loops = len(self.window)
        value = float(np.percentile(self.window, BENCH_QUANTILE)) if loops else 0.0
        return value, f"{loops} homeostasis loops, {self.unconverged} unconverged samples"

    def check(
        self,
        epoch: int,
        samples_done: int,
        targets: np.ndarray,
        beta: float,
        checkpoint: Callable[[float], Checkpoint],
        examples: tuple[int, ...] = (),
    ) -> Generator[RunMessage, object, float]:
        """A reading and its action, as run messages; returns β from here on.

        ``checkpoint(beta)`` builds the checkpoint of the state a rollback leaves; ``examples``
        are the training examples the twin's ρ is read at besides the first 20.
        """
        reading = yield MeasureStability(examples)
        if reading is None:
            rho, detail = self.bench_indicator()
            source = "bench"
        else:
            rho, detail, source = reading.worst, "the twin's own stability ratio", "twin"
            if reading.jumps:
                detail += (
                    f"; {reading.jumps} unstable jump{'s' if reading.jumps > 1 else ''} since the last reading "
                    f"(rho {reading.jump_rho:.3g} there, {reading.rho:.3g} now)"
                )
        self.window.clear()
        self.unconverged = 0
        cfg = self.config
        quiet = samples_done <= self.quiet_until
        action = "none"
        if not rho >= cfg.threshold:
            self.healthy = targets.copy()
        elif cfg.action == "rollback" and self.rollbacks < cfg.max_rollbacks:
            action = "rollback"
        elif cfg.action == "rollback":
            action, detail = "stop", f"{detail}; {cfg.max_rollbacks} rollbacks already"
        else:
            action = cfg.action
        if action == "rollback":
            self.rollbacks += 1
            restore = self.best.theta if self.best.theta is not None else self.healthy
            if restore is None:
                restore = targets
            detail += "; rolled back to " + (
                "the best validation" if self.best.theta is not None else "the last healthy reading"
            )
            beta *= cfg.beta_factor
            factor = cfg.epsilon_factor if self.scale_epsilon is not None else 1.0
            self.epsilon_scale *= factor
            yield Rollback(restore.copy(), factor)
        event = StabilityChecked(
            samples_done=samples_done,
            epoch=epoch,
            rho=float(rho),
            source=source,
            threshold=cfg.threshold,
            action=action,
            beta=beta,
            epsilon_scale=self.epsilon_scale,
            detail=detail,
            checkpoint=checkpoint(beta) if action == "rollback" else None,
            replayed=quiet,
        )
        yield Emit(event)
        if action == "stop" and not quiet:
            yield Halt(f"stopped by the stability monitor: rho = {rho:.3g} >= {cfg.threshold:g} ({source})")
        return beta


def restore_monitor(monitor: StabilityMonitor, store, journal, before: int) -> None:
    """A resumed session's monitor takes up the run's: its best parameters and its rollbacks up to ``before``."""
    best = store.read_best()
    if best is not None:
        monitor.best.theta, monitor.best.score = best["theta"], (best["accuracy"], best["loss"])
    done = [r for r in journal.stability() if r["action"] == "rollback" and r["seq"] <= before]
    monitor.rollbacks = len(done)
    if done:
        monitor.epsilon_scale = float(done[-1]["epsilon_scale"])
