"""Simulated instruments over a twin, implementing the drivers' capability Protocols.

Each channel is wired to one twin port element, through a *true* linear transfer
(SI = offset + scale·model) that may differ from the calibration the protocol gives
the engine: that is how a twin models gain and offset errors the engine is not told.
Every call is logged, so tests can see that a procedure went through the instruments.
Sources go through :class:`drivers.guard.SourceGuard` like a real driver's, on the
float64 values the simulated DAC produces (vectorised; no text on this wire), timed on
the twin's clock.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from drivers.channels import ChannelCache, compact
from drivers.errors import InstrumentError
from drivers.guard import SourceGuard
from drivers.limits import LimitTable
from sim_backends.twin import READABLE, HopfieldTwin

PORT_KIND = {"inputs": "voltage-out", "knobs": "voltage-out", "nudges": "current-out"}
PORT_KIND.update({p: "voltage-in" for p in READABLE})


@dataclass(frozen=True)
class InstrumentFaults:
    """Non-idealities of a simulated instrument (all off by default).

    Parameters
    ----------
    noise
        Standard deviation of the noise added to every reading, in model units of the
        channel's role (the twin converts with the channel's true transfer).
    dac_bits
        Resolution of every voltage output over the instrument's voltage range; values
        are rounded to the nearest step before they reach the twin.
    latency
        Simulated seconds each call takes (advances the shared clock).
    timeout_every
        Every N-th call fails with a timeout (InstrumentError), sending nothing.
    disconnect_after
        After N calls the instrument is gone: every call fails.
    stuck
        Channel indices whose readings stay at the first value read.
    seed
        Seed of the noise.
    """

    noise: float = 0.0
    dac_bits: int | None = None
    latency: float = 0.0
    timeout_every: int = 0
    disconnect_after: int = 0
    stuck: tuple[int, ...] = ()
    seed: int = 0


class CallRecord(NamedTuple):
    """One instrument call as the instrument saw it (a named tuple: cheap to make on every call)."""

    time: float
    instrument: str
    op: str  # write | read | set_currents | enable | safe_state
    channels: int
    summary: float  # max |value| written, or nan for reads


class _Group(NamedTuple):
    """Channels of one call that reach one twin port, with their transfer (fixed until rewired)."""

    port: str
    sel: np.ndarray | slice  # positions in the call's channel array
    ch: np.ndarray  # instrument channels
    index: np.ndarray | slice  # twin port elements
    offset: np.ndarray
    scale: np.ndarray
    unit: bool  # offset 0 and scale 1 on every channel: values pass unchanged


def _group(port, sel, ch, index, offset, scale, n) -> _Group:
    idx = index[ch]
    off, sc = offset[ch].copy(), scale[ch].copy()
    unit = bool(np.all(off == 0.0) and np.all(sc == 1.0))
    return _Group(port, slice(None) if sel.size == n else sel, ch, compact(idx), off, sc, unit)


class SimInstrument:
    """A simulated multi-function instrument (DAC, ADC, SMU) over a twin.

    Parameters
    ----------
    name
        The instrument's name in the protocol.
    twin
        The twin it is wired to.
    n_channels
        Channel count.
    voltage_range, current_range
        Capability ranges (the protocol's limits may only narrow them).
    log_size
        How many calls the log keeps.
    """

    def __init__(
        self,
        name: str,
        twin: HopfieldTwin,
        n_channels: int,
        *,
        voltage_range: tuple[float, float] = (-10.0, 10.0),
        current_range: tuple[float, float] = (-0.1, 0.1),
        log_size: int = 100_000,
        faults: InstrumentFaults | None = None,
    ):
        self.name = name
        self.twin = twin
        self.n_channels = n_channels
        self.output_limits = LimitTable(name, "voltage", "V", n_channels, *voltage_range, prefix="ch")
        self.current_limits = LimitTable(name, "current", "A", n_channels, *current_range, prefix="ch")
        self._port = np.full(n_channels, "", dtype=object)
        self._index = np.zeros(n_channels, dtype=np.intp)
        self._scale = np.ones(n_channels)
        self._offset = np.zeros(n_channels)
        self._on = np.zeros(n_channels, bool)
        self.log: deque[CallRecord] = deque(maxlen=log_size)
        self.calls = 0
        self.faults = faults or InstrumentFaults()
        self._rng = np.random.default_rng(self.faults.seed)
        self._stuck: dict[int, float] = {}
        lo, hi = voltage_range
        self._dac_step = (hi - lo) / 2**self.faults.dac_bits if self.faults.dac_bits else 0.0
        self.output_guard = SourceGuard(self.output_limits, clock=twin.clock, text=False, quantum=self._dac_step)
        self.current_guard = SourceGuard(self.current_limits, clock=twin.clock, text=False)
        self.output_guard.know(np.arange(n_channels), 0.0)
        self.current_guard.know(np.arange(n_channels), 0.0)
        self.compliance_trips = 0
        self._groups: dict[int, list[_Group]] = {}
        self._by_id = ChannelCache()

    # ------------------------------------------------------------- wiring
    def wire(self, channels: ArrayLike, port: str, index: ArrayLike, scale: ArrayLike, offset: ArrayLike) -> None:
        """Connect channels to twin port elements with a true transfer SI = offset + scale·model."""
        ch = np.asarray(channels, np.intp)
        if np.any(self._port[ch] != ""):
            raise ValueError(f"{self.name}: a channel is wired twice")
        self._port[ch] = port
        self._index[ch] = np.asarray(index, np.intp)
        self._scale[ch] = scale
        self._offset[ch] = offset
        if port in ("inputs", "knobs"):
            present = self._offset[ch] + self._scale[ch] * self.twin.ports[port][self._index[ch]]
            self.output_guard.know(ch, present)
        self._groups.clear()
        self._by_id.clear()

    def _split(self, ch: np.ndarray, kind: str) -> list[_Group]:
        """Group channels by twin port (cached per channel array, as roles reuse theirs)."""
        cached = self._by_id.get(ch, kind)
        if cached is not None:  # the very array seen before (roles keep theirs)
            return cached
        key = hash((ch.tobytes(), kind))
        groups = self._groups.get(key)
        if groups is None:
            ports = self._port[ch]
            groups = []
            for port in dict.fromkeys(ports.tolist()):
                if PORT_KIND.get(port) != kind:
                    what = "not wired" if port == "" else f"wired to the twin's {port}"
                    raise InstrumentError(f"{self.name}: channel is {what}; it cannot do {kind}")
                sel = np.flatnonzero(ports == port)
                groups.append(_group(port, sel, ch[sel], self._index, self._offset, self._scale, ch.size))
            self._groups[key] = groups
        self._by_id.put(ch, groups, kind)
        return groups

    def _record(self, op: str, n: int, values: np.ndarray | None = None) -> None:
        f = self.faults
        if op != "safe_state" and (f.disconnect_after or f.timeout_every):
            if f.disconnect_after and self.calls >= f.disconnect_after:
                raise InstrumentError(
                    f"{self.name}: no answer, the instrument is disconnected",
                    hint="check the cable and power, then resume the run",
                )
            if f.timeout_every and (self.calls + 1) % f.timeout_every == 0:
                self.calls += 1
                raise InstrumentError(f"{self.name}: timed out ({op})", hint="the run can be resumed")
        clock = self.twin.clock
        if f.latency:
            clock.sleep(f.latency, settling=False)  # the call's latency, before its effect
        self.calls += 1
        # max |value| (the values are admitted ones: finite)
        s = max(float(values.max()), -float(values.min())) if values is not None and values.size else math.nan
        self.log.append(CallRecord(clock.now(), self.name, op, n, s))

    # ------------------------------------------------------------ snapshots
    def snapshot(self) -> dict:
        """What a resumed simulated instrument needs to go on exactly: its noise generator, call count, stuck values."""
        return {
            "rng": self._rng.bit_generator.state,
            "calls": self.calls,
            "stuck": [[int(c), float(v)] for c, v in self._stuck.items()],
        }

    def restore(self, snap: dict) -> None:
        self._rng.bit_generator.state = snap["rng"]
        self.calls = int(snap["calls"])
        self._stuck = {int(c): float(v) for c, v in snap["stuck"]}

    # ------------------------------------------------------- capabilities
    def identify(self) -> str:
        return f"aeqlab,SimInstrument,{self.name},0.1"

    @property
    def _setpoint(self) -> np.ndarray:
        return self.output_guard.present

    @property
    def _level(self) -> np.ndarray:
        return self.current_guard.present

    def write(self, channels: ArrayLike, volts: ArrayLike) -> None:
        ch, v, _ = self.output_guard.admit(channels, volts)
        groups = self._split(ch, "voltage-out")
        self._record("write", ch.size, v)
        self.output_guard.move(
            ch, v, lambda c, x, _t: self._drive(groups, x) if c is ch else self._drive_any(c, x), admitted=True
        )

    def _drive(self, groups: list[_Group], v: np.ndarray) -> None:
        for g in groups:
            self.twin.write(g.port, g.index, v[g.sel] if g.unit else (v[g.sel] - g.offset) / g.scale)

    def _drive_any(self, ch: np.ndarray, v: np.ndarray) -> None:
        self._drive(self._split(ch, "voltage-out"), v)

    def setpoints(self, channels: ArrayLike) -> np.ndarray:
        return self._setpoint[np.asarray(channels, np.intp)].copy()

    def read(self, channels: ArrayLike) -> np.ndarray:
        ch = np.asarray(channels, np.intp)
        groups = self._split(ch, "voltage-in")
        self._record("read", ch.size)
        noise = self.faults.noise
        if len(groups) == 1 and groups[0].unit and isinstance(groups[0].sel, slice) and not noise:
            out = self.twin.read(groups[0].port, groups[0].index)  # a new array: the twin's own is not shared
        else:
            out = np.empty(ch.size)
            for g in groups:
                model = self.twin.read(g.port, g.index)
                if noise:
                    model = model + self._rng.normal(0.0, noise, model.size)
                out[g.sel] = model if g.unit else g.offset + g.scale * model
        for c in self.faults.stuck:
            hit = np.flatnonzero(ch == c)
            if hit.size:
                out[hit] = self._stuck.setdefault(c, float(out[hit[0]]))
        return out

    def set_currents(self, channels: ArrayLike, amps: ArrayLike) -> None:
        ch, a, _ = self.current_guard.admit(channels, amps)
        groups = self._split(ch, "current-out")
        self._record("set_currents", ch.size, a)
        self.current_guard.move(
            ch, a, lambda c, x, _t: self._apply_currents(groups if c is ch else self._currents(c)), admitted=True
        )

    def _currents(self, ch: np.ndarray) -> list[_Group]:
        return self._split(ch, "current-out")

    def compliance_tripped(self) -> list[bool]:
        """A simulated source has no compliance: never tripped."""
        return [False] * self.n_channels

    def enable(self, channels: ArrayLike, on: bool) -> None:
        ch = np.asarray(channels, np.intp)
        groups = self._split(ch, "current-out")
        self._record("enable", ch.size, np.array([float(on)]))
        self._on[ch] = on
        self._apply_currents(groups)

    def _apply_currents(self, groups) -> None:
        g_ = self.current_guard
        level = np.where(np.isnan(g_.present), g_.pending, g_.present)  # the value being confirmed
        for g in groups:
            amps = np.where(self._on[g.ch], level[g.ch], 0.0)
            self.twin.write(g.port, g.index, amps / g.scale)

    def output_state(self) -> dict[str, np.ndarray]:
        """Present source levels and output switches (what a front panel would show)."""
        return {"setpoint": self._setpoint.copy(), "level": self._level.copy(), "on": self._on.copy()}

    def safe_state(self, mode: str = "zero") -> list[str]:
        """Voltage outputs to their safe values (``hold``: kept), current levels to 0 A, current outputs off."""
        self._record("safe_state", self.n_channels)
        if mode != "hold":
            for port in ("inputs", "knobs"):
                ch = np.flatnonzero(self._port == port)
                if ch.size:
                    safe = self.output_guard.safe_values(ch)
                    self.output_guard.move(ch, safe, lambda c, x, _t: self._drive_any(c, x))
        ch = np.flatnonzero(self._port == "nudges")
        if ch.size:
            safe = self.current_guard.safe_values(ch)
            self.current_guard.move(ch, safe, lambda c, x, _t: self._apply_currents(self._currents(c)))
            self._on[ch] = False
            self._apply_currents(self._split(ch, "current-out"))
        return []

    def close(self) -> None:
        pass
