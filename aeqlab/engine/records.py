"""What the engine reports after each committed step: samples, evaluations, epochs, checkpoints.

After every committed step (the initial evaluation, each training sample, each
epoch's end) the engine hands the run level a :class:`Checkpoint`: everything it
needs to continue exactly from there (targets θ*, knob setpoints, learnt feedback
memory, the order generator's state, the position and the epoch's running totals).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aeqlab.engine.methods.base import SampleRecord
from aeqlab.engine.state import EngineState


def r_squared(half_sse: float, targets: np.ndarray) -> float:
    """Coefficient of determination from Σ½‖ŷ − y‖² and the targets."""
    sst = float(np.sum((targets - targets.mean(axis=0)) ** 2))
    return 1.0 - 2.0 * half_sse / sst if sst > 0 else float("nan")


@dataclass
class EpochTotals:
    """Running sums of an epoch's training samples (restored with a checkpoint mid-epoch)."""

    correct: int = 0
    loss: float = 0.0
    iterations: int = 0
    unconverged: int = 0
    saturated: int = 0
    step: float = 0.0
    wall_s: float = 0.0

    def add(self, rec: SampleRecord) -> None:
        self.correct += rec.correct
        self.loss += rec.loss
        self.iterations += rec.homeostasis_iterations
        self.unconverged += not rec.converged
        self.saturated += rec.saturated
        self.step += float(np.linalg.norm(rec.step))


@dataclass
class Checkpoint:
    """Everything the engine needs to continue exactly after a committed step.

    Attributes
    ----------
    epoch
        The epoch in progress (1-based).
    done
        Training samples of that epoch already done; equal to the epoch's length when
        only its evaluation is left.
    samples_done
        Training samples done in the whole run.
    beta
        Nudging strength of the epoch in progress.
    rng_state
        State of the training-order generator at the start of ``epoch`` (before it
        drew that epoch's order).
    totals
        Running sums of the epoch in progress.
    state
        Targets θ*, knob setpoints and the learnt feedback memory. Shared with the
        running engine: subscribers must copy or serialise it before returning.
    """

    epoch: int
    done: int
    samples_done: int
    beta: float
    rng_state: dict[str, Any]
    totals: EpochTotals
    state: EngineState


@dataclass
class Evaluation:
    """A pass over the test set: accuracy (a regression's R²) and mean loss."""

    accuracy: float
    loss: float
    checkpoint: Checkpoint | None = field(default=None, repr=False, compare=False)


@dataclass
class EpochMetrics:
    """An epoch's figures; the test figures are None in an epoch that was not evaluated."""

    epoch: int
    samples: int  # training samples so far
    beta: float
    train_accuracy: float  # running accuracy (regression: R²) of the free-phase predictions during the epoch
    train_loss: float
    test_accuracy: float | None
    test_loss: float | None
    homeostasis_iterations: float  # mean per sample
    homeostasis_unconverged: int
    saturated: int
    step_norm: float  # mean ‖θ′ − θ_h‖
    wall_s: float
    checkpoint: Checkpoint | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "checkpoint"}


@dataclass
class SampleEvent:
    """One committed training sample.

    ``phase_seconds`` maps the method's phases (``free``, ``homeostatic``, ``clamped``
    for Aeqprop) to their wall-clock time, from the plan's phase marks.
    ``compliance_tripped`` says, per nudge, whether its source reported its compliance
    tripped after some nudge write of the sample (kept under ``safety.on_compliance: flag``).
    """

    epoch: int
    index: int
    total: int
    record: SampleRecord
    example: int = -1
    label: int = -1
    target: np.ndarray | None = None
    samples_done: int = 0
    seconds: float = 0.0
    phase_seconds: dict[str, float] = field(default_factory=dict)
    compliance_tripped: np.ndarray | None = None  # per nudge: its source hit its compliance during the sample
    checkpoint: Checkpoint | None = field(default=None, repr=False)
