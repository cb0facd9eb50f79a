"""The twin: a layered Hopfield-like network or a spring lattice, its non-idealities and faults."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from aeqlab.protocol.fields import MAX_LAYER, MAX_PARAMS, Finite, Positive, Seed, Strict, _f, _problems
from aeqlab.protocol.units import SECOND, quantity


class Epsilon(Strict):
    """Couplings ε of the floating parameters to their knobs, one per layer."""

    weights: list[Positive] = _f(description="ε of each weight layer", unit="model units")
    biases: list[Positive] = _f(description="ε of each bias layer", unit="model units")


class Init(Strict):
    """The parameters the twin starts with (half-Xavier weights, zero biases)."""

    gains: list[Positive] = _f(description="half-Xavier gain of each weight layer", unit="1")
    seed: Seed = _f(0, "seed of the starting weights", "1")


class KnobErrors(Strict):
    """Gain and offset errors of each knob → parameter response, unknown to the engine."""

    gain_low: Positive = _f(1.0, "lowest knob gain (log-uniform between gain_low and gain_high)", "1")
    gain_high: Positive = _f(1.0, "highest knob gain", "1")
    offset: Annotated[float, Field(ge=0, allow_inf_nan=False)] = _f(
        0.0, "largest knob offset (uniform in ±offset)", "model units"
    )
    seed: Seed = _f(0, "seed of the drawn errors", "1")

    @model_validator(mode="after")
    def _ordered(self) -> KnobErrors:
        if self.gain_low > self.gain_high:
            raise ValueError(f"gain_low ({self.gain_low:g}) must not exceed gain_high ({self.gain_high:g})")
        return self


class SpringLattice(Strict):
    """A triangulated strip of springs: bottom row pinned, inputs on the left edge."""

    rows: int = _f(description="rows of nodes", unit="1", ge=3, le=50)
    cols: int = _f(description="nodes per row", unit="1", ge=3, le=50)
    inputs: int = _f(2, "driven nodes on the left edge (one input each)", "1", ge=1)
    output_pairs: list[tuple[int, int]] = _f(
        description="node pairs whose distance is each output (node index = row·cols + col)", unit="1"
    )
    eps: Positive = _f(description="compliance in series with every rest-length actuator", unit="model units")
    stiffness_spread: Annotated[float, Field(ge=0, lt=1)] = _f(
        0.2, "spring constants are 1 ± this (device mismatch)", "1"
    )
    seed: Seed = _f(0, "seed of the stiffnesses", "1")

    @model_validator(mode="after")
    def _fits(self) -> SpringLattice:
        n = self.rows * self.cols
        problems: list[tuple[tuple, str]] = []
        if self.inputs > self.rows - 1:
            problems.append((("inputs",), f"at most {self.rows - 1} inputs on a lattice of {self.rows} rows"))
        for k, (a, b) in enumerate(self.output_pairs):
            if not (0 <= a < n and 0 <= b < n) or a == b:
                problems.append((("output_pairs", k), f"nodes must be two different indices in 0..{n - 1}"))
        _problems("SpringLattice", problems)
        return self

    @property
    def n_edges(self) -> int:
        """Edges of the lattice: within rows, and two to the next row per node (fewer at the ends)."""
        r, c = self.rows, self.cols
        return r * (c - 1) + (r - 1) * (2 * c - 1)


class Simulation(Strict):
    """The twin: a layered Hopfield-like network, or an elastic spring network, with floating parameters."""

    model: Literal["hopfield", "spring"] = _f("hopfield", "the twin's physics model")
    layers: list[Annotated[int, Field(gt=0, le=MAX_LAYER)]] | None = _f(
        None, "hopfield: units per layer, inputs first", unit="1", min_length=2
    )
    epsilon: Epsilon | None = _f(None, "hopfield: couplings of parameters to knobs")
    hidden_clip: tuple[Finite, Finite] = _f((0.0, 1.0), "range of hidden states [low, high]", "model units")
    output_clip: tuple[Finite, Finite] = _f((-1.0, 2.0), "range of output states [low, high]", "model units")
    init: Init | None = _f(None, "hopfield: starting parameters")
    spring: SpringLattice | None = _f(None, "spring: the lattice, its compliance and its sensors")
    tolerance: Positive = _f(1e-9, "relaxation tolerance", "model units")
    max_sweeps: int = _f(10_000, "cap on relaxation sweeps", "1", gt=0)
    strict_stability: bool = _f(True, "raise when a relaxation jumps from an unstable state")
    knob_errors: KnobErrors = _f(KnobErrors(), "non-idealities: knob gain and offset errors")
    adc_noise: Annotated[float, Field(ge=0, allow_inf_nan=False)] = _f(
        0.0, "non-ideality: noise σ of every reading", "model units"
    )
    dac_bits: int | None = _f(None, "non-ideality: resolution of every voltage output over its range", "1", ge=1, le=32)
    settling_tau: quantity(SECOND, "non-ideality: first-order settling time constant", ge=0, le=3600) = 0.0
    latency: quantity(SECOND, "non-ideality: time each instrument call takes", ge=0, le=60) = 0.0
    drift: Annotated[float, Field(ge=0, allow_inf_nan=False)] = _f(
        0.0, "non-ideality: drift of every knob → parameter offset", "model units/s"
    )
    timeout_every: int = _f(0, "fault injection: every N-th instrument call times out (0: never)", "1", ge=0)
    disconnect_after: int = _f(
        0, "fault injection: every instrument stops answering after N calls (0: never)", "1", ge=0
    )
    stuck_params: list[Annotated[int, Field(ge=0)]] = _f(
        [], "fault injection: parameter readbacks (role positions) stuck at their first reading", "1"
    )
    noise_seed: Seed = _f(0, "seed of the noise and drift", "1")

    @model_validator(mode="after")
    def _shapes(self) -> Simulation:
        problems: list[tuple[tuple, str]] = []
        if self.model == "spring":
            if self.spring is None:
                problems.append((("spring",), "a spring twin needs its 'spring:' lattice"))
            for key in ("layers", "epsilon", "init"):
                if getattr(self, key) is not None:
                    problems.append(((key,), f"'{key}' belongs to the hopfield model, not to model: spring"))
            _problems("Simulation", problems)
            return self
        for key in ("layers", "epsilon", "init"):
            if getattr(self, key) is None:
                problems.append(((key,), f"the hopfield model needs '{key}'"))
        if self.spring is not None:
            problems.append((("spring",), "'spring' belongs to model: spring"))
        if problems:
            _problems("Simulation", problems)
        if self.n_params > MAX_PARAMS:
            _problems(
                "Simulation",
                [(("layers",), f"{self.n_params} parameters, more than {MAX_PARAMS} (use smaller layers)")],
            )
        n = len(self.layers) - 1
        for key in ("weights", "biases"):
            have = len(getattr(self.epsilon, key))
            if have != n:
                problems.append((("epsilon", key), f"needs {n} values, one per layer of {self.layers}; has {have}"))
        if len(self.init.gains) != n:
            problems.append((("init", "gains"), f"needs {n} values, one per layer of {self.layers}"))
        for name in ("hidden_clip", "output_clip"):
            lo, hi = getattr(self, name)
            if not lo < hi:
                problems.append(((name,), f"must be [low, high] with low < high, got [{lo:g}, {hi:g}]"))
        _problems("Simulation", problems)
        return self

    @property
    def n_inputs(self) -> int:
        return self.spring.inputs if self.model == "spring" else self.layers[0]

    @property
    def n_outputs(self) -> int:
        return len(self.spring.output_pairs) if self.model == "spring" else self.layers[-1]

    @property
    def n_params(self) -> int:
        """Trainable parameters (= knobs = parameter readbacks): weights and biases, or rest lengths."""
        if self.model == "spring":
            return self.spring.n_edges
        ls = self.layers
        return sum(a * b for a, b in zip(ls[:-1], ls[1:])) + sum(ls[1:])

    def describe(self) -> str:
        if self.model == "spring":
            return f"spring lattice {self.spring.rows}x{self.spring.cols}"
        return f"network {self.layers}"
