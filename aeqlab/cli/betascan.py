"""``aeqlab gradcheck --beta-scan B1,B2,...``: the same steps at several β, the cosine's trade-off in one table."""

from __future__ import annotations

import json
import math

from aeqlab.cli.app import err
from aeqlab.errors import InputError


def parse_betas(text: str) -> list[float]:
    """``"0.25,0.5,1"`` → [0.25, 0.5, 1.0]; a clear error naming the bad entry."""
    betas = []
    for part in text.split(","):
        try:
            b = float(part)
        except ValueError:
            raise InputError(
                f"{part.strip()!r} is not a number", where="--beta-scan", hint="separate betas by commas: 0.25,0.5,1"
            ) from None
        if not (math.isfinite(b) and b > 0):
            raise InputError(f"beta must be a positive number, got {part.strip()}", where="--beta-scan")
        betas.append(b)
    return sorted(set(betas))


def scan(protocol, snap, betas: list[float], variant, nudging, samples: int, as_json: bool) -> None:
    """Print the table and the recommendation; ``protocol`` and the options were checked by the caller."""
    from rich.table import Table

    from aeqlab.tools.betascan import beta_scan, recommend
    from aeqlab.tools.gradcheck import bench_like

    the_variant = variant or protocol.method.variant
    the_nudging = nudging or protocol.method.nudging
    start = None if snap is None else snap.start()
    points = beta_scan(protocol, betas, samples=samples, variant=variant, nudging=nudging, start=start)
    best = recommend(protocol, points)
    table = Table(title=f"gradcheck --beta-scan: {the_variant}, {the_nudging}, {samples} samples each")
    for col in ("beta", "mean cosine", "worst cosine", "mean |step|", "worst relative error"):
        table.add_column(col, justify="right")
    for p in points:
        mark = " *" if best is not None and p.beta == best[0] else ""
        table.add_row(
            f"{p.beta:g}{mark}", f"{p.mean_cosine:.4f}", f"{p.min_cosine:.4f}",
            f"{p.mean_step_norm:.3e}", f"{p.worst_relative_error:.3g}",
        )
    err.print(table)
    if best is None:
        err.print(
            "an ideal twin: no noise to beat, the smallest beta is the most exact (the error of a centered step "
            "shrinks as beta squared); no beta is recommended",
            markup=False,
        )
    else:
        beta, factor = best
        err.print(
            f"noisy twin: beta = {beta:g} gives the best cosine to the exact step. beta is also the learning rate: "
            f"train at beta {beta:g} with every epsilon scaled by {factor:.3g} (protocol beta "
            f"{protocol.method.beta:g} / {beta:g}) to keep the step's size; at the protocol's epsilon the steps are "
            f"{1 / factor:.3g} times larger, which can lose stability",
            markup=False,
        )
    if as_json:
        print(
            json.dumps(
                {
                    "status": "completed",
                    "variant": the_variant,
                    "nudging": the_nudging,
                    "samples": samples,
                    "protocol_beta": protocol.method.beta,
                    "noisy": bench_like(protocol),
                    "points": [p.__dict__ for p in points],
                    "recommended_beta": None if best is None else best[0],
                    "epsilon_factor": None if best is None else best[1],
                }
            )
        )
