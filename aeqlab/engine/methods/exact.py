"""Exact-gradient baseline (twin only): SGD with the oracle's gradient, applied through homeostasis.

One sample: the free phase of Aeqprop (apply x, hold θ at θ*, read ŷ), then the
oracle's gradient of L = ½‖ŷ − y‖² at that equilibrium, and the step

    θ* ← θ* − scale·β·ε⊙∇L,

which the knobs reach in the next sample's free phase. ``β·ε⊙∇L`` is what an Aeqprop
step of strength β = β₂ − β₁ approaches for small couplings ε
(``Δθ = −β(I + ΣF_θθ)⁻¹Σ∇L``, see docs/design.md), so with ``scale = 1`` the baseline
runs on the same step size and β schedule as Aeqprop: it shows what a perfect
gradient does on the same physics.

The oracle is a callable ``oracle(x, y) -> ε⊙∇L`` handed in by the composition root
(:mod:`aeqlab.backends` builds it from the twin); this module never sees the twin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from aeqlab.engine.methods.aeqprop import free_phase
from aeqlab.engine.methods.base import Oracle, SampleContext, TrainingMethod, held_phase_fields
from aeqlab.engine.methods.phases import PhaseResult
from aeqlab.engine.plan import Mark, Plan
from aeqlab.engine.state import EngineState
from aeqlab.protocol import Method

__all__ = ["ExactGradient", "ExactRecord", "Oracle", "train_sample"]


@dataclass
class ExactRecord:
    """What one exact-gradient sample did: the free phase and the oracle's step."""

    prediction: np.ndarray
    loss: float
    correct: bool
    step: np.ndarray
    theta_h: np.ndarray
    theta_new: np.ndarray
    free: PhaseResult

    @property
    def converged(self) -> bool:
        return self.free.converged

    @property
    def saturated(self) -> bool:
        return self.free.saturated

    @property
    def homeostasis_iterations(self) -> int:
        return self.free.iterations

    def phase_iterations(self) -> dict[str, int]:
        return {"free": self.free.iterations}

    def journal_fields(self) -> dict[str, Any]:
        return held_phase_fields(self, self.free, None)


def train_sample(
    state: EngineState, x: np.ndarray, y: np.ndarray, method: Method, beta: float, oracle: Oracle
) -> Plan[ExactRecord]:
    """One exact-gradient step on one example; updates ``state`` (targets, knobs)."""
    yield Mark("free")
    free = yield from free_phase(state, x, method)
    gradient = np.asarray(oracle(x, y), dtype=float)
    step = -method.exact.scale * beta * gradient
    theta_h = state.targets.copy()
    state.targets = state.targets + step
    y_free = free.outputs
    return ExactRecord(
        prediction=y_free,
        loss=0.5 * float(np.sum((y_free - y) ** 2)),
        correct=bool(np.argmax(y_free) == np.argmax(y)),
        step=step,
        theta_h=theta_h,
        theta_new=state.targets.copy(),
        free=free,
    )


class ExactGradient(TrainingMethod):
    """SGD with the twin's exact gradient, applied through homeostasis (twin only)."""

    name = "exact"
    needs_oracle = True
    phases = ("free",)

    def sample(self, state: EngineState, x: np.ndarray, y: np.ndarray, beta: float, ctx: SampleContext):
        return train_sample(state, x, y, ctx.config, beta, ctx.oracle)
