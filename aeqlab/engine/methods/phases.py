"""Phases of a sample as plans: hold parameters, track nudges, or both.

One loop serves every phase. Its setpoints are the knobs u (when it holds the
parameters at their targets: homeostasis) and the nudge currents I (when nudging
tracks the output: I = β(y − ŷ) for the output ŷ that I itself produces). Readings
are θ and ŷ, measured every iteration. The loop stops when every channel is within
tolerance, or reports that it did not get there.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aeqlab.engine.feedback import Anderson, Broyden, SecantGains
from aeqlab.engine.plan import Plan, Read, Set, Settle
from aeqlab.protocol import Homeostasis, SettleAdaptive, Tracking

MIN_SETTLED = 0.1  # the adaptive settle learns nothing from a wait that let less than this share of a change show
MIN_OBSERVATIONS = 2  # the adaptive settle predicts at a site once it has seen this many changes there
# Inside a feedback loop the adaptive settle waits at least this many τ, so that the readings show
# most (1 − 1/e) of the loop's last correction: a loop that corrects again before its readings have
# moved sees its own stale values and keeps correcting them (near the tolerance, where τ·ln(Δ̂/tol) → 0).
LOOP_LEAST_TAUS = 1.0
# Elsewhere it waits at least long enough for the readings to show twice MIN_SETTLED of a change, so
# that every wait teaches something: a site that once saw only changes below the tolerance would
# otherwise wait 0 (learning nothing from it) for ever, whatever the changes became.
OBSERVE_LEAST_TAUS = -math.log(1.0 - 2 * MIN_SETTLED)
SITE_ITERATIONS = 4  # feedback iterations the adaptive settle tells apart; later ones share one site


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
class SettleMemory:
    """What the adaptive settle has seen: how far the readings moved across settles, by site.

    A *site* is where a settle falls: ``(phase kind, feedback iteration)``, the iteration
    capped at :data:`SITE_ITERATIONS`. The first settle of a phase follows the input or
    nudge writes that open it; later ones follow the loop's own corrections. The change
    observed across a settle is ``max |reading − previous reading|`` over θ and ŷ. Inside
    a feedback loop it is kept relative to the residual the loop's last correction was
    meant to cancel (the residuals, and with them the changes, shrink by orders of
    magnitude from one iteration to the next and vary from sample to sample; their ratio
    does not). The prediction is the largest of the last ``window`` observations at the
    site (times the present residual): a prediction too large by a factor k costs τ·ln k,
    one too small leaves the reading k·tol away from its equilibrium.
    """

    window: int = 6  # observations kept per site
    seen: dict[Any, deque] = field(default_factory=dict)  # site → changes (relative to the residual, in a loop)
    theta: np.ndarray | None = None  # the last readings
    outputs: np.ndarray | None = None

    def expect(self, site: Any, residual: float | None = None) -> float | None:
        """The change expected across the next settle at ``site``; None until enough is known there."""
        seen = self.seen.get(site)
        if seen is None or len(seen) < MIN_OBSERVATIONS:
            return None
        return max(seen) * (residual if _scaled(residual) else 1.0)

    def observe(
        self,
        site: Any,
        theta: np.ndarray,
        outputs: np.ndarray,
        residual: float | None = None,
        settled: float = 1.0,
    ) -> None:
        """Learn from the readings just taken after a settle at ``site``.

        ``settled`` is the share of a change that a first-order settle shows after the
        wait (1 − e^(−t/τ)): the observed change is divided by it, and a wait that shows
        less than :data:`MIN_SETTLED` of a change teaches nothing. (Without this, a wait
        that came out short would show a small change, predict an even shorter wait, and
        so on: the loop would end up reading the same stale values.)
        """
        prev_theta, prev_outputs = self.theta, self.outputs
        self.theta, self.outputs = theta.copy(), outputs.copy()
        if prev_theta is None or prev_theta.shape != theta.shape or prev_outputs.shape != outputs.shape:
            return
        if settled < MIN_SETTLED:
            return
        change = max(_max_abs(theta - prev_theta), _max_abs(outputs - prev_outputs)) / settled
        if _scaled(residual):
            change /= residual
        self.seen.setdefault(site, deque(maxlen=self.window)).append(change)

    def to_state(self) -> dict[str, Any]:
        """The memory as plain data (a checkpoint can store it): sites as lists, last readings as lists."""
        return {
            "window": self.window,
            "seen": [[list(site) if isinstance(site, tuple) else site, list(v)] for site, v in self.seen.items()],
            "theta": None if self.theta is None else self.theta.tolist(),
            "outputs": None if self.outputs is None else self.outputs.tolist(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SettleMemory:
        """The inverse of :meth:`to_state`."""
        mem = cls(window=int(state["window"]))
        for site, values in state["seen"]:
            key = tuple(site) if isinstance(site, list) else site
            mem.seen[key] = deque(values, maxlen=mem.window)
        for name in ("theta", "outputs"):
            if state.get(name) is not None:
                setattr(mem, name, np.asarray(state[name], float))
        return mem


def _scaled(residual: float | None) -> bool:
    return residual is not None and residual > 0


@dataclass
class FeedbackMemory:
    """What the engine learns about the bench across samples (gains, never physics)."""

    knob_gains: SecantGains
    susceptibility: np.ndarray  # estimated dŷ/dI (outputs × nudges), learnt from tracking steps
    knob_low: np.ndarray
    knob_high: np.ndarray
    settle: SettleMemory = field(default_factory=SettleMemory)  # what the adaptive settle predicts from
    dither_seed: int = 0  # seed of the knob dither (homeostasis.dither)
    dither_draws: int = 0  # dither vectors drawn so far: the next one is drawn from (seed, draws)

    def dither(self, n: int, width: float) -> np.ndarray:
        """A fresh dither vector, uniform in ±width/2 per knob; reproducible from the seed and the count."""
        rng = np.random.default_rng((self.dither_seed, self.dither_draws))
        self.dither_draws += 1
        return rng.uniform(-0.5 * width, 0.5 * width, n)


def _max_abs(a: np.ndarray) -> float:
    return float(np.max(np.abs(a))) if a.size else 0.0


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
        first_residual=first_residual,
    )


def dithered(u: np.ndarray, offset: np.ndarray, memory: FeedbackMemory) -> np.ndarray:
    """The knob values written for setpoints ``u`` with the phase's dither ``offset``, inside the knob bounds."""
    return np.clip(u + offset, memory.knob_low, memory.knob_high)


def adaptive_wait(
    policy: SettleAdaptive, expected: float | None, tolerance: float | None, *, least: float = 0.0
) -> float:
    """The adaptive wait: ``clip(max(τ·ln(Δ̂/tol), least), min, max)``, the log term 0 when Δ̂ ≤ tol.

    With nothing expected yet (``expected`` None) or no tolerance to settle to, the
    longest wait. ``least`` (seconds) is a floor of the caller's own.
    """
    tol = policy.tolerance if policy.tolerance is not None else tolerance
    if expected is None or tol is None:
        return policy.longest
    wait = policy.tau * math.log(expected / tol) if expected > tol else 0.0
    return float(np.clip(max(wait, least), policy.min, policy.longest))


def settle_and_read(
    settle: Any,
    *,
    memory: SettleMemory | None = None,
    site: Any = None,
    residual: float | None = None,
    tolerance: float | None = None,
) -> Plan[tuple[np.ndarray, np.ndarray, bool]]:
    """Let the system settle, then read θ and ŷ; returns (θ, ŷ, settled within the policy's timeout).

    The keywords serve the adaptive policy (the others ignore them): ``memory`` holds the
    changes observed so far and learns from this settle's readings, ``site`` says where
    this settle falls, ``residual`` is what a feedback loop's last correction was meant
    to cancel, ``tolerance`` is the tolerance to settle to when the policy names none.
    Without a memory the adaptive policy waits its longest.
    """
    if isinstance(settle, SettleAdaptive):
        expected = memory.expect(site, residual) if memory is not None else None
        least = (LOOP_LEAST_TAUS if residual is not None else OBSERVE_LEAST_TAUS) * settle.tau
        wait = adaptive_wait(settle, expected, tolerance, least=least)
        yield Settle(wait)
        theta = yield Read("params")
        outputs = yield Read("outputs")
        if memory is not None:
            memory.observe(site, theta, outputs, residual, settled=-math.expm1(-wait / settle.tau))
        return theta, outputs, True
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
