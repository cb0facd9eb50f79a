"""The protocol model: every section of a protocol file as a strict pydantic model.

Values are SI floats (volts, amperes, seconds) unless a field says *model units*;
quantity fields also accept strings with units (``5 ms``, ``1 uA``, see
:mod:`aeqlab.protocol.units`). Every mapping forbids unknown keys. Cross-field checks (role
sizes, channel use, limits against capabilities and safety maxima, data width)
report each problem at its own key path. Loading files (line numbers, ``extends``,
one line per problem) lives in :mod:`aeqlab.protocol.loader`.
"""

from __future__ import annotations

import difflib
import math
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from aeqlab.protocol.units import AMPERE, AMPERE_PER_SECOND, SECOND, VOLT, VOLT_PER_SECOND, quantity

ROLE_NAMES = ("inputs", "outputs", "knobs", "params", "nudges")
SOURCE_ROLES = ("inputs", "knobs", "nudges")  # roles that drive the system (safety maxima apply)
_CHANNEL_RE = re.compile(r"^(?P<inst>[A-Za-z_][\w-]*)/(?P<prefix>[A-Za-z_]*)(?P<a>\d+)(?::(?P<b>\d+))?$")
_SERIAL_RE = re.compile(r"^(/dev/\S+|COM\d+|ASRL\S*|loop://\S*|socket://\S+|rfc2217://\S+)$", re.IGNORECASE)

BUILTIN_DATASETS = {"iris": (4, 3), "digits": (64, 10), "xor": (2, 2)}  # (features, classes)
BUILTIN_SIZES = {"iris": 150, "digits": 1797}  # examples (xor's four points are train and test)


def _f(default: Any = ..., description: str = "", unit: str | None = None, **kw: Any) -> Any:
    """A field with a description and, for numbers, its unit in the JSON Schema (``x-unit``)."""
    extra = {"x-unit": unit} if unit else None
    return Field(default, description=description, json_schema_extra=extra, **kw)


def _problems(title: str, problems: list[tuple[tuple, str]]) -> None:
    """Raise every cross-field problem at once, each at its own key path."""
    if problems:
        raise ValidationError.from_exception_data(
            title,
            [
                InitErrorDetails(type=PydanticCustomError("cross_field", msg), loc=loc, input=None)
                for loc, msg in problems
            ],
        )


class Strict(BaseModel):
    """Base of every section: unknown keys are refused, values cannot change."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


Finite = Annotated[float, Field(allow_inf_nan=False)]
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]  # what every random generator (numpy, scikit-learn) accepts
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Volt = quantity(VOLT, "a voltage")
Amp = quantity(AMPERE, "a current")


# ------------------------------------------------------------------ channels and roles
class ChannelRef(Strict):
    """A parsed channel reference such as ``dac/ao0:7`` (channels 0 to 7 of ``dac``)."""

    instrument: str
    prefix: str
    first: int
    last: int

    @classmethod
    def parse(cls, text: str) -> ChannelRef:
        """Parse ``instrument/[prefix]first[:last]``; raises ValueError with the expected form."""
        m = _CHANNEL_RE.match(text.strip())
        if not m:
            raise ValueError(f"{text!r} is not a channel reference like 'dac/ao0:7' or 'adc/ai3'")
        a = int(m["a"])
        b = int(m["b"]) if m["b"] is not None else a
        if b < a:
            raise ValueError(f"{text!r}: the range runs backwards (write '{m['inst']}/{m['prefix']}{b}:{a}')")
        if b - a >= 1_000_000:
            raise ValueError(f"{text!r}: more than a million channels")
        return cls(instrument=m["inst"], prefix=m["prefix"], first=a, last=b)

    @property
    def count(self) -> int:
        return self.last - self.first + 1


def _limits_and_calibration(kind: Any, unit: str) -> tuple[type[Strict], type[Strict]]:
    class Limits(Strict):
        __doc__ = f"Allowed SI range ({unit}) of every channel of a role; checked before any value is sent."

        low: quantity(kind, f"lowest value any channel of the role may be set to or read at ({unit})")
        high: quantity(kind, f"highest value any channel of the role may be set to or read at ({unit})")

        @model_validator(mode="after")
        def _ordered(self) -> Limits:
            if not self.low < self.high:
                raise ValueError(f"low ({self.low:g} {unit}) must be below high ({self.high:g} {unit})")
            return self

    class Calibration(Strict):
        __doc__ = f"Linear map between model units and SI: ``{unit} = offset + scale · model``."

        scale: quantity(kind, f"{unit} per model unit (not zero)") = 1.0
        offset: quantity(kind, f"{unit} at model zero") = 0.0

        @field_validator("scale")
        @classmethod
        def _nonzero(cls, v: float) -> float:
            if v == 0:
                raise ValueError("scale must not be zero")
            return v

    Limits.__name__ = Limits.__qualname__ = f"{kind.name.capitalize()}Limits"
    Calibration.__name__ = Calibration.__qualname__ = f"{kind.name.capitalize()}Calibration"
    return Limits, Calibration


VoltageLimits, VoltageCalibration = _limits_and_calibration(VOLT, "V")
CurrentLimits, CurrentCalibration = _limits_and_calibration(AMPERE, "A")
Limits = VoltageLimits  # the name earlier code used
Calibration = VoltageCalibration


def _listify(v: Any) -> Any:
    return [v] if isinstance(v, str) else v


_CHANNEL_SCHEMA = {"type": "string", "pattern": _CHANNEL_RE.pattern}
Channels = Annotated[
    list[str],
    BeforeValidator(_listify),
    Field(description="channel references in role order, e.g. 'dac/ao0:3' or a list of them", min_length=1),
    WithJsonSchema(
        {
            "anyOf": [_CHANNEL_SCHEMA, {"type": "array", "items": _CHANNEL_SCHEMA, "minItems": 1}],
            "description": "channel references in role order: 'instrument/prefixFIRST[:LAST]', or a list of them",
        }
    ),
]


class _RoleBase(Strict):
    channels: Channels

    @field_validator("channels")
    @classmethod
    def _parse(cls, v: list[str]) -> list[str]:
        for text in v:
            ChannelRef.parse(text)
        return v

    def refs(self) -> list[ChannelRef]:
        """The parsed channel references, in role order."""
        return [ChannelRef.parse(t) for t in self.channels]

    @property
    def size(self) -> int:
        """Number of channels."""
        return sum(r.count for r in self.refs())


class VoltageRole(_RoleBase):
    """Channels of a voltage role (inputs, knobs, outputs, params), their limits and calibration."""

    limits: VoltageLimits | None = _f(None, "SI limits (V) applied to each channel; none: the instrument's range")
    calibration: VoltageCalibration = _f(VoltageCalibration(), "V = offset + scale · model")
    unit: Literal["V"] = _f("V", "SI unit of the role (voltage roles are in volts)")


class CurrentRole(_RoleBase):
    """Channels of a current role (nudges), their limits and calibration."""

    limits: CurrentLimits | None = _f(None, "SI limits (A) applied to each channel; none: the instrument's range")
    calibration: CurrentCalibration = _f(CurrentCalibration(), "A = offset + scale · model")
    unit: Literal["A"] = _f("A", "SI unit of the role (nudges are currents, in amperes)")


Role = VoltageRole | CurrentRole


class Roles(Strict):
    """The five roles of a bench, each a list of instrument channels."""

    inputs: VoltageRole = _f(description="sources that apply the input x (V)")
    outputs: VoltageRole = _f(description="readbacks of the output nodes ŷ (V)")
    knobs: VoltageRole = _f(description="sources that steer the floating parameters (V)")
    params: VoltageRole = _f(description="readbacks of the parameters θ, one per knob, same order (V)")
    nudges: CurrentRole = _f(description="current sources into the output nodes, one per output (A)")

    @model_validator(mode="after")
    def _wiring(self) -> Roles:
        problems: list[tuple[tuple, str]] = []
        used: dict[tuple[str, int], str] = {}
        for name in ROLE_NAMES:
            role = getattr(self, name)
            for i, ref in enumerate(role.refs()):
                for c in range(ref.first, ref.last + 1):
                    other = used.get((ref.instrument, c))
                    if other is not None:
                        problems.append(
                            (
                                (name, "channels", i),
                                f"channel {ref.instrument}/{ref.prefix}{c} is already used by roles.{other} "
                                "(every channel has one role)",
                            )
                        )
                        break
                    used[(ref.instrument, c)] = name
        if self.knobs.size != self.params.size:
            problems.append(
                (
                    ("params", "channels"),
                    f"every knob needs a parameter readback: {self.knobs.size} knobs, {self.params.size} params",
                )
            )
        if self.nudges.size != self.outputs.size:
            problems.append(
                (
                    ("nudges", "channels"),
                    f"one nudge channel per output: {self.outputs.size} outputs, {self.nudges.size} nudges",
                )
            )
        _problems("Roles", problems)
        return self


# ------------------------------------------------------------------ instruments
@lru_cache(maxsize=1)
def _driver_names() -> list[str] | None:
    """Names in the drivers' registry (read once per process), or None when there is no registry."""
    try:
        from drivers import registry
    except ImportError:
        return None
    return list(registry.names())


@lru_cache(maxsize=64)
def _options_model(driver: str) -> type[BaseModel] | None:
    try:
        from drivers import registry

        return registry.options_model(driver)
    except Exception:  # noqa: BLE001 - a driver whose package is missing cannot check its options here
        return None


class Ramp(Strict):
    """How a source moves: at most ``step`` per write, at most ``rate`` per second."""

    step: quantity((VOLT, AMPERE), "largest change per write, in the source's unit", True, gt=0) = None
    rate: quantity((VOLT_PER_SECOND, AMPERE_PER_SECOND), "largest change per second", True, gt=0) = None


class InstrumentConfig(Strict):
    """One instrument: its driver, how to reach it, and what it can do.

    ``driver: sim`` is a simulated instrument over the twin and needs no connection.
    """

    driver: str = _f(description="driver name from the registry (see 'aeqlab schema'), or 'sim'")
    channels: int | None = _f(None, "channel count (default: what the roles use)", "1", gt=0)
    resource: str | None = _f(
        None,
        "connection: a VISA resource ('TCPIP0::10.0.0.5::5025::SOCKET', 'USB0::...::INSTR'), "
        "a serial port ('/dev/ttyUSB0', 'COM3') or an NI device ('Dev1')",
    )
    baud: int | None = _f(None, "serial baud rate (serial ports only)", "bit/s", gt=0, le=10_000_000)
    timeout: quantity(SECOND, "how long to wait for a reply", gt=0, le=3600) = 2.0
    read_termination: str | None = _f(None, "characters that end a reply, e.g. '\\n'")
    write_termination: str | None = _f(None, "characters that end a command, e.g. '\\n'")
    nplc: float | None = _f(None, "integration time in power-line cycles (measuring instruments)", "PLC", gt=0, le=100)
    ramp: Ramp | None = _f(None, "ramp every source change (step and rate); none: jump")
    voltage_range: tuple[Volt, Volt] = _f((-10.0, 10.0), "what the instrument can output or measure [low, high]", "V")
    current_range: tuple[Amp, Amp] = _f((-0.1, 0.1), "what the instrument can source [low, high]", "A")
    options: dict[str, Any] = _f(
        {}, "driver-specific options, declared by the driver (its Options model in drivers.registry)"
    )

    @field_validator("driver")
    @classmethod
    def _known(cls, v: str) -> str:
        names = _driver_names()
        if v == "sim" or names is None or v in names:
            return v
        close = difflib.get_close_matches(v, ["sim", *names], n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"use 'sim' or one of {', '.join(names)}"
        raise ValueError(f"unknown driver {v!r} ({hint})")

    @model_validator(mode="after")
    def _connection(self) -> InstrumentConfig:
        problems: list[tuple[tuple, str]] = []
        for name in ("voltage_range", "current_range"):
            lo, hi = getattr(self, name)
            if not lo < hi:
                problems.append(((name,), f"must be [low, high] with low < high, got [{lo:g}, {hi:g}]"))
        if self.baud is not None and self.resource and not _SERIAL_RE.match(self.resource):
            problems.append((("baud",), f"baud applies to serial ports only, and {self.resource!r} is not one"))
        model = _options_model(self.driver)
        if model is not None:
            try:
                model.model_validate(self.options)
            except ValidationError as exc:
                for e in exc.errors():
                    msg = e["msg"].removeprefix("Value error, ")
                    if e["type"] == "extra_forbidden" and len(e["loc"]) == 1:
                        key, allowed = str(e["loc"][0]), list(model.model_fields)
                        close = difflib.get_close_matches(key, allowed, n=1)
                        hint = f"did you mean {close[0]!r}?" if close else f"{self.driver} takes: {', '.join(allowed)}"
                        msg = f"unknown option {key!r} for driver {self.driver!r} ({hint})"
                    problems.append((("options", *e["loc"]), msg))
        elif self.options and self.driver == "sim":
            problems.append((("options",), "driver 'sim' takes no options"))
        _problems("InstrumentConfig", problems)
        return self

    @property
    def connection_kind(self) -> str | None:
        """``visa``, ``serial``, ``nidaq`` or None (no resource)."""
        r = self.resource
        if not r:
            return None
        if _SERIAL_RE.match(r):
            return "serial"
        if "::" in r:
            return "visa"
        return "nidaq"


# ------------------------------------------------------------------ the twin
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
    layers: list[Annotated[int, Field(gt=0, le=100_000)]] | None = _f(
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


# ------------------------------------------------------------------ data
class Dataset(Strict):
    """A built-in data set, or a CSV/NPZ file; split, and scaled into the inputs' model range."""

    name: Literal["iris", "digits", "xor"] | None = _f(None, "built-in data set (or give 'path')")
    path: str | None = _f(
        None, "a .csv (header row, one example per row) or .npz (arrays x, y) file, relative to the protocol"
    )
    columns: list[str] | None = _f(None, "CSV: the input columns, in input order (default: all but the label)")
    label: str = _f("label", "CSV: the column of integer class labels; NPZ: the labels array")
    features: str = _f("x", "NPZ: the array of inputs (examples × features)")
    feature_range: tuple[Finite, Finite] | None = _f(
        None, "raw feature values mapped to input_range (default: each feature's min and max)", "data units"
    )
    test_size: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = _f(
        None, "held-out examples: a count, or a fraction when below 1", "1"
    )
    seed: Seed = _f(0, "seed of the split", "1")
    stratify: bool = _f(True, "keep class proportions in the split (classification)")
    task: Literal["classification", "regression"] = _f(
        "classification", "classification: integer labels, one-hot targets; regression: the targets themselves"
    )
    input_range: tuple[Finite, Finite] = _f((0.0, 1.0), "inputs are scaled into this range", "model units")
    target_range: tuple[Finite, Finite] = _f((0.0, 1.0), "one-hot off/on values", "model units")

    @field_validator("path")
    @classmethod
    def _resolve(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None:
            return v
        p = Path(v)
        if p.suffix.lower() not in (".csv", ".npz"):
            raise ValueError(f"{v!r}: a data file is .csv or .npz")
        base = (info.context or {}).get("base_dir")
        if not p.is_absolute() and base is not None:
            p = Path(base) / p
        if base is not None and not p.is_file():
            raise ValueError(f"no such data file {str(p)!r} (paths are relative to the protocol file)")
        return str(p)

    @model_validator(mode="after")
    def _source(self) -> Dataset:
        problems: list[tuple[tuple, str]] = []
        if (self.name is None) == (self.path is None):
            problems.append((("name",), "give either a built-in 'name' (iris, digits, xor) or a 'path', not both"))
        for key in ("input_range", "target_range", "feature_range"):
            box = getattr(self, key)
            if box is not None and not box[0] < box[1]:
                problems.append(((key,), f"must be [low, high] with low < high, got [{box[0]:g}, {box[1]:g}]"))
        n = BUILTIN_SIZES.get(self.name or "")
        if n is not None and self.test_size is not None:
            classes = BUILTIN_DATASETS[self.name][1]
            count = int(self.test_size) if self.test_size >= 1 else math.ceil(self.test_size * n)
            if not classes <= count <= n - classes:
                problems.append(
                    (
                        ("test_size",),
                        f"{self.name} has {n} examples in {classes} classes: hold out between {classes} and "
                        f"{n - classes} (a count), or a fraction that gives that many",
                    )
                )
        _problems("Dataset", problems)
        return self

    def shape(self) -> tuple[int, int] | None:
        """(features, classes) when known without loading (built-in sets), else None."""
        return BUILTIN_DATASETS.get(self.name) if self.name else None


# ------------------------------------------------------------------ method
class Homeostasis(Strict):
    """The feedback loop that holds every measured parameter at its target."""

    tolerance: Positive = _f(1e-6, "max |θ − θ*| per channel", "model units")
    gain: Positive = _f(1.0, "fraction of the estimated correction applied per step", "1", le=2.0)
    max_iterations: int = _f(100, "cap on feedback steps per phase", "1", gt=0)
    memory: int = _f(5, "steps mixed by Anderson acceleration", "1", ge=0)
    averages: int = _f(
        1, "readings averaged at every step (noisy readbacks: noise falls as 1/√averages)", "1", ge=1, le=1000
    )


class Tracking(Strict):
    """Tracking nudging: currents re-measured until I = β(y − ŷ)."""

    tolerance: Positive = _f(1e-7, "max |I − β(y − ŷ)|", "model units")
    max_iterations: int = _f(100, "cap on tracking steps", "1", gt=0)


class SettleFixed(Strict):
    """Settle by waiting a fixed time."""

    mode: Literal["fixed"] = _f("fixed", "wait a fixed time")
    time: quantity(SECOND, "the wait", ge=0, le=3600) = 1e-3


class SettleUntilStable(Strict):
    """Settle by reading until consecutive readings agree, or a timeout."""

    mode: Literal["until_stable"] = _f(description="read until stable")
    tolerance: Positive = _f(description="largest change between consecutive readings", unit="model units")
    timeout: quantity(SECOND, "give up after this long", gt=0, le=3600)
    interval: quantity(SECOND, "wait between readings", gt=0, le=3600) = 1e-3

    @model_validator(mode="after")
    def _order(self) -> SettleUntilStable:
        if self.interval > self.timeout:
            raise ValueError(f"interval ({self.interval:g} s) must not exceed timeout ({self.timeout:g} s)")
        return self


ADAPTIVE_MAX_TAUS = 20.0  # the adaptive settle's default longest wait, in τ: enough for Δ/tol up to e^20 ≈ 5e8


class SettleAdaptive(Strict):
    """Settle for as long as a first-order settle of the expected change needs.

    Each wait is ``clip(τ·ln(Δ̂/tolerance), min, max)`` (zero when Δ̂ ≤ tolerance), where Δ̂
    is the engine's prediction of how far the readings (θ and ŷ) move across this settle,
    from the changes it has observed so far (never from a model of the physics). Before
    anything is known the wait is ``max``.
    """

    mode: Literal["adaptive"] = _f(description="wait τ·ln(Δ̂/tolerance) for the change Δ̂ the engine expects")
    tau: quantity(SECOND, "the bench's settling time constant τ ('aeqlab calibrate' measures it)", gt=0, le=3600)
    tolerance: Positive | None = _f(
        None, "how close to equilibrium a reading must be (default: method.homeostasis.tolerance)", "model units"
    )
    max: quantity(
        SECOND,
        f"longest single wait, and the wait before anything has been observed (default {ADAPTIVE_MAX_TAUS:g} τ)",
        optional=True,
        gt=0,
        le=3600,
    ) = None
    min: quantity(SECOND, "shortest wait", ge=0, le=3600) = 0.0

    @property
    def longest(self) -> float:
        """The longest single wait in seconds (``max``, or its default of 20 τ)."""
        return self.max if self.max is not None else ADAPTIVE_MAX_TAUS * self.tau

    @model_validator(mode="after")
    def _order(self) -> SettleAdaptive:
        problems: list[tuple[tuple, str]] = []
        if self.max is not None and self.max < self.tau:
            problems.append(
                (("max",), f"must be at least tau ({self.tau:g} s), got {self.max:g} s: a shorter wait cannot settle")
            )
        elif self.min > self.longest:
            problems.append((("min",), f"must not exceed max ({self.longest:g} s), got {self.min:g} s"))
        _problems("SettleAdaptive", problems)
        return self


def _settle_shorthand(v: Any) -> Any:
    """``settle: 5 ms`` (or a number of seconds) is ``{mode: fixed, time: 5 ms}``."""
    if isinstance(v, int | float | str) and not isinstance(v, bool):
        return {"mode": "fixed", "time": v}
    return v


SettlePolicy = Annotated[
    SettleFixed | SettleUntilStable | SettleAdaptive,
    BeforeValidator(_settle_shorthand),
    Field(discriminator="mode"),
]


class Spsa(Strict):
    """SPSA baseline: simultaneous perturbation of every parameter, two loss readings per sample.

    Gains follow Spall's sequences: a_k = a/(k + 1 + A)^alpha, c_k = c/(k + 1)^gamma.
    """

    a: Positive = _f(0.05, "step gain a", "model units")
    c: Positive = _f(0.01, "perturbation size c: θ is held at θ* ± c_k·Δ", "model units")
    alpha: float = _f(0.602, "decay exponent of the step gain", "1", ge=0, le=1)
    gamma: float = _f(0.101, "decay exponent of the perturbation size", "1", ge=0, le=1)
    stability: float = _f(0.0, "stability constant A of the step gain", "samples", ge=0)
    seed: Seed = _f(0, "seed of the perturbation directions Δ (±1 each)", "1")


class Exact(Strict):
    """Exact-gradient baseline (twin only): θ* ← θ* − scale·β·ε⊙∇L, with the oracle's ∇L."""

    scale: Positive = _f(1.0, "step relative to β·ε (what an Aeqprop step of strength β approaches)", "1")


class Method(Strict):
    """The training method: Aeqprop (its variant, nudging and feedback loops), or a baseline."""

    name: Literal["aeqprop", "spsa", "exact"] = _f(
        "aeqprop", "training method: aeqprop, or the baselines spsa (order zero) and exact (twin's oracle gradient)"
    )
    variant: Literal["centered", "optimistic", "pessimistic"] = _f(
        "centered", "(β₁, β₂): centered (−β/2, β/2), optimistic (0, β), pessimistic (−β, 0)"
    )
    beta: Positive = _f(1.0, "nudging strength β", "model units")
    nudging: Literal["tracking", "linearized"] = _f(
        "tracking", "tracking: I = β(y − ŷ) re-measured; linearized: fixed from the free phase"
    )
    homeostasis: Homeostasis = _f(Homeostasis(), "feedback that holds θ at its targets")
    tracking: Tracking = _f(Tracking(), "tracking nudging's loop")
    settle_policy: SettlePolicy = Field(
        default_factory=SettleFixed,
        alias="settle",
        description="settle policy: a wait such as '1 ms', {mode: until_stable, tolerance, timeout}, "
        "or {mode: adaptive, tau}: τ·ln(Δ̂/tolerance) for the change Δ̂ expected",
    )
    free_phase_homeostasis: bool = _f(True, "hold θ at its targets while predicting")
    spsa: Spsa = _f(Spsa(), "options of method spsa")
    exact: Exact = _f(Exact(), "options of method exact")

    @property
    def settle(self) -> float:
        """The settle wait in seconds (for ``until_stable`` its timeout, for ``adaptive`` its max: the longest wait)."""
        p = self.settle_policy
        if isinstance(p, SettleFixed):
            return p.time
        return p.longest if isinstance(p, SettleAdaptive) else p.timeout

    @model_validator(mode="after")
    def _tracking_singularity(self) -> Method:
        if self.name != "aeqprop":
            return self._baseline_checks()
        if self.nudging == "tracking" and self.variant in ("centered", "pessimistic"):
            beta1 = -self.beta / 2 if self.variant == "centered" else -self.beta
            if beta1 <= -1:
                _problems(
                    "Method",
                    [
                        (
                            ("beta",),
                            f"tracking nudging is singular at beta1 = {beta1:g} <= -1 "
                            "(lower beta, or use nudging: linearized)",
                        )
                    ],
                )
        return self

    def _baseline_checks(self) -> Method:
        """The baselines move θ through homeostasis targets; SPSA's perturbation must be measurable."""
        problems: list[tuple[tuple, str]] = []
        if not self.free_phase_homeostasis:
            problems.append(
                (("free_phase_homeostasis",), f"method {self.name} moves θ by homeostasis: it must be true")
            )
        if self.name == "spsa" and self.spsa.c <= 10 * self.homeostasis.tolerance:
            problems.append(
                (
                    ("spsa", "c"),
                    f"perturbation {self.spsa.c:g} is not above 10 x homeostasis.tolerance "
                    f"({self.homeostasis.tolerance:g}): θ ± c·Δ could not be told apart",
                )
            )
        _problems("Method", problems)
        return self


# ------------------------------------------------------------------ schedule, safety, output
class BetaStep(Strict):
    """From ``epoch`` on, train at ``beta`` (then decayed by beta_decay each epoch)."""

    epoch: int = _f(description="first epoch at this β", unit="1", ge=1)
    beta: Positive = _f(description="nudging strength from that epoch", unit="model units")


class Schedule(Strict):
    """How long to train, how often to evaluate and checkpoint, and how β changes."""

    epochs: int = _f(10, "training epochs", "1", gt=0, le=1_000_000)
    beta_decay: Positive = _f(1.0, "β is multiplied by this after each epoch", "1", le=1.0)
    beta_steps: list[BetaStep] = _f([], "step schedule of β: [{epoch: 10, beta: 0.2}, ...]")
    shuffle: bool = _f(True, "shuffle the training order every epoch")
    evaluate_every: int = _f(1, "evaluate on the test set every this many epochs", "epochs", gt=0)
    checkpoint_every: int | None = _f(
        None, "save the parameters every this many epochs (none: at the end)", "epochs", gt=0
    )

    @field_validator("beta_steps")
    @classmethod
    def _increasing(cls, v: list[BetaStep]) -> list[BetaStep]:
        epochs = [s.epoch for s in v]
        if epochs != sorted(set(epochs)):
            raise ValueError(f"epochs must increase: {epochs}")
        return v


class Safety(Strict):
    """Global maxima every limit must respect, how fast sources may move, and the safe state."""

    max_voltage: quantity(VOLT, "largest |V| any source or limit may reach", gt=0) = 10.0
    max_current: quantity(AMPERE, "largest |I| any source or limit may reach", gt=0) = 0.1
    voltage_ramp_rate: quantity(VOLT_PER_SECOND, "largest voltage slew of any source", True, gt=0) = None
    current_ramp_rate: quantity(AMPERE_PER_SECOND, "largest current slew of any source", True, gt=0) = None
    safe_state: Literal["zero", "hold"] = _f(
        "zero", "on exit: zero (sources to 0 V / 0 A, outputs off) or hold (voltages kept, currents off)"
    )


class Output(Strict):
    """Where runs are recorded."""

    dir: str = _f("runs", "folder for run folders, relative to the working directory")


# ------------------------------------------------------------------ the protocol
class Protocol(Strict):
    """A whole protocol file."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        title="aeqlab protocol",
        json_schema_extra={"$comment": "generated by 'aeqlab schema'; do not edit"},
    )

    extends: str | None = _f(None, "a base protocol (path relative to this file) whose sections this one overrides")
    name: str = _f(description="short name of the protocol (used in run folder names)", min_length=1)
    description: str = _f("", "what this protocol does")
    seed: Seed = _f(0, "seed of the training order", "1")
    instruments: dict[str, InstrumentConfig] = _f(description="instruments by the name roles use", min_length=1)
    roles: Roles = _f(description="which channels play which role")
    simulation: Simulation | None = _f(None, "the twin (needed for --sim, 'aeqlab plan' and gradcheck)")
    dataset: Dataset = _f(description="what to learn")
    method: Method = _f(Method(), "how to learn")
    schedule: Schedule = _f(Schedule(), "how long and when")
    safety: Safety = _f(Safety(), "global maxima and the safe state")
    output: Output = _f(Output(), "where runs go")

    # where the protocol came from (aeqlab.protocol.text): its text as written, for the run folder
    _source_text: str | None = PrivateAttr(None)
    _source_path: str | None = PrivateAttr(None)
    _source_digest: str | None = PrivateAttr(None)

    def __eq__(self, other: object) -> bool:  # where a protocol was read from is no part of it
        if not isinstance(other, Protocol):
            return NotImplemented
        return self.__dict__ == other.__dict__

    @field_validator("instruments")
    @classmethod
    def _names(cls, v: dict[str, InstrumentConfig]) -> dict[str, InstrumentConfig]:
        for name in v:
            if not re.match(r"^[A-Za-z_][\w-]*$", name):
                raise ValueError(f"instrument name {name!r}: use letters, digits, '_' and '-', starting with a letter")
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> Protocol:
        problems: list[tuple[tuple, str]] = []
        problems += self._check_references()
        problems += self._check_limits()
        problems += self._check_sizes()
        problems += self._check_resolution()
        _problems("Protocol", problems)
        return self

    def _check_resolution(self) -> list[tuple[tuple, str]]:
        """Homeostasis cannot hold a parameter closer than half a knob DAC step: refuse a finer tolerance."""
        sim = self.simulation
        if sim is None or sim.dac_bits is None:
            return []
        knobs = self.roles.knobs
        tol = self.method.homeostasis.tolerance
        for inst in dict.fromkeys(r.instrument for r in knobs.refs()):
            cfg = self.instruments.get(inst)
            if cfg is None:
                continue
            lo, hi = cfg.voltage_range
            half_step = (hi - lo) / 2**sim.dac_bits / 2 / abs(knobs.calibration.scale)
            if tol < half_step:
                return [
                    (
                        ("method", "homeostasis", "tolerance"),
                        f"{tol:g} is below half a step of the {sim.dac_bits}-bit knob DAC {inst} "
                        f"({half_step:.3g} model units over [{lo:g}, {hi:g}] V): homeostasis could never reach it "
                        f"(raise it to at least {half_step:.3g}, or narrow instruments.{inst}.voltage_range)",
                    )
                ]
        return []

    def _check_references(self) -> list[tuple[tuple, str]]:
        out = []
        for role_name in ROLE_NAMES:
            for i, ref in enumerate(getattr(self.roles, role_name).refs()):
                cfg = self.instruments.get(ref.instrument)
                loc = ("roles", role_name, "channels", i)
                if cfg is None:
                    close = difflib.get_close_matches(ref.instrument, list(self.instruments), n=1)
                    hint = f"did you mean {close[0]!r}?" if close else f"have {', '.join(sorted(self.instruments))}"
                    out.append((loc, f"instrument {ref.instrument!r} is not in instruments ({hint})"))
                elif cfg.channels is not None and ref.last >= cfg.channels:
                    out.append((loc, f"{ref.instrument} has only {cfg.channels} channels (0 to {cfg.channels - 1})"))
        return out

    def _check_limits(self) -> list[tuple[tuple, str]]:
        out = []
        safety = self.safety
        for role_name in ROLE_NAMES:
            role = getattr(self.roles, role_name)
            current = role_name == "nudges"
            unit = "A" if current else "V"
            cap_key = "current_range" if current else "voltage_range"
            smax = safety.max_current if current else safety.max_voltage
            for inst in dict.fromkeys(r.instrument for r in role.refs()):
                cfg = self.instruments.get(inst)
                if cfg is None:
                    continue
                lo, hi = getattr(cfg, cap_key)
                if role.limits is not None:
                    if role.limits.low < lo or role.limits.high > hi:
                        out.append(
                            (
                                ("roles", role_name, "limits"),
                                f"[{role.limits.low:g}, {role.limits.high:g}] {unit} is outside what {inst} can do "
                                f"(instruments.{inst}.{cap_key} = [{lo:g}, {hi:g}] {unit})",
                            )
                        )
                elif role_name in SOURCE_ROLES and max(abs(lo), abs(hi)) > smax:
                    out.append(
                        (
                            ("roles", role_name),
                            f"no limits, and {inst} reaches {max(abs(lo), abs(hi)):g} {unit}, beyond the "
                            f"safety maximum {smax:g} {unit} (add limits: {{low: ..., high: ...}})",
                        )
                    )
            if (
                role_name in SOURCE_ROLES
                and role.limits is not None
                and max(abs(role.limits.low), abs(role.limits.high)) > smax
            ):
                key = "max_current" if current else "max_voltage"
                out.append(
                    (
                        ("roles", role_name, "limits"),
                        f"[{role.limits.low:g}, {role.limits.high:g}] {unit} exceeds safety.{key} = {smax:g} {unit}",
                    )
                )
        return out

    def _check_sizes(self) -> list[tuple[tuple, str]]:
        out = []
        sim = self.simulation
        if sim is not None:
            expect = {
                "inputs": sim.n_inputs,
                "outputs": sim.n_outputs,
                "knobs": sim.n_params,
                "params": sim.n_params,
            }
            for role_name, n in expect.items():
                have = getattr(self.roles, role_name).size
                if have != n:
                    out.append(
                        (
                            ("roles", role_name, "channels"),
                            f"{have} channels, but the twin's {sim.describe()} needs {n}",
                        )
                    )
        lim = self.roles.inputs.limits
        if lim is not None:
            cal = self.roles.inputs.calibration
            ends = sorted(cal.offset + cal.scale * v for v in self.dataset.input_range)
            if ends[0] < lim.low or ends[1] > lim.high:
                out.append(
                    (
                        ("dataset", "input_range"),
                        f"inputs span [{ends[0]:g}, {ends[1]:g}] V after calibration, outside roles.inputs.limits "
                        f"[{lim.low:g}, {lim.high:g}] V (narrow input_range or widen the limits)",
                    )
                )
        shape = self.dataset.shape()
        if shape is None and self.dataset.path is not None:
            from aeqlab.datasets import peek_shape

            try:
                shape = peek_shape(self.dataset)
            except (ValueError, OSError) as exc:
                out.append((("dataset", "path"), str(exc)))
        if shape is not None:
            features, classes = shape
            source = self.dataset.name or Path(self.dataset.path or "").name
            if features != self.roles.inputs.size:
                out.append(
                    (
                        ("roles", "inputs", "channels"),
                        f"{self.roles.inputs.size} inputs, but data set {source} has {features} features",
                    )
                )
            if classes is not None and classes != self.roles.outputs.size:
                out.append(
                    (
                        ("roles", "outputs", "channels"),
                        f"{self.roles.outputs.size} outputs, but data set {source} has {classes} "
                        + ("targets" if self.dataset.task == "regression" else "classes"),
                    )
                )
        return out

    def is_simulated_only(self) -> bool:
        """True when every instrument is ``driver: sim``."""
        return all(cfg.driver == "sim" for cfg in self.instruments.values())


# ------------------------------------------------------------------ loading (see aeqlab.protocol.loader)
def load_protocol(path: str | Path) -> tuple[Protocol, str]:
    """Load and validate a protocol file.

    Returns
    -------
    (Protocol, str)
        The model, and the resolved protocol text (after ``extends``): what a run records and hashes.

    Raises
    ------
    ProtocolError
        One line per problem, each ``file:line:col: key.path: message (hint)``.
    """
    from aeqlab.protocol.loader import load_protocol as _load

    return _load(path)


def parse_protocol(text: str, source: str = "<protocol>") -> Protocol:
    """Validate protocol text (``extends`` is resolved relative to ``source``'s folder)."""
    from aeqlab.protocol.loader import parse_protocol as _parse

    return _parse(text, source)
