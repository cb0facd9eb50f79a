"""What every real driver shares: connection settings, ramping, option models.

A driver class is built by ``Driver.open(name, settings)`` from a
:class:`DriverSettings` (the protocol's ``instruments.<name>`` section, translated
by the composition root). Drivers declare their protocol options as a pydantic model
in the class attribute ``Options`` (see :mod:`drivers.registry`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from drivers.errors import InputError


class DriverOptions(BaseModel):
    """Base of every driver's ``options`` model: unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Ramp:
    """How a source moves: at most ``step`` per write, at most ``rate`` per second.

    ``step`` is in the unit of the source (V or A). ``math.inf`` disables ramping.
    :class:`drivers.guard.SourceGuard` enforces it (with the protocol's safety rate).
    """

    step: float = math.inf
    rate: float = math.inf

    @property
    def dwell(self) -> float:
        """Seconds between two steps."""
        if not math.isfinite(self.step) or not math.isfinite(self.rate) or self.rate <= 0:
            return 0.0
        return self.step / self.rate


@dataclass
class DriverSettings:
    """Connection settings of one instrument, independent of the protocol model.

    Parameters
    ----------
    resource
        VISA resource string, serial port, or NI-DAQ physical channels.
    channels
        Channel count when the protocol gives one.
    voltage_range, current_range
        Capability ranges (V, A); the driver's :class:`~drivers.limits.LimitTable` start here.
    timeout
        Seconds to wait for a reply.
    baud, read_termination, write_termination
        Serial and VISA framing.
    ramp
        Source ramp (step and rate).
    retries
        How many times an operation is retried after a timeout (after clear and re-identify).
    options
        Driver-specific options (validated by the driver's ``Options`` model).
    """

    resource: str | None = None
    channels: int | None = None
    voltage_range: tuple[float, float] = (-10.0, 10.0)
    current_range: tuple[float, float] = (-0.1, 0.1)
    timeout: float = 2.0
    baud: int = 115200
    read_termination: str = "\n"
    write_termination: str = "\n"
    ramp: Ramp = field(default_factory=Ramp)
    retries: int = 1
    options: dict[str, Any] = field(default_factory=dict)


def parse_options(model: type[DriverOptions], options: dict[str, Any] | BaseModel | None, where: str) -> Any:
    """Validate a driver's options dict into its model; one-line :class:`InputError` if bad."""
    if isinstance(options, model):
        return options
    if isinstance(options, BaseModel):
        options = options.model_dump()
    try:
        return model.model_validate(options or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "options"
        raise InputError(f"{key}: {first['msg']}", where=f"{where}.options") from None


def fmt(value: float) -> str:
    """A setting as sent on the wire: 12 significant digits (source levels go through :mod:`drivers.guard`)."""
    return f"{float(value):.12g}"
