"""Channel references and the five roles of a bench, with their limits and calibrations."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema, field_validator, model_validator

from aeqlab.protocol.clip import clip
from aeqlab.protocol.fields import MAX_CHANNELS, Strict, _f, _problems
from aeqlab.protocol.units import AMPERE, VOLT, quantity

ROLE_NAMES = ("inputs", "outputs", "knobs", "params", "nudges")
SOURCE_ROLES = ("inputs", "knobs", "nudges")  # roles that drive the system (safety maxima apply)
_CHANNEL_RE = re.compile(r"^(?P<inst>[A-Za-z_][\w-]*)/(?P<prefix>[A-Za-z_]*)(?P<a>\d+)(?::(?P<b>\d+))?$")


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
            raise ValueError(f"{clip(text)!r} is not a channel reference like 'dac/ao0:7' or 'adc/ai3'")
        a = int(m["a"])
        b = int(m["b"]) if m["b"] is not None else a
        if b < a:
            raise ValueError(f"{text!r}: the range runs backwards (write '{m['inst']}/{m['prefix']}{b}:{a}')")
        if b - a >= MAX_CHANNELS:
            raise ValueError(f"{clip(text)!r}: more than {MAX_CHANNELS} channels (the most one instrument may have)")
        return cls(instrument=m["inst"], prefix=m["prefix"], first=a, last=b)

    @property
    def count(self) -> int:
        return self.last - self.first + 1


def _limits_and_calibration(kind: Any, unit: str) -> tuple[type[Strict], type[Strict]]:
    # built after the rename below, so that the schema names them VoltageLimits, CurrentCalibration...
    class Limits(Strict, defer_build=True):
        __doc__ = f"Allowed SI range ({unit}) of every channel of a role; checked before any value is sent."

        low: quantity(kind, f"lowest value any channel of the role may be set to or read at ({unit})")
        high: quantity(kind, f"highest value any channel of the role may be set to or read at ({unit})")

        @model_validator(mode="after")
        def _ordered(self) -> Limits:
            if not self.low < self.high:
                raise ValueError(f"low ({self.low:g} {unit}) must be below high ({self.high:g} {unit})")
            return self

    class Calibration(Strict, defer_build=True):
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
    Limits.model_rebuild()
    Calibration.model_rebuild()
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
