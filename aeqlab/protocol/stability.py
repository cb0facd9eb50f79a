"""Stability a user can steer: how often the run watches ρ, and what it does when ρ crosses a threshold."""

from __future__ import annotations

from typing import Literal

from aeqlab.protocol.fields import Positive, Strict, _f


class Stability(Strict):
    """The stability monitor (see docs/protocols.md, "stability").

    Every ``monitor_every`` training samples the run reads the stability ratio ρ: on a
    twin from the twin itself (the ratio its preflight uses), on a bench or an emulated
    one from what the bench shows (the contraction of its homeostasis loop). When ρ
    reaches ``threshold`` the run acts: ``warn`` flags it in the summary, ``stop`` ends
    the run (resumable), ``rollback`` restores the best parameters and lowers β (and,
    on a twin, ε) before it goes on.
    """

    monitor_every: int = _f(50, "read the stability ratio every this many training samples", "samples", gt=0)
    threshold: float = _f(0.9, "act when the stability ratio reaches this", "1", gt=0, le=10, allow_inf_nan=False)
    action: Literal["warn", "stop", "rollback"] = _f("warn", "what to do when it does: warn, stop or rollback")
    beta_factor: Positive = _f(0.5, "rollback: β is multiplied by this", "1", le=1.0)
    epsilon_factor: Positive = _f(
        1.0, "rollback on a twin: every ε of simulation.epsilon is multiplied by this (a bench ignores it)", "1", le=1.0
    )
    max_rollbacks: int = _f(3, "rollback: after this many the run stops instead", "1", ge=0)
