"""Protocol files: YAML → a validated pydantic model.

Values are in SI units (volts, amperes, seconds) unless a field says *model units*.
Every mapping forbids unknown keys. Validation errors name the file, line and
column of the offending value.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from aeqlab.errors import ProtocolError

_CHANNEL_RE = re.compile(r"^(?P<inst>[A-Za-z_][\w-]*)/(?P<prefix>[A-Za-z_]*)(?P<a>\d+)(?::(?P<b>\d+))?$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Finite = Annotated[float, Field(allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class ChannelRef(Strict):
    """A parsed channel reference such as ``dac/ao0:7`` (channels 0 to 7 of ``dac``)."""

    instrument: str
    prefix: str
    first: int
    last: int

    @classmethod
    def parse(cls, text: str) -> ChannelRef:
        m = _CHANNEL_RE.match(text.strip())
        if not m:
            raise ValueError(f"{text!r} is not a channel reference like 'dac/ao0:7' or 'adc/ai3'")
        a = int(m["a"])
        b = int(m["b"]) if m["b"] is not None else a
        if b < a:
            raise ValueError(f"{text!r}: the range runs backwards")
        return cls(instrument=m["inst"], prefix=m["prefix"], first=a, last=b)

    @property
    def count(self) -> int:
        return self.last - self.first + 1


class Calibration(Strict):
    """Linear map between model units and SI: ``SI = offset + scale · model``."""

    scale: Finite = Field(1.0, description="SI units per model unit (V or A)")
    offset: Finite = Field(0.0, description="SI value of model zero (V or A)")

    @field_validator("scale")
    @classmethod
    def _nonzero(cls, v: float) -> float:
        if v == 0:
            raise ValueError("scale must not be zero")
        return v


class Limits(Strict):
    """Allowed SI range of every channel of a role; checked before any value is sent."""

    low: Finite
    high: Finite

    @model_validator(mode="after")
    def _ordered(self) -> Limits:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low:g}) must be below high ({self.high:g})")
        return self


class Role(Strict):
    """Channels of one role, in role order, with their limits and calibration."""

    channels: list[str] = Field(description="channel references, e.g. ['dac/ao0:3']")
    limits: Limits | None = None
    calibration: Calibration = Calibration()

    @field_validator("channels", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("channels")
    @classmethod
    def _parse(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("a role needs at least one channel")
        for text in v:
            ChannelRef.parse(text)
        return v

    def refs(self) -> list[ChannelRef]:
        return [ChannelRef.parse(t) for t in self.channels]

    @property
    def size(self) -> int:
        return sum(r.count for r in self.refs())


class Roles(Strict):
    inputs: Role
    outputs: Role
    knobs: Role
    params: Role
    nudges: Role


class InstrumentConfig(Strict):
    """One instrument. ``driver: sim`` is a simulated instrument over the twin."""

    driver: str = Field(description="driver name from the registry, or 'sim'")
    channels: int | None = Field(None, gt=0, description="channel count (default: what the roles use)")
    resource: str | None = Field(None, description="VISA resource, serial port or NI device")
    voltage_range: tuple[Finite, Finite] = (-10.0, 10.0)
    current_range: tuple[Finite, Finite] = (-0.1, 0.1)


class Epsilon(Strict):
    """Couplings ε of the floating parameters to their knobs, one per layer."""

    weights: list[Positive]
    biases: list[Positive]


class Init(Strict):
    """The parameters the twin starts with (half-Xavier weights, zero biases)."""

    gains: list[Positive]
    seed: int = 0


class KnobErrors(Strict):
    """Gain and offset errors of each knob → parameter response, unknown to the engine."""

    gain_low: Positive = 1.0
    gain_high: Positive = 1.0
    offset: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    seed: int = 0


class Simulation(Strict):
    """The twin: a layered Hopfield-like network with floating parameters."""

    model: Literal["hopfield"] = "hopfield"
    layers: list[Annotated[int, Field(gt=0)]] = Field(min_length=2)
    epsilon: Epsilon
    hidden_clip: tuple[Finite, Finite] = (0.0, 1.0)
    output_clip: tuple[Finite, Finite] = (-1.0, 2.0)
    init: Init
    tolerance: Positive = Field(1e-9, description="relaxation tolerance (model units)")
    max_sweeps: int = Field(10_000, gt=0)
    strict_stability: bool = True
    knob_errors: KnobErrors = KnobErrors()

    @model_validator(mode="after")
    def _shapes(self) -> Simulation:
        n = len(self.layers) - 1
        if len(self.epsilon.weights) != n or len(self.epsilon.biases) != n:
            raise ValueError(f"epsilon needs {n} weight and {n} bias values, one per layer")
        if len(self.init.gains) != n:
            raise ValueError(f"init.gains needs {n} values, one per layer")
        for name, box in (("hidden_clip", self.hidden_clip), ("output_clip", self.output_clip)):
            if not box[0] < box[1]:
                raise ValueError(f"{name} must be [low, high] with low < high")
        return self


class Dataset(Strict):
    """A built-in data set, split and scaled into the inputs' model range."""

    name: Literal["iris", "digits", "xor"]
    test_size: Annotated[float, Field(gt=0)] | None = Field(
        None, description="held-out examples: a count, or a fraction when below 1"
    )
    seed: int = 0
    input_range: tuple[Finite, Finite] = (0.0, 1.0)
    target_range: tuple[Finite, Finite] = Field((0.0, 1.0), description="one-hot off/on values (model units)")


class Homeostasis(Strict):
    """The feedback loop that holds every measured parameter at its target."""

    tolerance: Positive = Field(1e-6, description="max |θ − θ*| per channel (model units)")
    gain: Positive = Field(1.0, le=2.0, description="fraction of the estimated correction applied per step")
    max_iterations: int = Field(100, gt=0)
    memory: int = Field(5, ge=0, description="steps mixed by Anderson acceleration")


class Tracking(Strict):
    """Tracking nudging: currents re-measured until I = β(y − ŷ)."""

    tolerance: Positive = Field(1e-7, description="max |I − β(y − ŷ)| (model units)")
    max_iterations: int = Field(100, gt=0)


class Method(Strict):
    name: Literal["aeqprop"] = "aeqprop"
    variant: Literal["centered", "optimistic", "pessimistic"] = "centered"
    beta: Positive = 1.0
    nudging: Literal["tracking", "linearized"] = "tracking"
    homeostasis: Homeostasis = Homeostasis()
    tracking: Tracking = Tracking()
    settle: Annotated[float, Field(ge=0, allow_inf_nan=False)] = Field(1e-3, description="settle wait (s)")
    free_phase_homeostasis: bool = Field(True, description="hold θ at its targets while predicting")


class Schedule(Strict):
    epochs: int = Field(10, gt=0)
    beta_decay: Positive = Field(1.0, le=1.0, description="β is multiplied by this after each epoch")
    shuffle: bool = True


class Output(Strict):
    dir: str = "runs"


class Protocol(Strict):
    """A whole protocol file."""

    name: str
    description: str = ""
    seed: int = 0
    instruments: dict[str, InstrumentConfig]
    roles: Roles
    simulation: Simulation | None = None
    dataset: Dataset
    method: Method = Method()
    schedule: Schedule = Schedule()
    output: Output = Output()

    @model_validator(mode="after")
    def _cross_checks(self) -> Protocol:
        used: dict[tuple[str, int], str] = {}
        for role_name in ("inputs", "outputs", "knobs", "params", "nudges"):
            role: Role = getattr(self.roles, role_name)
            for ref in role.refs():
                if ref.instrument not in self.instruments:
                    raise ValueError(
                        f"roles.{role_name}: instrument {ref.instrument!r} is not in instruments "
                        f"(have {sorted(self.instruments)})"
                    )
                cfg = self.instruments[ref.instrument]
                if cfg.channels is not None and ref.last >= cfg.channels:
                    raise ValueError(f"roles.{role_name}: {ref.instrument} has only {cfg.channels} channels")
                for c in range(ref.first, ref.last + 1):
                    if (ref.instrument, c) in used:
                        raise ValueError(
                            f"roles.{role_name}: channel {ref.instrument}/{ref.prefix}{c} is already used "
                            f"by roles.{used[(ref.instrument, c)]}"
                        )
                    used[(ref.instrument, c)] = role_name
        if self.roles.knobs.size != self.roles.params.size:
            raise ValueError(
                f"roles: every knob needs a parameter readback ({self.roles.knobs.size} knobs, "
                f"{self.roles.params.size} params)"
            )
        if self.roles.nudges.size != self.roles.outputs.size:
            raise ValueError("roles: one nudge channel per output")
        if self.method.nudging == "tracking" and self.method.variant in ("centered", "pessimistic"):
            beta1 = -self.method.beta / 2 if self.method.variant == "centered" else -self.method.beta
            if beta1 <= -1:
                raise ValueError(
                    f"method: tracking nudging is singular at beta1 = {beta1:g} <= -1 "
                    "(lower beta, or use linearized nudging)"
                )
        sim = self.simulation
        if sim is not None:
            n_params = sum(a * b for a, b in zip(sim.layers[:-1], sim.layers[1:])) + sum(sim.layers[1:])
            expect = {"inputs": sim.layers[0], "outputs": sim.layers[-1], "knobs": n_params, "params": n_params}
            for role_name, n in expect.items():
                have = getattr(self.roles, role_name).size
                if have != n:
                    raise ValueError(
                        f"roles.{role_name}: {have} channels, but the twin's network {sim.layers} needs {n}"
                    )
        return self

    def is_simulated_only(self) -> bool:
        return all(cfg.driver == "sim" for cfg in self.instruments.values())


# ---------------------------------------------------------------------- loading
def load_protocol(path: str | Path) -> tuple[Protocol, str]:
    """Load and validate a protocol file; return the model and the file's text.

    Raises
    ------
    ProtocolError
        One line per problem, each ``file:line:col: key.path: message``.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProtocolError("no such file", where=str(path), hint="check the path") from None
    except (UnicodeDecodeError, IsADirectoryError, PermissionError) as exc:
        raise ProtocolError(f"cannot read the protocol: {exc.__class__.__name__}", where=str(path)) from None
    return parse_protocol(text, str(path)), text


def parse_protocol(text: str, source: str = "<protocol>") -> Protocol:
    if "\x00" in text:
        raise ProtocolError("this is a binary file, not a YAML protocol", where=source)
    yaml = YAML(typ="rt")
    try:
        data = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise ProtocolError(f"YAML syntax: {exc.problem or exc.context}", where=where) from None
    except YAMLError as exc:
        raise ProtocolError(f"YAML syntax: {exc}", where=source) from None
    if data is None:
        raise ProtocolError("the file is empty", where=source, hint="start from 'aeqlab init'")
    if not isinstance(data, dict):
        raise ProtocolError("a protocol is a mapping of sections (name, instruments, roles, ...)", where=source)
    try:
        return Protocol.model_validate(_plain(data))
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = err["loc"]
            line, col = _locate(data, loc)
            key = ".".join(str(p) for p in loc) or "(top level)"
            msg = err["msg"].removeprefix("Value error, ")
            place = f"{source}:{line}:{col}" if line else source
            lines.append(f"{place}: {key}: {msg}")
        raise ProtocolError("\n".join(lines)) from None


def _plain(node: Any) -> Any:
    """ruamel's commented containers → plain dicts and lists; reject non-finite floats early."""
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, float) and not math.isfinite(node):
        return node  # pydantic's allow_inf_nan gives the precise message
    return node


def _locate(data: Any, loc: tuple) -> tuple[int | None, int | None]:
    """1-based line and column of the deepest node of ``loc`` that exists in the YAML."""
    node, line, col = data, None, None
    for key in loc:
        lc = getattr(node, "lc", None)
        try:
            if isinstance(node, dict) and key in node:
                if lc is not None:
                    line, col = lc.key(key) if not isinstance(node[key], (dict, list)) else lc.key(key)
                    line, col = line + 1, col + 1
                node = node[key]
            elif isinstance(node, list) and isinstance(key, int) and key < len(node):
                if lc is not None:
                    line, col = lc.item(key)
                    line, col = line + 1, col + 1
                node = node[key]
            else:
                break
        except (KeyError, IndexError, TypeError, AttributeError):
            break
    if line is None and hasattr(data, "lc"):
        line, col = data.lc.line + 1, data.lc.col + 1
    return line, col
