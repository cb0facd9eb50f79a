"""The shape of a layered Hopfield twin: layer sizes, couplings ε, clip boxes; its flat parameter order and start."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class HopfieldSpec:
    """Structure and couplings of a layered network.

    Parameters
    ----------
    layers
        Sizes ``[n_inputs, n_hidden..., n_outputs]``.
    eps_weights, eps_biases
        Coupling ε of each layer's weights and biases (one value per layer 1..L).
    hidden_clip, output_clip
        Boxes of hidden and output states.
    """

    layers: tuple[int, ...]
    eps_weights: tuple[float, ...]
    eps_biases: tuple[float, ...]
    hidden_clip: tuple[float, float] = (0.0, 1.0)
    output_clip: tuple[float, float] = (-1.0, 2.0)

    def __post_init__(self) -> None:
        n = len(self.layers) - 1
        if n < 1:
            raise ValueError("a network needs at least an input and an output layer")
        if len(self.eps_weights) != n or len(self.eps_biases) != n:
            raise ValueError(f"give one ε per layer for weights and biases ({n} layers)")

    @property
    def n_layers(self) -> int:
        return len(self.layers) - 1

    @property
    def n_inputs(self) -> int:
        return self.layers[0]

    @property
    def n_outputs(self) -> int:
        return self.layers[-1]

    @property
    def n_states(self) -> int:
        return sum(self.layers[1:])

    @property
    def weight_shapes(self) -> list[tuple[int, int]]:
        return [(self.layers[i], self.layers[i + 1]) for i in range(self.n_layers)]

    @property
    def n_params(self) -> int:
        return sum(a * b for a, b in self.weight_shapes) + self.n_states

    def group_names(self) -> list[str]:
        """Names of the parameter groups in their flat order: W1..WL, then b1..bL."""
        n = self.n_layers
        return [f"W{i + 1}" for i in range(n)] + [f"b{i + 1}" for i in range(n)]

    def group_sizes(self) -> list[int]:
        return [a * b for a, b in self.weight_shapes] + list(self.layers[1:])

    def eps_vector(self) -> np.ndarray:
        """ε of every parameter in the flat order."""
        eps = list(self.eps_weights) + list(self.eps_biases)
        return np.concatenate([np.full(k, e) for k, e in zip(self.group_sizes(), eps)])

    def clip_bounds(self, layer: int) -> tuple[float, float]:
        return self.output_clip if layer == self.n_layers else self.hidden_clip


def split_params(spec: HopfieldSpec, flat: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Views of a flat parameter vector as (weights, biases). Order: W1..WL (row-major), b1..bL."""
    weights, biases, pos = [], [], 0
    for shape in spec.weight_shapes:
        k = shape[0] * shape[1]
        weights.append(flat[pos : pos + k].reshape(shape))
        pos += k
    for n in spec.layers[1:]:
        biases.append(flat[pos : pos + n])
        pos += n
    return weights, biases


def half_xavier(spec: HopfieldSpec, gains: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """The reference initialisation: uniform ±gain·½·√(6/(fan_in+fan_out)) weights, zero biases."""
    if len(gains) != spec.n_layers:
        raise ValueError(f"give one init gain per layer ({spec.n_layers})")
    flat = np.zeros(spec.n_params)
    weights, _ = split_params(spec, flat)
    for w, g in zip(weights, gains):
        bound = g * 0.5 * np.sqrt(6.0 / (w.shape[0] + w.shape[1]))
        w[...] = rng.uniform(-bound, bound, size=w.shape)
    return flat
