"""NI-DAQ analog outputs and inputs through nidaqmx: many channels in one task, on demand.

One task holds every channel of the instrument (``Dev1/ao0:7``); a write sends one
sample to every channel of the task, a read returns one sample per channel. Ranges
come from ``voltage_range``; the driver picks the hardware range that covers them, and
at connect checks them against what each device reports (``ao_voltage_rngs`` /
``ai_voltage_rngs``): a range beyond the device's is refused before a task exists.
Outputs go through a :class:`~drivers.guard.SourceGuard` (binary float64 on the wire:
no text rounding); a write is confirmed when NI-DAQmx returns without error (an analog
output cannot be read back).
``DaqNotFoundError`` (no NI-DAQmx on this machine; it is not a ``DaqError``) and
``DaqError`` become one-line :class:`~drivers.errors.InstrumentError`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import numpy as np
from numpy.typing import ArrayLike
from pydantic import Field

from drivers.base import DriverOptions, DriverSettings, Ramp, parse_options
from drivers.errors import InputError, InstrumentError
from drivers.guard import SourceGuard
from drivers.limits import LimitTable
from drivers.safe import levels_to_safe

T = TypeVar("T")

_PHYS = re.compile(r"^(?P<dev>[^/,\s]+)/(?P<kind>a[io])(?P<a>\d+)(?::(?P<b>\d+))?$")


def count_channels(physical: str, kind: str) -> int:
    """Number of channels in a physical channel string (``Dev1/ao0:7,Dev2/ao0`` → 9)."""
    n = 0
    for part in physical.split(","):
        m = _PHYS.match(part.strip())
        if not m or m["kind"] != kind:
            raise InputError(
                f"{physical!r} is not a list of {kind} channels like 'Dev1/{kind}0:7'",
                where="instruments.<name>.resource",
            )
        a = int(m["a"])
        b = int(m["b"]) if m["b"] is not None else a
        n += abs(b - a) + 1
    return n


def devices(physical: str) -> list[str]:
    """Device names of a physical channel string (``Dev1/ao0:7,Dev2/ao0`` → Dev1, Dev2)."""
    return list(dict.fromkeys(part.strip().split("/", 1)[0] for part in physical.split(",")))


def check_device_ranges(name: str, physical: str, kind: str, low: float, high: float) -> None:
    """Refuse [low, high] when a device reports voltage ranges and none covers it (nothing known: no check)."""
    from nidaqmx.system import Device

    attr = f"{kind}_voltage_rngs"
    for dev in devices(physical):
        flat = daq_call(name, f"reading {dev}'s {kind.upper()} ranges", lambda d=dev: list(getattr(Device(d), attr)))
        pairs = [(float(a), float(b)) for a, b in zip(flat[::2], flat[1::2])]
        if not pairs:
            continue
        lo, hi = min(a for a, _ in pairs), max(b for _, b in pairs)
        if low < lo or high > hi:
            raise InstrumentError(
                f"{name}: voltage_range [{low:g}, {high:g}] V exceeds what {dev} offers on its {kind.upper()} "
                f"channels, [{lo:g}, {hi:g}] V",
                where=f"instruments.{name}.voltage_range",
                hint=f"use a range inside [{lo:g}, {hi:g}] V",
            )


def daq_call(name: str, what: str, fn: Callable[[], T]) -> T:
    """Run an nidaqmx call, turning its errors into one-line InstrumentErrors."""
    import nidaqmx.errors

    try:
        return fn()
    except nidaqmx.errors.DaqNotFoundError:
        raise InstrumentError(
            f"{name}: NI-DAQmx is not installed on this machine",
            where=f"instruments.{name}",
            hint="install the NI-DAQmx driver, or run with --emulate",
        ) from None
    except nidaqmx.errors.DaqError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "no message"
        raise InstrumentError(f"{name}: NI-DAQmx error {exc.error_code} while {what}: {first}") from None
    except nidaqmx.errors.Error as exc:
        raise InstrumentError(f"{name}: NI-DAQmx failed while {what}: {exc}".splitlines()[0]) from None


class NidaqAoOptions(DriverOptions):
    """``instruments.<name>.options`` of an NI-DAQ analog output."""


class NidaqAiOptions(DriverOptions):
    """``instruments.<name>.options`` of an NI-DAQ analog input."""

    terminal: Literal["default", "rse", "nrse", "diff", "pseudo_diff"] = Field(
        "default", description="input terminal configuration"
    )


class NidaqAnalogOutput:
    """Voltage outputs of an NI-DAQ device (one task, all channels written together).

    NI analog outputs cannot be read back: until the first write, setpoints are taken as 0 V.
    """

    Options = NidaqAoOptions

    def __init__(self, name: str, task: Any, n_channels: int, settings: DriverSettings) -> None:
        self.name = name
        self.task = task
        self.n_channels = n_channels
        self.ramp: Ramp = settings.ramp
        self.output_limits = LimitTable(name, "voltage", "V", n_channels, *settings.voltage_range, prefix="ao")
        self.output_guard = SourceGuard(self.output_limits, self.ramp.step, self.ramp.rate, text=False)
        self.output_guard.know(np.arange(n_channels), 0.0)  # cannot be read back: taken as 0 V (docs/drivers.md)

    @classmethod
    def open(cls, name: str, settings: DriverSettings) -> NidaqAnalogOutput:
        import nidaqmx

        if not settings.resource:
            raise InputError("no NI channels given", where=f"instruments.{name}.resource", hint="e.g. Dev1/ao0:7")
        parse_options(NidaqAoOptions, settings.options, f"instruments.{name}")
        n = count_channels(settings.resource, "ao")
        lo, hi = settings.voltage_range
        check_device_ranges(name, settings.resource, "ao", lo, hi)
        task = daq_call(name, "creating a task", nidaqmx.Task)
        try:
            daq_call(
                name,
                f"adding {settings.resource}",
                lambda: task.ao_channels.add_ao_voltage_chan(settings.resource, min_val=lo, max_val=hi),
            )
            return cls(name, task, n, settings)
        except BaseException:
            task.close()
            raise

    def identify(self) -> str:
        return f"National Instruments,NI-DAQmx AO,{self.name},{self.n_channels}ch"

    @property
    def _setpoint(self) -> np.ndarray:
        return self.output_guard.present

    def _send(self, ch: np.ndarray, values: np.ndarray, texts: list[str] | None) -> None:
        # a task writes every channel: the others get what they hold (or were last commanded)
        g = self.output_guard
        full = np.where(np.isnan(g.present), g.pending, g.present)
        full[ch] = values
        daq_call(self.name, "writing", lambda: self.task.write([float(v) for v in full], auto_start=True))

    def write(self, channels: ArrayLike, volts: ArrayLike) -> None:
        """Set channels (V) through the guard; every channel of the task is written at once."""
        self.output_guard.move(channels, volts, self._send)

    def setpoints(self, channels: ArrayLike) -> np.ndarray:
        return self._setpoint[np.asarray(channels, np.intp)].copy()

    def safe_state(self, mode: str = "zero") -> list[str]:
        """Every channel to its safe value (``hold``: levels stay); confirmed when NI-DAQmx accepts the write."""
        if mode == "hold":
            return []
        every = np.arange(self.n_channels)
        return levels_to_safe(self.output_guard, every, self._send, None, lambda c: f"{self.name}/ao{c}")

    def state(self) -> dict[str, Any]:
        return {"setpoint_V": self._setpoint.tolist()}

    def close(self) -> None:
        try:
            self.task.close()
        except Exception:  # noqa: BLE001
            pass


class NidaqAnalogInput:
    """Voltage inputs of an NI-DAQ device (one task; a read returns every channel)."""

    Options = NidaqAiOptions

    def __init__(self, name: str, task: Any, n_channels: int, settings: DriverSettings) -> None:
        self.name = name
        self.task = task
        self.n_channels = n_channels
        self.input_limits = LimitTable(name, "voltage", "V", n_channels, *settings.voltage_range, prefix="ai")

    @classmethod
    def open(cls, name: str, settings: DriverSettings) -> NidaqAnalogInput:
        import nidaqmx
        from nidaqmx.constants import TerminalConfiguration

        if not settings.resource:
            raise InputError("no NI channels given", where=f"instruments.{name}.resource", hint="e.g. Dev1/ai0:15")
        opts = parse_options(NidaqAiOptions, settings.options, f"instruments.{name}")
        terminal = getattr(TerminalConfiguration, opts.terminal.upper())
        n = count_channels(settings.resource, "ai")
        lo, hi = settings.voltage_range
        check_device_ranges(name, settings.resource, "ai", lo, hi)
        task = daq_call(name, "creating a task", nidaqmx.Task)
        try:
            daq_call(
                name,
                f"adding {settings.resource}",
                lambda: task.ai_channels.add_ai_voltage_chan(
                    settings.resource, terminal_config=terminal, min_val=lo, max_val=hi
                ),
            )
            return cls(name, task, n, settings)
        except BaseException:
            task.close()
            raise

    def identify(self) -> str:
        return f"National Instruments,NI-DAQmx AI,{self.name},{self.n_channels}ch"

    def read(self, channels: ArrayLike) -> np.ndarray:
        """One on-demand sample of every channel; returns the requested ones (V)."""
        ch = self.input_limits.indices(channels)
        raw = daq_call(self.name, "reading", self.task.read)
        values = np.atleast_1d(np.asarray(raw, dtype=float))
        if values.size != self.n_channels or not np.all(np.isfinite(values)):
            raise InstrumentError(f"{self.name}: NI-DAQmx returned {values.size} values for {self.n_channels} channels")
        return values[ch]

    def safe_state(self, mode: str = "zero") -> list[str]:
        """Inputs have nothing to make safe."""
        return []

    def state(self) -> dict[str, Any]:
        return {"channels": self.n_channels}

    def close(self) -> None:
        try:
            self.task.close()
        except Exception:  # noqa: BLE001
            pass
