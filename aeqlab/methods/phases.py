"""Phases of a sample as plans: hold parameters, track nudges, or both.

One loop serves every phase. Its setpoints are the knobs u (when it holds the
parameters at their targets: homeostasis) and the nudge currents I (when nudging
tracks the output: I = β(y − ŷ) for the output ŷ that I itself produces). Readings
are θ and ŷ, measured every iteration. The loop stops when every channel is within
tolerance, or reports that it did not get there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from aeqlab.feedback import Anderson, Broyden, SecantGains
from aeqlab.plan import Plan, Read, Set, Settle
from aeqlab.protocol import Homeostasis, Tracking


@dataclass
class Nudge:
    """Nudging of one phase: strength β toward target y.

    ``tracking`` re-measures ŷ and updates I until I = β(y − ŷ); otherwise the
    current stays at its initial value (linearized nudging: β(y − ŷ_free)).
    """

    beta: float
    target: np.ndarray
    initial_current: np.ndarray
    tracking: bool


@dataclass
class PhaseResult:
    theta: np.ndarray
    outputs: np.ndarray
    currents: np.ndarray
    knobs: np.ndarray
    iterations: int
    residual: float  # max |θ − θ*| (when holding)
    tracking_residual: float  # max |I − β(y − ŷ)| (when tracking)
    converged: bool
    saturated: bool  # some knob was held at its limit
    settle_timeouts: int = 0  # settles that reached the policy's timeout before the readings agreed


@dataclass
class FeedbackMemory:
    """What the engine learns about the bench across samples (gains, never physics)."""

    knob_gains: SecantGains
    susceptibility: np.ndarray  # estimated dŷ/dI (outputs × nudges), learnt from tracking steps
    knob_low: np.ndarray
    knob_high: np.ndarray


def run_phase(
    memory: FeedbackMemory,
    knobs: np.ndarray,
    targets: np.ndarray | None,
    nudge: Nudge | None,
    homeostasis: Homeostasis,
    tracking: Tracking,
    settle: Any,
) -> Plan[PhaseResult]:
    """Settle with the given nudging; hold θ at ``targets`` (if given) by moving the knobs.

    Parameters
    ----------
    knobs
        Present knob setpoints (model units).
    targets
        θ* to hold, or None to leave the knobs frozen (the clamped phase).
    nudge
        The phase's nudging, or None for none.
    settle
        The settle policy: seconds to wait (a number or ``{mode: fixed}``), or
        ``{mode: until_stable}``: read until consecutive readings agree within its tolerance.
    """
    hold = targets is not None
    track = nudge is not None and nudge.tracking and nudge.beta != 0.0
    u = knobs.copy()
    current = nudge.initial_current.copy() if nudge is not None else None
    if current is not None:
        yield Set("nudges", current)
    accel = Anderson(homeostasis.memory)
    root = None
    if track:
        # q = I + βŷ(I) must reach βy; dq/dI = 1 + β·dŷ/dI
        n = current.size
        root = Broyden(np.eye(n) + nudge.beta * memory.susceptibility, max_step=abs(nudge.beta))
    prev_u = prev_theta = None
    prev_res = np.inf
    damping = 1.0  # halved whenever a step fails to cut the residual (kinks, limit cycles)
    saturated = False
    tol_i = tracking.tolerance
    max_iter = max(homeostasis.max_iterations if hold else 0, tracking.max_iterations if track else 0)
    it = 0
    settle_timeouts = 0
    while True:
        theta, outputs, settled = yield from settle_and_read(settle)
        for _ in range(homeostasis.averages - 1):  # noisy readbacks: average repeated readings
            theta = theta + (yield Read("params"))
            outputs = outputs + (yield Read("outputs"))
        if homeostasis.averages > 1:
            theta, outputs = theta / homeostasis.averages, outputs / homeostasis.averages
        settle_timeouts += not settled
        res_theta = float(np.max(np.abs(targets - theta))) if hold else 0.0
        res_i = 0.0
        if track:
            res_i = float(np.max(np.abs(nudge.beta * (nudge.target - outputs) - current)))
        done = (not hold or res_theta <= homeostasis.tolerance) and (not track or res_i <= tol_i)
        if done or it >= max_iter:
            break
        it += 1
        if hold and res_theta > homeostasis.tolerance:
            if prev_u is not None:
                memory.knob_gains.observe(u - prev_u, theta - prev_theta)
            if res_theta > prev_res:
                damping = max(damping / 2, 1 / 64)
                accel.reset()
            prev_res = res_theta
            prev_u, prev_theta = u, theta
            f = damping * homeostasis.gain * (targets - theta) / memory.knob_gains.gain
            z_new = accel.step(u, f)
            u_new = np.clip(z_new, memory.knob_low, memory.knob_high)
            saturated |= bool(np.any(u_new != z_new))
            u = u_new
            yield Set("knobs", u)
        if track and res_i > tol_i:
            current = root.step(current, current + nudge.beta * outputs, nudge.beta * nudge.target)
            yield Set("nudges", current)
    if track and root is not None and it > 0:
        memory.susceptibility = (root.J - np.eye(root.J.shape[0])) / nudge.beta
    converged = (not hold or res_theta <= homeostasis.tolerance) and (not track or res_i <= tol_i)
    return PhaseResult(
        theta=theta,
        outputs=outputs,
        currents=current if current is not None else np.zeros(0),
        knobs=u,
        iterations=it,
        residual=res_theta,
        tracking_residual=res_i,
        converged=converged,
        saturated=saturated,
        settle_timeouts=settle_timeouts,
    )


def settle_and_read(settle: Any) -> Plan[tuple[np.ndarray, np.ndarray, bool]]:
    """Let the system settle, then read θ and ŷ; returns (θ, ŷ, settled within the policy's timeout)."""
    if getattr(settle, "mode", "fixed") != "until_stable":
        yield Settle(float(getattr(settle, "time", settle)))
        theta = yield Read("params")
        outputs = yield Read("outputs")
        return theta, outputs, True
    waited = 0.0
    yield Settle(settle.interval)
    theta = yield Read("params")
    outputs = yield Read("outputs")
    while True:
        waited += settle.interval
        yield Settle(settle.interval)
        theta_next = yield Read("params")
        outputs_next = yield Read("outputs")
        change = max(float(np.max(np.abs(theta_next - theta))), float(np.max(np.abs(outputs_next - outputs))))
        theta, outputs = theta_next, outputs_next
        if change <= settle.tolerance:
            return theta, outputs, True
        if waited + settle.interval > settle.timeout:
            return theta, outputs, False
