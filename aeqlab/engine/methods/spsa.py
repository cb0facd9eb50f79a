"""SPSA, the order-zero baseline: one training sample as a plan through the same bench calls.

Simultaneous-perturbation stochastic approximation (Spall) perturbs every parameter at
once. For sample k with Δ ∈ {±1}ⁿ drawn from (seed, k):

1. apply x; homeostasis holds θ at θ* + c_k·Δ; read ŷ⁺, L⁺ = ½‖ŷ⁺ − y‖²;
2. homeostasis holds θ at θ* − c_k·Δ; read ŷ⁻, L⁻;
3. θ* ← θ* − a_k·(L⁺ − L⁻)/(2c_k)·Δ (the knobs reach it in the next sample's phases).

Only losses are measured: no nudging, no gradient. The prediction recorded for the
running accuracy is the mean of ŷ⁺ and ŷ⁻ (ŷ at θ* to first order in c_k). Because Δ
depends only on (seed, k), a resumed run draws the same perturbations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from aeqlab.engine.methods.base import SampleContext, TrainingMethod, held_phase_fields
from aeqlab.engine.methods.phases import PhaseResult, run_phase
from aeqlab.engine.plan import Mark, Plan, Set
from aeqlab.engine.state import EngineState
from aeqlab.protocol import Method


@dataclass
class SpsaRecord:
    """What one SPSA sample did: the two held phases, their losses and the step."""

    JOURNAL_PHASES: ClassVar[dict[str, str]] = {"plus": "free_s", "minus": "homeostatic_s"}

    prediction: np.ndarray
    loss: float
    correct: bool
    step: np.ndarray
    theta_h: np.ndarray
    theta_new: np.ndarray
    plus: PhaseResult
    minus: PhaseResult
    loss_plus: float
    loss_minus: float

    @property
    def converged(self) -> bool:
        return self.plus.converged and self.minus.converged

    @property
    def saturated(self) -> bool:
        return self.plus.saturated or self.minus.saturated

    @property
    def homeostasis_iterations(self) -> int:
        return self.plus.iterations + self.minus.iterations

    def phase_iterations(self) -> dict[str, int]:
        return {"plus": self.plus.iterations, "minus": self.minus.iterations}

    def journal_fields(self) -> dict[str, Any]:
        return held_phase_fields(self, self.plus, self.minus)


def gains(method: Method, k: int) -> tuple[float, float]:
    """(a_k, c_k) of sample k (0-based)."""
    o = method.spsa
    a_k = o.a / (k + 1 + o.stability) ** o.alpha
    c_k = o.c / (k + 1) ** o.gamma
    return a_k, c_k


def perturbation(seed: int, k: int, n: int) -> np.ndarray:
    """Δ of sample k: n independent ±1 (Rademacher) entries."""
    rng = np.random.default_rng([seed, k])
    return rng.integers(0, 2, n).astype(float) * 2.0 - 1.0


def _loss(outputs: np.ndarray, y: np.ndarray) -> float:
    return 0.5 * float(np.sum((outputs - y) ** 2))


def train_sample(state: EngineState, x: np.ndarray, y: np.ndarray, method: Method, k: int) -> Plan[SpsaRecord]:
    """One SPSA iteration on one example (the k-th sample of the run); updates ``state``."""
    a_k, c_k = gains(method, k)
    delta = perturbation(method.spsa.seed, k, state.targets.size)
    yield Set("inputs", x)
    held: list[PhaseResult] = []
    for sign in (1.0, -1.0):
        yield Mark("plus" if sign > 0 else "minus")
        res = yield from run_phase(
            state.memory,
            state.knobs,
            state.targets + sign * c_k * delta,
            None,
            method.homeostasis,
            method.tracking,
            method.settle_policy,
        )
        state.knobs = res.knobs
        held.append(res)
    plus, minus = held
    l_plus, l_minus = _loss(plus.outputs, y), _loss(minus.outputs, y)
    step = -a_k * (l_plus - l_minus) / (2.0 * c_k) * delta
    theta_h = state.targets.copy()
    state.targets = state.targets + step
    prediction = 0.5 * (plus.outputs + minus.outputs)
    return SpsaRecord(
        prediction=prediction,
        loss=_loss(prediction, y),
        correct=bool(np.argmax(prediction) == np.argmax(y)),
        step=step,
        theta_h=theta_h,
        theta_new=state.targets.copy(),
        plus=plus,
        minus=minus,
        loss_plus=l_plus,
        loss_minus=l_minus,
    )


class Spsa(TrainingMethod):
    """Simultaneous-perturbation stochastic approximation: the order-zero baseline."""

    name = "spsa"
    phases = ("plus", "minus")

    def sample(self, state: EngineState, x: np.ndarray, y: np.ndarray, beta: float, ctx: SampleContext):
        return train_sample(state, x, y, ctx.config, ctx.samples_done)
