"""Regression data made by a *teacher* spring network, for training a student twin.

The teacher is the same lattice as the student with rest lengths perturbed by up to
``perturbation`` (relative); inputs are displacements large enough for the geometry to
be nonlinear, so a linear fit cannot explain the targets. Deterministic for a seed.

``python -m sim_backends.teacher OUT.npz`` writes the file the example protocol uses.
"""

from __future__ import annotations

import sys

import numpy as np

from sim_backends.spring import SpringNetwork, triangular_network

DEFAULTS = dict(
    rows=4,
    cols=5,
    inputs=2,
    output_pairs=((1, 11),),
    examples=200,
    amplitude=0.6,
    perturbation=0.1,
    lattice_seed=1,
    seed=5,
)


def teacher_data(
    rows: int,
    cols: int,
    inputs: int,
    output_pairs,
    examples: int,
    amplitude: float,
    perturbation: float,
    lattice_seed: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(x: examples × inputs displacements, y: examples × outputs distances) of the teacher network."""
    spec = triangular_network(rows, cols, eps=1e-9, seed=lattice_seed, inputs=inputs)
    spec = type(spec)(**{**spec.__dict__, "output_pairs": tuple(tuple(p) for p in output_pairs)})
    rng = np.random.default_rng(seed)
    rest = spec.rest_lengths() * (1 + perturbation * rng.uniform(-1, 1, spec.n_params))
    x = rng.uniform(-amplitude, amplitude, (examples, inputs))
    net = SpringNetwork(spec, tolerance=1e-12)
    y = []
    for xi in x:
        net.relax(xi, rest, np.zeros(spec.n_outputs))
        y.append(net.outputs.copy())
    return x, np.array(y)


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        print("usage: python -m sim_backends.teacher OUT.npz", file=sys.stderr)
        raise SystemExit(2)
    x, y = teacher_data(**DEFAULTS)
    np.savez(argv[0], x=x, y=y)
    print(f"wrote {argv[0]}: {len(x)} examples, {x.shape[1]} inputs, {y.shape[1]} outputs")


if __name__ == "__main__":
    main(sys.argv[1:])
