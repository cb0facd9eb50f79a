"""The twin: a layered Hopfield-like network, a spring lattice, an energy-defined system or a plug-in.

Only names and paths are checked here: a protocol that names a Python module (``model: energy``)
or a plug-in twin (any other registered name, entry-point group ``aeqlab.twins``) runs code,
and that code is imported when the twin is built (``--sim``, ``plan``, ``gradcheck``, runs),
never by ``validate`` or ``schema``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationInfo, field_validator, model_validator

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


class EnergyInit(Strict):
    """Starting parameters drawn uniformly in [low, high] (device spread)."""

    low: Finite = _f(description="lowest starting parameter", unit="model units")
    high: Finite = _f(description="highest starting parameter", unit="model units")
    seed: Seed = _f(0, "seed of the draw", "1")


class EnergyTwin(Strict):
    """A system given by its internal energy E(s, θ; x), a Python function in a module you name.

    aeqlab adds the knob couplings Σ(u − θ)²/2ε and the nudging −I·s[outputs] and relaxes the
    total (projected Newton, L-BFGS-B inside the bounds when Newton cannot start). The module
    is imported when the twin is built, never by validate or schema.
    """

    module: str = _f(
        description="a .py file (relative to the protocol's folder) or an importable module name; imported only "
        "for --sim, plan, gradcheck and runs"
    )
    function: str = _f("energy", "the energy function energy(s, theta, x, **constants) -> float")
    gradient: str | None = _f(
        None, "optional derivative function (s, theta, x, **constants) -> (dE/ds, dE/dtheta); else central "
        "finite differences of the energy"
    )
    hessian: str | None = _f(
        None, "optional second-derivative function (s, theta, x, **constants) -> the square matrix of d2E over "
        "(s, theta), states first; else central finite differences of the gradient"
    )
    inputs: int = _f(description="clamped inputs x", unit="1", gt=0, le=MAX_LAYER)
    states: int = _f(description="state variables s", unit="1", gt=0, le=MAX_LAYER)
    outputs: list[Annotated[int, Field(ge=0)]] = _f(description="indices into s of the outputs", unit="1", min_length=1)
    params: int = _f(description="floating parameters theta (= knobs = readbacks)", unit="1", gt=0, le=MAX_PARAMS)
    epsilon: Positive | list[Positive] = _f(description="coupling of each parameter to its knob", unit="model units")
    theta0: list[Finite] | EnergyInit = _f(
        description="starting parameters: a list, or {low, high, seed}", unit="model units"
    )
    state_bounds: tuple[float, float] | None = _f(None, "box of every state [low, high]", "model units")
    param_bounds: tuple[float, float] | None = _f(None, "box of every parameter [low, high]", "model units")
    constants: dict[str, Any] = _f({}, "keyword arguments passed to the energy and derivative functions")

    @field_validator("module")
    @classmethod
    def _module(cls, v: str, info: ValidationInfo) -> str:
        if not (v.endswith(".py") or "/" in v or "\\" in v):
            if not all(part.isidentifier() for part in v.split(".")):
                raise ValueError(f"{v!r} is neither a .py file nor a module name such as 'mypackage.physics'")
            return v
        p = Path(v)
        base = (info.context or {}).get("base_dir")
        if not p.is_absolute() and base is not None:
            p = Path(base) / p
        if base is not None and not p.is_file():
            raise ValueError(f"no such file {str(p)!r} (a path relative to the protocol's folder)")
        return str(p)

    @model_validator(mode="after")
    def _fits(self) -> EnergyTwin:
        problems: list[tuple[tuple, str]] = []
        for k, i in enumerate(self.outputs):
            if i >= self.states:
                problems.append((("outputs", k), f"state index {i} beyond the states 0..{self.states - 1}"))
        if len(set(self.outputs)) != len(self.outputs):
            problems.append((("outputs",), "each output is a different state"))
        if isinstance(self.epsilon, list) and len(self.epsilon) != self.params:
            problems.append((("epsilon",), f"one value, or {self.params} (one per parameter); has {len(self.epsilon)}"))
        if isinstance(self.theta0, list) and len(self.theta0) != self.params:
            problems.append((("theta0",), f"needs {self.params} values, one per parameter; has {len(self.theta0)}"))
        if isinstance(self.theta0, EnergyInit) and not self.theta0.low <= self.theta0.high:
            problems.append((("theta0",), "low must not exceed high"))
        for key in ("state_bounds", "param_bounds"):
            box = getattr(self, key)
            if box is not None and not box[0] < box[1]:
                problems.append(((key,), f"must be [low, high] with low < high, got [{box[0]:g}, {box[1]:g}]"))
        _problems("EnergyTwin", problems)
        return self


BUILTIN_MODELS = ("hopfield", "spring", "energy")
MODEL_SECTIONS = {"hopfield": ("layers", "epsilon", "init"), "spring": ("spring",), "energy": ("energy",)}


class Simulation(Strict):
    """The twin: a Hopfield-like network, a spring network, an energy-defined system or a plug-in twin."""

    model: str = _f(
        "hopfield",
        "the twin's physics: hopfield, spring, energy, or the name of a plug-in twin (entry-point group "
        "aeqlab.twins; resolved, and its code imported, at run time: validate checks only the name's form)",
        pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$",
        max_length=80,
    )
    layers: list[Annotated[int, Field(gt=0, le=MAX_LAYER)]] | None = _f(
        None, "hopfield: units per layer, inputs first", unit="1", min_length=2
    )
    epsilon: Epsilon | None = _f(None, "hopfield: couplings of parameters to knobs")
    hidden_clip: tuple[Finite, Finite] = _f((0.0, 1.0), "range of hidden states [low, high]", "model units")
    output_clip: tuple[Finite, Finite] = _f((-1.0, 2.0), "range of output states [low, high]", "model units")
    init: Init | None = _f(None, "hopfield: starting parameters")
    spring: SpringLattice | None = _f(None, "spring: the lattice, its compliance and its sensors")
    energy: EnergyTwin | None = _f(None, "energy: the module and function giving the energy, sizes and couplings")
    options: dict[str, Any] = _f({}, "a plug-in twin: the mapping passed to its factory")
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
        own = MODEL_SECTIONS.get(self.model, ())
        for model, keys in MODEL_SECTIONS.items():
            for key in keys:
                if model != self.model and key not in own and getattr(self, key) is not None:
                    problems.append(((key,), f"'{key}' belongs to model: {model}, not to model: {self.model}"))
        if self.options and self.model in BUILTIN_MODELS:
            problems.append((("options",), f"'options' is for a plug-in twin; model: {self.model} is built in"))
        if self.model in ("spring", "energy"):
            if getattr(self, self.model) is None:
                problems.append(((self.model,), f"a {self.model} twin needs its '{self.model}:' section"))
            _problems("Simulation", problems)
            return self
        if self.model != "hopfield":  # a plug-in: its sizes are known when it is built
            _problems("Simulation", problems)
            return self
        for key in ("layers", "epsilon", "init"):
            if getattr(self, key) is None:
                problems.append(((key,), f"the hopfield model needs '{key}'"))
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
    def plugin(self) -> bool:
        """A twin found by entry point: its sizes are known only when it is built."""
        return self.model not in BUILTIN_MODELS

    @property
    def n_inputs(self) -> int | None:
        if self.model == "spring":
            return self.spring.inputs
        if self.model == "energy":
            return self.energy.inputs
        return None if self.plugin else self.layers[0]

    @property
    def n_outputs(self) -> int | None:
        if self.model == "spring":
            return len(self.spring.output_pairs)
        if self.model == "energy":
            return len(self.energy.outputs)
        return None if self.plugin else self.layers[-1]

    @property
    def n_params(self) -> int | None:
        """Trainable parameters (= knobs = parameter readbacks); None for a plug-in (known when built)."""
        if self.model == "spring":
            return self.spring.n_edges
        if self.model == "energy":
            return self.energy.params
        if self.plugin:
            return None
        ls = self.layers
        return sum(a * b for a, b in zip(ls[:-1], ls[1:])) + sum(ls[1:])

    def describe(self) -> str:
        if self.model == "spring":
            return f"spring lattice {self.spring.rows}x{self.spring.cols}"
        if self.model == "energy":
            e = self.energy
            return f"energy-defined system {Path(e.module).name}:{e.function}"
        if self.plugin:
            return f"plug-in twin {self.model!r}"
        return f"network {self.layers}"

    def coupling_text(self) -> str:
        """The couplings the protocol sets, for messages."""
        if self.model == "hopfield":
            return f"epsilon weights {self.epsilon.weights}, biases {self.epsilon.biases}"
        if self.model == "spring":
            return f"spring.eps {self.spring.eps}"
        if self.model == "energy":
            return f"energy.epsilon {self.energy.epsilon}"
        return "the plug-in's couplings"

    @property
    def epsilon_place(self) -> str:
        return {"hopfield": "simulation.epsilon", "spring": "simulation.spring.eps"}.get(
            self.model, "simulation.energy.epsilon" if self.model == "energy" else "simulation.options"
        )
