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

from collections.abc import Callable

import numpy as np

from aeqlab.engine.methods.aeqprop import EngineState, SampleRecord, free_phase
from aeqlab.engine.methods.spsa import idle_phase
from aeqlab.engine.plan import Plan
from aeqlab.protocol import Method

Oracle = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``oracle(x, y)``: ε⊙∇_θL at the system's present equilibrium (model units, role order)."""


def train_sample(
    state: EngineState, x: np.ndarray, y: np.ndarray, method: Method, beta: float, oracle: Oracle
) -> Plan[SampleRecord]:
    """One exact-gradient step on one example; updates ``state`` (targets, knobs)."""
    free = yield from free_phase(state, x, method)
    gradient = np.asarray(oracle(x, y), dtype=float)
    step = -method.exact.scale * beta * gradient
    theta_h = state.targets.copy()
    state.targets = state.targets + step
    y_free = free.outputs
    return SampleRecord(
        prediction=y_free,
        loss=0.5 * float(np.sum((y_free - y) ** 2)),
        correct=bool(np.argmax(y_free) == np.argmax(y)),
        step=step,
        theta_h=theta_h,
        theta_new=state.targets.copy(),
        free=free,
        homeostatic=free,
        clamped=idle_phase(free),
    )
