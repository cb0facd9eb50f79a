"""One instrument of a protocol: its driver, connection, ranges, ramp and driver options."""

from __future__ import annotations

import difflib
import re
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ValidationError, field_validator, model_validator

from aeqlab.protocol.fields import MAX_CHANNELS, Amp, Strict, Volt, _f, _problems
from aeqlab.protocol.units import AMPERE, AMPERE_PER_SECOND, SECOND, VOLT, VOLT_PER_SECOND, quantity

_SERIAL_RE = re.compile(r"^(/dev/\S+|COM\d+|ASRL\S*|loop://\S*|socket://\S+|rfc2217://\S+)$", re.IGNORECASE)


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
    channels: int | None = _f(None, "channel count (default: what the roles use)", "1", gt=0, le=MAX_CHANNELS)
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
