"""Agnostic Equilibrium Propagation, one training sample as a plan.

1. free phase: apply x, hold θ at its targets θ* (optional), read the prediction ŷ;
2. homeostatic phase: nudging β₁; feedback on the knobs until the measured θ = θ*;
   θ_h is read at its end;
3. clamped phase: knobs frozen, nudging β₂; the system (θ included) settles;
4. read θ′: the new targets (or, with ``homeostasis.targets: incremental``, the old
   targets plus the step). The step is θ′ − θ_h.

Nudging is a current +β(y − ŷ) into each output node (toward the target), either
fixed from the free-phase error (``linearized``) or re-measured until consistent
(``tracking``). The method never sees an energy function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from aeqlab.engine.methods.base import SampleContext, TrainingMethod
from aeqlab.engine.methods.phases import FeedbackMemory, Nudge, PhaseResult, run_phase
from aeqlab.engine.methods.settling import settle_and_read
from aeqlab.engine.plan import Mark, Plan, Set
from aeqlab.engine.state import EngineState
from aeqlab.protocol import Method

__all__ = ["Aeqprop", "EngineState", "SampleRecord", "betas", "free_phase", "predict", "train_sample"]

VARIANTS = {
    "centered": (-0.5, 0.5),
    "optimistic": (0.0, 1.0),
    "pessimistic": (-1.0, 0.0),
}


def betas(variant: str, beta: float) -> tuple[float, float]:
    """(β₁, β₂) of a variant at strength β."""
    a, b = VARIANTS[variant]
    return a * beta, b * beta


@dataclass
class SampleRecord:
    """What one Aeqprop sample did (model units)."""

    prediction: np.ndarray
    loss: float
    correct: bool
    step: np.ndarray  # θ′ − θ_h
    theta_h: np.ndarray
    theta_new: np.ndarray
    free: PhaseResult
    homeostatic: PhaseResult
    clamped: PhaseResult

    @property
    def separate_homeostasis(self) -> bool:
        """False when θ was already held at θ* by the free phase and β₁ = 0 (one phase did both)."""
        return self.homeostatic is not self.free

    @property
    def homeostasis_iterations(self) -> int:
        return self.free.iterations + (self.homeostatic.iterations if self.separate_homeostasis else 0)

    @property
    def converged(self) -> bool:
        return self.free.converged and self.homeostatic.converged and self.clamped.converged

    @property
    def saturated(self) -> bool:
        return self.free.saturated or self.homeostatic.saturated

    def phase_iterations(self) -> dict[str, int]:
        out = {"free": self.free.iterations}
        if self.separate_homeostasis:
            out["homeostatic"] = self.homeostatic.iterations
        out["clamped"] = self.clamped.iterations
        return out

    def journal_fields(self) -> dict[str, Any]:
        separate = self.separate_homeostasis
        return {
            "predicted": int(np.argmax(self.prediction)),
            "correct": int(self.correct),
            "loss": float(self.loss),
            "free_output": self.prediction,
            "nudge_homeostatic": self.homeostatic.currents if separate else None,
            "nudge_clamped": self.clamped.currents,
            "nudge_norm": float(np.linalg.norm(self.clamped.currents)),
            "step_norm": float(np.linalg.norm(self.step)),
            "free_iterations": int(self.free.iterations),
            "homeostatic_iterations": int(self.homeostatic.iterations if separate else 0),
            "clamped_iterations": int(self.clamped.iterations),
            "free_residual": float(self.free.residual),
            "residual": float(self.homeostatic.residual),
            "tracking_residual": float(max(self.homeostatic.tracking_residual, self.clamped.tracking_residual)),
            "converged": int(self.converged),
            "saturated": int(self.saturated),
            "settle_timeouts": int(
                sum(p.settle_timeouts for p in ([self.free, self.clamped] + ([self.homeostatic] if separate else [])))
            ),
        }


def free_phase(state: EngineState, x: np.ndarray, method: Method) -> Plan[PhaseResult]:
    """Apply x and read the prediction, holding θ at its targets when the method asks for it."""
    yield Set("inputs", x)
    if method.free_phase_homeostasis:
        res = yield from run_phase(
            state.memory, state.knobs, state.targets, None, method.homeostasis, method.tracking, method.settle_policy
        )
        state.knobs = res.knobs
        return res
    theta, outputs, settled = yield from settle_and_read(
        method.settle_policy,
        memory=state.memory.settle,
        site=("free-unheld", 0),
        tolerance=method.homeostasis.tolerance,
    )
    return PhaseResult(
        theta,
        outputs,
        np.zeros(0),
        state.knobs,
        0,
        float(np.max(np.abs(theta - state.targets))),
        0.0,
        True,
        False,
        settle_timeouts=int(not settled),
    )


def train_sample(state: EngineState, x: np.ndarray, y: np.ndarray, method: Method, beta: float) -> Plan[SampleRecord]:
    """One Aeqprop cycle on one example; updates ``state`` (targets, knobs)."""
    b1, b2 = betas(method.variant, beta)
    tracking = method.nudging == "tracking"
    yield Mark("free")
    free = yield from free_phase(state, x, method)
    y_free = free.outputs
    # homeostatic phase at β₁ (with β₁ = 0 and a held free phase, θ is already at θ*)
    if b1 != 0.0 or not method.free_phase_homeostasis:
        i1 = tracking_guess(state.memory, b1, y, y_free, np.zeros_like(y)) if tracking else b1 * (y - y_free)
        nudge = Nudge(b1, y, i1, tracking) if b1 != 0.0 else None
        yield Mark("homeostatic")
        homeo = yield from run_phase(
            state.memory, state.knobs, state.targets, nudge, method.homeostasis, method.tracking, method.settle_policy
        )
        state.knobs = homeo.knobs
    else:
        homeo = free
    theta_h = homeo.theta
    # clamped phase at β₂: knobs frozen, everything settles
    if tracking:
        i_h = homeo.currents if homeo.currents.size else np.zeros_like(y)
        i2 = tracking_guess(state.memory, b2, y, homeo.outputs, i_h)
    else:
        i2 = b2 * (y - y_free)
    nudge2 = Nudge(b2, y, i2, tracking)
    yield Mark("clamped")
    clamped = yield from run_phase(
        state.memory, state.knobs, None, nudge2, method.homeostasis, method.tracking, method.settle_policy
    )
    theta_new = clamped.theta
    yield Set("nudges", np.zeros_like(y))
    if method.homeostasis.targets == "incremental":
        # both readings were taken at the same frozen knobs: DAC rounding and homeostasis error cancel
        state.targets = state.targets + (theta_new - theta_h)
    else:
        state.targets = theta_new.copy()
    loss = 0.5 * float(np.sum((y_free - y) ** 2))
    return SampleRecord(
        prediction=y_free,
        loss=loss,
        correct=bool(np.argmax(y_free) == np.argmax(y)),
        step=theta_new - theta_h,
        theta_h=theta_h,
        theta_new=theta_new,
        free=free,
        homeostatic=homeo,
        clamped=clamped,
    )


def tracking_guess(memory: FeedbackMemory, beta: float, y: np.ndarray, outputs: np.ndarray, current: np.ndarray):
    """First guess of the tracking current I = β(y − ŷ(I)), from the outputs ŷ read at ``current``.

    With the learnt susceptibility χ ≈ dŷ/dI, ŷ(I) ≈ ŷ + χ(I − I₀), so (1 + βχ)I = β(y − ŷ + χI₀).
    The correction to the plain guess β(y − ŷ) is capped at |β| per channel, as a tracking step
    is (near 1 + βχ ≈ 0 the linear model asks for currents the bench would refuse).
    """
    plain = beta * (y - outputs)
    chi = memory.susceptibility
    try:
        guess = np.linalg.solve(np.eye(y.size) + beta * chi, beta * (y - outputs + chi @ current))
    except np.linalg.LinAlgError:
        return plain
    if not np.all(np.isfinite(guess)):
        return plain
    d = guess - plain
    m = float(np.max(np.abs(d))) if d.size else 0.0
    return plain + d * (abs(beta) / m) if m > abs(beta) else guess


def predict(state: EngineState, x: np.ndarray, method: Method) -> Plan[np.ndarray]:
    """The prediction for one input (the free phase alone)."""
    res = yield from free_phase(state, x, method)
    return res.outputs


class Aeqprop(TrainingMethod):
    """Agnostic Equilibrium Propagation (centered, optimistic or pessimistic; tracking or linearized nudging)."""

    name = "aeqprop"
    phases = ("free", "homeostatic", "clamped")

    def sample(self, state: EngineState, x: np.ndarray, y: np.ndarray, beta: float, ctx: SampleContext):
        return train_sample(state, x, y, ctx.config, beta)
