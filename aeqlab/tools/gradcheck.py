"""Gradient fidelity on a twin: real Aeqprop steps through the bench, against the oracle.

The measured step is θ′ − θ_h (θ_h read at the end of homeostasis, θ′ at the end of the
clamped phase), taken through the simulated instruments exactly as training takes it.
The prediction for the twin's finite ε comes from implicit differentiation at the
joint equilibrium with the knobs where homeostasis left them and no nudging:
Δθ ≈ (β₂ − β₁)·dθ/dβ = −(β₂ − β₁)(I + ΣF_θθ)⁻¹Σ∇L, with the nudge pulling along the
error it really pulls along (the present error for tracking nudging, the free-phase
error for linearized nudging).

The check starts from the bench as found (θ₀), or from a journaled parameter snapshot
(``start``): its knob setpoints are set and homeostasis brings the twin's θ to the
snapshot's θ* first, so the steps are those the run would take from there.

On a twin with bench non-idealities (ADC noise, DAC resolution, drift) the feedback loops
cannot reach the check's own tight tolerances: the steps are then taken with the protocol's
homeostasis and tracking, exactly as training takes them, and the cosine to the exact step,
averaged over the samples, shows what the bench does to the gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aeqlab.backends.sim import build_sim_bench
from aeqlab.datasets import Split, load
from aeqlab.engine.methods.aeqprop import betas, train_sample
from aeqlab.engine.methods.phases import PhaseResult, run_phase
from aeqlab.engine.plan import Plan, Set, execute
from aeqlab.engine.state import EngineState
from aeqlab.engine.trainer import Trainer
from aeqlab.errors import AeqlabError, InputError
from aeqlab.protocol import Method, Protocol


@dataclass
class GradcheckSample:
    index: int
    relative_error: float
    cosine: float
    cosine_to_gradient: float
    step_norm: float
    instrument_calls: int
    start_offset: float = 0.0  # max|θ_h − θ_start|: how far this step's θ_h is from the θ* the check started at


@dataclass
class Start:
    """Where a check starts: a journaled θ* and the knob setpoints at that moment (None: not journaled)."""

    theta: np.ndarray
    knobs: np.ndarray | None = None
    label: str = "a journaled snapshot"


class StartFailed(AeqlabError):
    """Homeostasis could not bring the twin's θ to a journaled θ*."""

    exit_code = 1


def take_up(state: EngineState, start: Start, method: Method) -> Plan[PhaseResult]:
    """Set the snapshot's knobs (when journaled) and hold θ at its θ* by homeostasis."""
    state.targets = np.array(start.theta, dtype=float)
    if start.knobs is not None:
        state.knobs = np.array(start.knobs, dtype=float)
        yield Set("knobs", state.knobs)
    res = yield from run_phase(
        state.memory, state.knobs, state.targets, None, method.homeostasis, method.tracking, method.settle_policy
    )
    state.knobs = res.knobs
    return res


def bench_like(protocol: Protocol) -> bool:
    """True when the twin reads with noise, rounds its outputs or drifts: exact feedback is out of reach."""
    sim = protocol.simulation
    return sim is not None and (sim.adc_noise > 0 or sim.dac_bits is not None or sim.drift > 0)


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    # rounding can put the ratio a hair beyond ±1: a cosine is not
    return float(np.clip(a @ b / (na * nb), -1.0, 1.0)) if na > 0 and nb > 0 else float("nan")


def gradcheck(
    protocol: Protocol,
    *,
    beta: float,
    variant: str | None = None,
    nudging: str | None = None,
    samples: int = 3,
    tolerance: float = 1e-13,
    start: Start | None = None,
    data: Split | None = None,
) -> list[GradcheckSample]:
    """Take ``samples`` Aeqprop steps on the twin and compare each with the oracle.

    The steps train the first ``samples`` training examples in the data set's order, one
    after the other, from θ₀ (the twin as built) or from ``start``. ``data`` saves
    loading the data set again when the caller has it.
    """
    update = {
        "beta": beta,
        "variant": variant or protocol.method.variant,
        "nudging": nudging or protocol.method.nudging,
    }
    if not bench_like(protocol):  # an ideal twin: feedback to machine precision, the step is the physics'
        update["homeostasis"] = protocol.method.homeostasis.model_copy(
            update={"tolerance": 1e-12, "max_iterations": 500}
        )
        update["tracking"] = protocol.method.tracking.model_copy(
            update={"tolerance": 1e-11 * beta, "max_iterations": 500}
        )
    method = protocol.method.model_copy(update=update)
    protocol = protocol.model_copy(update={"method": method})
    sb = build_sim_bench(protocol, tolerance=tolerance)
    data = load(protocol.dataset) if data is None else data
    trainer = Trainer(protocol, sb.bench, data)
    b1, b2 = betas(method.variant, beta)
    targets = data.targets(data.y_train)
    out: list[GradcheckSample] = []
    try:
        execute(trainer.start_plan(), sb.bench)
        if start is not None:
            if np.shape(start.theta) != np.shape(trainer.state.targets):
                raise InputError(
                    f"{start.label} holds {np.size(start.theta)} parameters, the protocol's twin "
                    f"{trainer.state.targets.size}",
                    where="gradcheck",
                    hint="check from the protocol the run was made with",
                )
            res = execute(take_up(trainer.state, start, method), sb.bench)
            if not res.converged:
                raise StartFailed(
                    f"homeostasis could not bring the twin's θ to {start.label}'s θ* "
                    f"(max|θ − θ*| = {res.residual:.2e} after {res.iterations} iterations"
                    f"{', a knob at its limit' if res.saturated else ''})",
                    where="gradcheck",
                )
            # the steps start with a fresh feedback memory, as they do from θ₀: the secant gains
            # learnt from the take-up's large knob moves slow the steps' homeostasis down threefold
            trainer.state.memory = trainer.fresh_memory()
        theta_start = trainer.state.targets.copy()
        for k in range(min(samples, len(data.x_train))):
            calls_before = sum(inst.calls for inst in sb.instruments.values())
            x, y = data.x_train[k], targets[k]
            rec = execute(train_sample(trainer.state, x, y, method, beta), sb.bench)
            calls = sum(inst.calls for inst in sb.instruments.values()) - calls_before
            # the oracle works on a copy of the physics: knobs as homeostasis left them (as the
            # physics feels them, drift included), no nudging
            net = sb.twin.clone_network()
            net.relax(
                sb.twin.ports["inputs"],
                sb.twin.knob_drive(),
                np.zeros(net.spec.n_outputs),
                tolerance=tolerance,
                max_sweeps=100_000,
            )
            # tracking nudging pulls with the present error; linearized with the free-phase error
            pulled_from = rec.prediction if method.nudging == "linearized" else net.outputs
            velocity, gradient, eps = net.linear_response(x, pulled_from, y)
            predicted = (b2 - b1) * velocity
            gradient_step = -(b2 - b1) * eps * gradient
            measured = rec.step
            rel = float(np.linalg.norm(measured - predicted) / np.linalg.norm(predicted))
            out.append(
                GradcheckSample(
                    k,
                    rel,
                    _cos(measured, predicted),
                    _cos(measured, gradient_step),
                    float(np.linalg.norm(measured)),
                    calls,
                    float(np.max(np.abs(rec.theta_h - theta_start))),
                )
            )
    finally:
        sb.bench.safe_state()
    return out
