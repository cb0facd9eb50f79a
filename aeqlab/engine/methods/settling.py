"""The settle before each reading: fixed, until stable, or adaptive (learnt from the changes seen).

A plan settles, then reads θ and ŷ (:func:`settle_and_read`). The adaptive policy waits
τ·ln(Δ̂/tol) for the change Δ̂ it expects at that point of the procedure, learnt by
:class:`SettleMemory` from the readings themselves. Nothing here knows any physics.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aeqlab.engine.plan import Plan, Read, Settle
from aeqlab.protocol import SettleAdaptive

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


def _max_abs(a: np.ndarray) -> float:
    return float(np.max(np.abs(a))) if a.size else 0.0


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
