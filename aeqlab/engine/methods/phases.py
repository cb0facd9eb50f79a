"""Phases of a sample as plans: hold parameters, track nudges, or both.

One loop serves every phase. Its setpoints are the knobs u (when it holds the
parameters at their targets: homeostasis) and the nudge currents I (when nudging
tracks the output: I = β(y − ŷ) for the output ŷ that I itself produces). Readings
are θ and ŷ, measured every iteration. The loop stops when every channel is within
tolerance, or reports that it did not get there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aeqlab.engine.feedback import Anderson, Broyden, SecantGains
from aeqlab.engine.methods.settling import SITE_ITERATIONS, SettleMemory, settle_and_read
from aeqlab.engine.plan import Plan, Read, Set
from aeqlab.protocol import Homeostasis, Tracking

# A phase that holds θ and tracks the nudge mixes both loops' steps (joint_step); every this many
# iterations the mixing restarts from the present setpoints, which breaks the rare limit cycle
JOINT_ITERATIONS = 20
# A joint reading this many times worse (in tolerances) than the phase's best so far: the mixing ran off
# (on digits late in training, a current heading for the nudge limits). The loop goes back to the best
# setpoints and halves its steps.
RUNAWAY = 10.0


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
    saturated: bool  # some knob, or a tracking current, was held at its limit
    settle_timeouts: int = 0  # settles that reached the policy's timeout before the readings agreed
    first_residual: float = 0.0  # max |θ − θ*| at the loop's first reading (when holding): what it started from

    def contraction(self, tolerance: float) -> float | None:
        """The loop's mean contraction per correction, (final / first residual)^(1/iterations), or None.

        A loop that did not reach its tolerance reads at least 1 (it did not contract enough
        to finish); one that made no correction says nothing (None). See docs/protocols.md,
        "stability": the bench stability indicator.
        """
        if self.iterations == 0 or self.first_residual <= 0:
            return None
        q = (max(self.residual, 1e-300) / self.first_residual) ** (1.0 / self.iterations)
        return float(q) if self.converged or self.residual <= tolerance else max(float(q), 1.0)


@dataclass
class FeedbackMemory:
    """What the engine learns about the bench across samples (gains, never physics)."""

    knob_gains: SecantGains
    susceptibility: np.ndarray  # estimated dŷ/dI (outputs × nudges), learnt from tracking steps
    knob_low: np.ndarray
    knob_high: np.ndarray
    settle: SettleMemory = field(default_factory=SettleMemory)  # what the adaptive settle predicts from
    nudge_bounds: tuple[np.ndarray, np.ndarray] | None = None  # the currents' window (model units); None: none known
    dither_seed: int = 0  # seed of the knob dither (homeostasis.dither)
    dither_draws: int = 0  # dither vectors drawn so far: the next one is drawn from (seed, draws)

    def bound_currents(self, current: np.ndarray) -> tuple[np.ndarray, bool]:
        """Currents a tracking step asks for, held inside the nudge window; and whether any was held.

        A loop that asks for more than the sources may give does not converge: the sample
        is flagged, as a knob held at its limit is, instead of the write being refused.
        """
        if self.nudge_bounds is None:
            return current, False
        held = np.clip(current, *self.nudge_bounds)
        return held, bool(np.any(held != current))

    def dither(self, n: int, width: float) -> np.ndarray:
        """A fresh dither vector, uniform in ±width/2 per knob; reproducible from the seed and the count."""
        rng = np.random.default_rng((self.dither_seed, self.dither_draws))
        self.dither_draws += 1
        return rng.uniform(-0.5 * width, 0.5 * width, n)


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
        The settle policy: seconds to wait (a number or ``{mode: fixed}``),
        ``{mode: until_stable}``: read until consecutive readings agree within its tolerance,
        or ``{mode: adaptive}``: wait τ·ln(Δ̂/tol) for the change Δ̂ expected at each site
        (``memory.settle``; tol defaults to the homeostasis tolerance).
    """
    hold = targets is not None
    track = nudge is not None and nudge.tracking and nudge.beta != 0.0
    u = knobs.copy()
    current = nudge.initial_current.copy() if nudge is not None else None
    if current is not None:
        yield Set("nudges", current)
    # dither: the knobs go on the wire as u + d, d drawn once for this phase (the loop's corrections
    # then act on what it wrote); a DAC rounds u + d, and over phases the rounding averages out
    offset = memory.dither(u.size, homeostasis.dither) if hold and homeostasis.dither > 0 else None
    if offset is not None:
        yield Set("knobs", dithered(u, offset, memory))
    accel = Anderson(homeostasis.memory)
    root = None
    if track:
        # q = I + βŷ(I) must reach βy; dq/dI = 1 + β·dŷ/dI
        n = current.size
        root = Broyden(np.eye(n) + nudge.beta * memory.susceptibility, max_step=abs(nudge.beta))
    joint = hold and track  # both loops at once: one mixing over (u, I), see joint_step
    best = None  # (normalised residual, knobs, currents) of the joint loop's best reading so far
    prev_u = prev_theta = None
    prev_res = np.inf
    damping = 1.0  # halved whenever a step fails to cut the residual (kinks, limit cycles)
    saturated = False
    tol_i = tracking.tolerance
    max_iter = max(homeostasis.max_iterations if hold else 0, tracking.max_iterations if track else 0)
    it = 0
    settle_timeouts = 0
    kind = ("hold" if hold else "free") + ("+track" if track else "+nudge" if nudge is not None else "")
    last_residual = None  # what the loop's last correction was meant to cancel
    while True:
        theta, outputs, settled = yield from settle_and_read(
            settle,
            memory=memory.settle,
            site=(kind, min(it, SITE_ITERATIONS)),
            residual=last_residual,
            tolerance=homeostasis.tolerance,
        )
        for _ in range(homeostasis.averages - 1):  # noisy readbacks: average repeated readings
            theta = theta + (yield Read("params"))
            outputs = outputs + (yield Read("outputs"))
        if homeostasis.averages > 1:
            theta, outputs = theta / homeostasis.averages, outputs / homeostasis.averages
        settle_timeouts += not settled
        err = targets - theta if hold else None
        res_theta = float(np.abs(err).max()) if hold else 0.0
        res_i = 0.0
        if track:
            res_i = float(np.max(np.abs(nudge.beta * (nudge.target - outputs) - current)))
        if it == 0:
            first_residual = res_theta
        done = (not hold or res_theta <= homeostasis.tolerance) and (not track or res_i <= tol_i)
        if done or it >= max_iter:
            break
        it += 1
        last_residual = max(res_theta, res_i)
        if joint and it % JOINT_ITERATIONS == 0:  # a rare phase the mixing does not settle: restart it
            accel.reset()
        if joint:
            r = max(res_theta / homeostasis.tolerance, res_i / tol_i)
            if best is None or r < best[0]:
                best = (r, u, current)
            elif r > RUNAWAY * best[0]:  # the mixing ran off: back to the best setpoints, smaller steps
                damping = max(damping / 2, 1 / 64)
                accel.reset()
                prev_u = prev_theta = None
                _, u, current = best
                yield Set("knobs", u if offset is None else dithered(u, offset, memory))
                yield Set("nudges", current)
                continue
            if prev_u is not None and res_theta > homeostasis.tolerance:
                memory.knob_gains.observe(u - prev_u, theta - prev_theta)
            prev_u, prev_theta = u, theta
            z_u, i_new = joint_step(accel, root.J, u, current, err, outputs, nudge, homeostasis, memory, damping)
            u_new = np.clip(z_u, memory.knob_low, memory.knob_high)
            saturated |= bool(np.any(u_new != z_u))
            if not np.array_equal(u_new, u):
                u = u_new
                yield Set("knobs", u if offset is None else dithered(u, offset, memory))
            i_new, held = memory.bound_currents(i_new)
            saturated |= held
            if not np.array_equal(i_new, current):
                current = i_new
                yield Set("nudges", current)
            continue
        if hold and res_theta > homeostasis.tolerance:
            if prev_u is not None:
                memory.knob_gains.observe(u - prev_u, theta - prev_theta)
            if res_theta > prev_res:
                damping = max(damping / 2, 1 / 64)
                accel.reset()
            prev_res = res_theta
            prev_u, prev_theta = u, theta
            f = damping * homeostasis.gain * err / memory.knob_gains.gain
            z_new = accel.step(u, f)
            u_new = np.clip(z_new, memory.knob_low, memory.knob_high)
            saturated |= bool(np.any(u_new != z_new))
            u = u_new
            yield Set("knobs", u if offset is None else dithered(u, offset, memory))
        if track and res_i > tol_i:
            current, held = memory.bound_currents(
                root.step(current, current + nudge.beta * outputs, nudge.beta * nudge.target)
            )
            saturated |= held
            yield Set("nudges", current)
    if track and root is not None and it > 0 and not joint:  # (a joint loop does not update J)
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
        first_residual=first_residual,
    )


def joint_step(
    accel: Anderson,
    jacobian: np.ndarray,
    u: np.ndarray,
    current: np.ndarray,
    err: np.ndarray,
    outputs: np.ndarray,
    nudge: Nudge,
    homeostasis: Homeostasis,
    memory: FeedbackMemory,
    damping: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """One step of homeostasis and tracking together: the next knobs (before clipping) and currents.

    Each loop alone is a preconditioned fixed-point step: the knobs by the diagonal Newton
    step of the learnt gains, the currents by a Newton step of the carried Jacobian
    ``1 + βχ`` of the tracking equation. Moving the knobs moves the outputs and moving
    the currents moves θ, so two separate loops each see the other's steps as
    disturbances (on digits at ε × 1.5 they needed 37 iterations a phase, and 5 % of
    phases did not converge in 100). One Anderson mixing over the stacked setpoints
    (u, I) learns that coupling from the steps themselves. A current step stays within
    |β| per channel, as a tracking step does alone. ``damping`` scales both steps (the
    loop halves it after a runaway).
    """
    f_u = homeostasis.gain * (damping * err) / memory.knob_gains.gain
    q = current + nudge.beta * outputs
    target = nudge.beta * nudge.target
    try:
        f_i = np.linalg.solve(jacobian, target - q)
    except np.linalg.LinAlgError:
        f_i = target - q
    if not np.all(np.isfinite(f_i)):
        f_i = target - q
    cap = abs(nudge.beta)
    z = accel.step(np.concatenate([u, current]), np.concatenate([f_u, _capped(damping * f_i, cap)]))
    return z[: u.size], current + _capped(z[u.size :] - current, cap)


def _capped(step: np.ndarray, cap: float) -> np.ndarray:
    """``step`` scaled down, whole, so that no channel moves by more than ``cap``."""
    big = float(np.max(np.abs(step))) if step.size else 0.0
    return step * (cap / big) if big > cap else step


def dithered(u: np.ndarray, offset: np.ndarray, memory: FeedbackMemory) -> np.ndarray:
    """The knob values written for setpoints ``u`` with the phase's dither ``offset``, inside the knob bounds."""
    return np.clip(u + offset, memory.knob_low, memory.knob_high)
