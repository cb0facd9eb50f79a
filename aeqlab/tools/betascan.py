"""A nudging strength from the clamped phase's signal to noise: ``aeqlab gradcheck --beta-scan``.

A measured Aeqprop step θ′ − θ_h is the exact step plus two errors: the bias of a finite β
(centered: of order β², relative) and the noise of the readings (a fixed size set by the
bench, so relative to the step it falls as 1/β). The cosine between the measured and the
exact step takes both into account: on a noisy twin it rises with β while noise dominates
and falls once bias does. The scan takes the same steps (:func:`aeqlab.tools.gradcheck.gradcheck`)
at each β and recommends the β with the best mean cosine; on an ideal twin there is no
noise to beat and the smallest β is the most exact, so it recommends nothing.

β is also the learning rate: a step is about ε·β times the loss gradient. A larger β for
its signal to noise therefore comes with every ε scaled by protocol β / β, which keeps the
step's size (and lowers the stability ratio ρ, proportional to ε). Measured on iris with
σ = 1e-3 single readings (docs/design.md): the cosine rises from 0.32 at the protocol's
β = 0.5 to 0.88 at β = 4; β = 4 at the protocol's ε trains to 0.767 (β = 1.5 loses
stability), and with ε × 0.125 to 0.967, as β = 0.5 does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aeqlab.protocol import Protocol
from aeqlab.tools.gradcheck import Start, bench_like, gradcheck


@dataclass(frozen=True)
class BetaPoint:
    """The steps at one β: mean and worst cosine to the exact step, mean |step|."""

    beta: float
    mean_cosine: float
    min_cosine: float
    mean_step_norm: float
    worst_relative_error: float


def beta_scan(
    protocol: Protocol,
    betas: list[float],
    *,
    samples: int = 3,
    variant: str | None = None,
    nudging: str | None = None,
    start: Start | None = None,
) -> list[BetaPoint]:
    """The same ``samples`` steps (the first training examples, from the same θ) at every β."""
    points = []
    for beta in betas:
        results = gradcheck(protocol, beta=beta, variant=variant, nudging=nudging, samples=samples, start=start)
        cos = np.array([r.cosine for r in results])
        points.append(
            BetaPoint(
                beta=float(beta),
                mean_cosine=float(cos.mean()),
                min_cosine=float(cos.min()),
                mean_step_norm=float(np.mean([r.step_norm for r in results])),
                worst_relative_error=float(max(r.relative_error for r in results)),
            )
        )
    return points


def recommend(protocol: Protocol, points: list[BetaPoint]) -> tuple[float, float] | None:
    """(best-cosine β, the ε factor that keeps the step) on a bench-like twin; ``None`` on an ideal one."""
    if not bench_like(protocol) or not points:
        return None
    best = max(points, key=lambda p: p.mean_cosine).beta
    return best, protocol.method.beta / best
