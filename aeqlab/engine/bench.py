"""A bench: the five roles, each a list of instrument channels, behind one interface.

The bench converts between model units and SI with each role's calibration, checks
role limits before anything is sent, narrows each instrument's limits to the roles'
and its slews to the protocol's safety rates (the drivers' guards then hold every value
that reaches an instrument to them, :mod:`drivers.guard`), batches every role
operation into one call per instrument, counts round trips and compliance trips, and
puts the instruments in the protocol's safe state (``zero`` or ``hold``). A nudge
write after which a source reports its compliance tripped raises
:class:`~aeqlab.errors.ComplianceTripped` at once under ``safety.on_compliance: fault``
(the run engine then takes the normal way out); under ``flag`` it is remembered for the
sample (:meth:`Bench.take_compliance`). It knows
only the drivers' capability Protocols.
"""

from __future__ import annotations

import inspect
import math
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from aeqlab.engine.plan import Message, Read, Set, Setpoints, Settle, Switch
from aeqlab.errors import ComplianceTripped, InstrumentError, LimitError
from aeqlab.protocol import Protocol, Role
from drivers.capabilities import AnalogInput, AnalogOutput, Clock, CurrentSource, Instrument

WRITE_ROLES = ("inputs", "knobs")
SAFE_ATTEMPTS = 3  # a safe state cut by Ctrl-C starts over, this many times at most
READ_ROLES = ("outputs", "params")


def _frozen(values) -> np.ndarray:
    """A read-only index array (a role's channels never change; instruments cache what they derive from it)."""
    a = np.array(values, np.intp)
    a.flags.writeable = False
    return a


def _finite(low: float, high: float) -> bool:
    return math.isfinite(low) and math.isfinite(high)


@dataclass
class RoleWiring:
    """One role's channels grouped per instrument, in role order."""

    name: str
    groups: list[tuple[str, np.ndarray, np.ndarray]]  # (instrument, role positions, channel indices)
    scale: float
    offset: float
    low_si: float
    high_si: float
    size: int

    def to_si(self, model: np.ndarray) -> np.ndarray:
        return self.offset + self.scale * model

    def to_model(self, si: np.ndarray) -> np.ndarray:
        return (si - self.offset) / self.scale

    @cached_property
    def identity(self) -> bool:
        """Model units are SI (scale 1, offset 0): conversions change nothing, bit for bit."""
        return self.scale == 1.0 and self.offset == 0.0

    @cached_property
    def window(self) -> tuple[float, float]:
        """The limits widened by the few ulps a calibration's SI → model → SI round trip may overshoot."""
        if not np.isfinite(self.low_si + self.high_si):
            return self.low_si, self.high_si
        slack = 16 * np.spacing(max(abs(self.low_si), abs(self.high_si)))
        return self.low_si - slack, self.high_si + slack

    @cached_property
    def whole(self) -> bool:
        """One instrument holds the whole role, in role order (its values need no gathering)."""
        return len(self.groups) == 1 and np.array_equal(self.groups[0][1], np.arange(self.size))

    @property
    def model_bounds(self) -> tuple[float, float]:
        a, b = self.to_model(np.array([self.low_si, self.high_si]))
        return (min(a, b), max(a, b))


class Bench:
    """The roles of a protocol wired to instrument objects.

    Parameters
    ----------
    protocol
        The validated protocol.
    instruments
        Name → instrument object (real driver or simulated), as the protocol names them.
    clock
        The clock settle waits run on.
    """

    def __init__(self, protocol: Protocol, instruments: dict[str, Instrument], clock: Clock):
        self.protocol = protocol
        self.instruments = instruments
        self.clock = clock
        self.round_trips: Counter[str] = Counter()
        self.roles: dict[str, RoleWiring] = {}
        for name in ("inputs", "outputs", "knobs", "params", "nudges"):
            self.roles[name] = self._wire(name, getattr(protocol.roles, name))
        self._check_capabilities()
        self._apply_limits()
        self._apply_slews()
        self.nudges_on = False
        self.compliance_trips = 0  # nudge writes after which some source reported its compliance tripped
        self.compliance_tripped = np.zeros(self.roles["nudges"].size, bool)  # per nudge, after the last write
        self.compliance_seen = np.zeros(self.roles["nudges"].size, bool)  # per nudge, since take_compliance()
        self.on_compliance = str(getattr(getattr(protocol, "safety", None), "on_compliance", "fault") or "fault")

    def _wire(self, name: str, role: Role) -> RoleWiring:
        by_inst: dict[str, tuple[list[int], list[int]]] = {}
        pos = 0
        for ref in role.refs():
            positions, channels = by_inst.setdefault(ref.instrument, ([], []))
            positions.extend(range(pos, pos + ref.count))
            channels.extend(range(ref.first, ref.last + 1))
            pos += ref.count
        groups = [(inst, _frozen(p), _frozen(c)) for inst, (p, c) in by_inst.items()]
        default = (-np.inf, np.inf)
        lim = (role.limits.low, role.limits.high) if role.limits else default
        cal = role.calibration
        return RoleWiring(name, groups, cal.scale, cal.offset, lim[0], lim[1], pos)

    def _check_capabilities(self) -> None:
        need = {
            "inputs": AnalogOutput,
            "knobs": AnalogOutput,
            "outputs": AnalogInput,
            "params": AnalogInput,
            "nudges": CurrentSource,
        }
        for role, cap in need.items():
            for inst, _, _ in self.roles[role].groups:
                if not isinstance(self.instruments[inst], cap):
                    raise InstrumentError(
                        f"roles.{role}: instrument {inst!r} cannot act as {cap.__name__}",
                        hint="wire this role to an instrument with that capability",
                    )

    def _apply_limits(self) -> None:
        for role in ("inputs", "knobs", "nudges"):
            w = self.roles[role]
            if not np.isfinite(w.low_si) and not np.isfinite(w.high_si):
                continue
            for inst, _, ch in w.groups:
                obj = self.instruments[inst]
                table = obj.current_limits if role == "nudges" else obj.output_limits
                lo = np.maximum(w.low_si, table.low[ch])
                hi = np.minimum(w.high_si, table.high[ch])
                table.restrict(ch, lo, hi, where=f"roles.{role}.limits")

    def _apply_slews(self) -> None:
        """Every source's guard on the bench clock, its slew no faster than ``safety.*_ramp_rate``."""
        safety = getattr(self.protocol, "safety", None)
        rates = {
            "output_guard": getattr(safety, "voltage_ramp_rate", None),
            "current_guard": getattr(safety, "current_ramp_rate", None),
        }
        for obj in self.instruments.values():
            for attr, rate in rates.items():
                guard = getattr(obj, attr, None)
                if guard is None:
                    continue
                guard.clock = self.clock
                if rate is not None:
                    guard.limit_rate(np.arange(guard.table.n_channels), float(rate))

    # ------------------------------------------------------------ operations
    def write(self, role: str, model: np.ndarray) -> None:
        """Set a role's sources (model units). Checks the role's limits before sending anything."""
        w = self.roles[role]
        model = np.asarray(model, dtype=float)
        if model.shape != (w.size,):
            raise LimitError(f"roles.{role}: {model.size} values for {w.size} channels")
        si = model if w.identity else w.to_si(model)
        # a saturated value's SI -> model -> SI round trip may overshoot by an ulp or two: such values
        # are pulled onto the limit; anything further out is refused here
        lo_s, hi_s = w.window
        low, high = (si.min(), si.max()) if si.size else (0.0, 0.0)  # NaN propagates: it fails the test
        if not (low >= lo_s and high <= hi_s):
            ok = (si >= lo_s) & (si <= hi_s)
            i = int(np.flatnonzero(~ok)[0])
            raise LimitError(
                f"roles.{role}[{i}]: {si[i]:.6g} (model {model[i]:.6g}) is outside the role's limits "
                f"[{w.low_si:g}, {w.high_si:g}]; nothing was sent",
                where=f"roles.{role}.limits",
            )
        if low < w.low_si or high > w.high_si:
            si = np.minimum(np.maximum(si, w.low_si), w.high_si)
        # a role spread over several instruments: all their limits pass before any of them is written
        # (one instrument checks its own before it sends anything)
        for inst, pos, ch in w.groups if len(w.groups) > 1 else ():
            obj = self.instruments[inst]
            guard = getattr(obj, "current_guard" if role == "nudges" else "output_guard", None)
            if guard is not None:
                guard.admit(ch, si[pos])
            else:
                (obj.current_limits if role == "nudges" else obj.output_limits).check(ch, si[pos])
        for inst, pos, ch in w.groups:
            obj = self.instruments[inst]
            self.round_trips[inst] += 1
            values = si if w.whole else si[pos]
            if role == "nudges":
                obj.set_currents(ch, values)
            else:
                obj.write(ch, values)
        if role == "nudges":
            self._collect_compliance()

    def _collect_compliance(self) -> None:
        """Per nudge: did its source report the compliance limit hit after this write."""
        tripped = np.zeros(self.roles["nudges"].size, bool)
        for inst, pos, ch in self.roles["nudges"].groups:
            flags = getattr(self.instruments[inst], "compliance_tripped", None)
            if callable(flags):
                tripped[pos] = np.asarray(flags(), bool)[ch]
        self.compliance_tripped = tripped
        self.compliance_seen |= tripped
        if tripped.any():
            self.compliance_trips += 1
            if self.on_compliance == "fault":
                raise self._compliance_fault(int(np.flatnonzero(tripped)[0]), int(tripped.sum()))

    def _compliance_fault(self, i: int, count: int) -> ComplianceTripped:
        """The error of ``safety.on_compliance: fault``: the first tripped nudge, its instrument and the fixes."""
        inst, c = self.nudge_channel(i)
        others = f" (and {count - 1} more nudge source(s))" if count > 1 else ""
        return ComplianceTripped(
            f"{inst} ch{c} reported its compliance tripped after a nudge write{others}",
            where=f"roles.nudges[{i}]",
            hint=f"safety.on_compliance is fault: raise instruments.{inst}.options.compliance, lower method.beta "
            "or roles.nudges.limits, or set safety.on_compliance: flag to keep such samples, flagged",
        )

    def nudge_channel(self, i: int) -> tuple[str, int]:
        """The instrument and channel of nudge ``i`` (role order)."""
        for inst, pos, ch in self.roles["nudges"].groups:
            hit = np.flatnonzero(pos == i)
            if hit.size:
                return inst, int(ch[hit[0]])
        raise IndexError(i)

    def take_compliance(self) -> np.ndarray:
        """Per nudge: tripped after some nudge write since the last call (then forgotten)."""
        seen = self.compliance_seen.copy()
        self.compliance_seen[:] = False
        return seen

    def read(self, role: str) -> np.ndarray:
        """Read a role (model units)."""
        w = self.roles[role]
        out = None if w.whole else np.empty(w.size)
        for inst, pos, ch in w.groups:
            self.round_trips[inst] += 1
            values = np.asarray(self.instruments[inst].read(ch), dtype=float)
            # every value finite: min and max are (NaN propagates through both)
            if values.shape != ch.shape or (values.size and not _finite(values.min(), values.max())):
                raise InstrumentError(f"{inst}: bad reading for roles.{role} (expected {ch.size} finite values)")
            if out is None:  # a new array: the instrument's own is left as it is
                return values.copy() if w.identity else w.to_model(values)
            out[pos] = values
        return out if w.identity else w.to_model(out)

    def switch(self, role: str, on: bool) -> None:
        for inst, _, ch in self.roles[role].groups:
            self.round_trips[inst] += 1
            self.instruments[inst].enable(ch, on)
        self.nudges_on = on

    def setpoints(self, role: str) -> np.ndarray:
        """Present setpoints of a voltage role (model units), as the instruments report them."""
        w = self.roles[role]
        out = np.empty(w.size)
        for inst, pos, ch in w.groups:
            out[pos] = self.instruments[inst].setpoints(ch)
        return w.to_model(out)

    def apply(self, msg: Message) -> Any:
        if isinstance(msg, Set):
            return self.write(msg.role, msg.values)
        if isinstance(msg, Read):
            return self.read(msg.role)
        if isinstance(msg, Settle):
            return self.clock.sleep(msg.seconds)
        if isinstance(msg, Switch):
            return self.switch(msg.role, msg.on)
        if isinstance(msg, Setpoints):
            return self.setpoints(msg.role)
        raise TypeError(f"unknown plan message {msg!r}")

    @property
    def safe_mode(self) -> str:
        """``zero`` (sources to their safe values, outputs off) or ``hold`` (voltages kept, currents off)."""
        return str(getattr(getattr(self.protocol, "safety", None), "safe_state", "zero") or "zero")

    def safe_state(self) -> list[str]:
        """Every instrument to the protocol's safe state; returns what could not be confirmed (never raises).

        Each entry names an instrument channel (or a whole instrument) not confirmed safe;
        [] means every source was confirmed at its safe state.
        """
        failures: list[str] = []
        mode = self.safe_mode
        for name, obj in self.instruments.items():
            takes_mode = len(inspect.signature(obj.safe_state).parameters) > 0
            for _ in range(SAFE_ATTEMPTS):
                try:
                    result = obj.safe_state(mode) if takes_mode else obj.safe_state()
                    failures.extend(str(f) for f in result or ())
                    break
                except KeyboardInterrupt:
                    # a Ctrl-C on the way out (the second one asks to stop at once, and this is the way out):
                    # the instrument's safe state starts over from what it knows, its channels unknown where cut
                    continue
                except Exception as exc:  # noqa: BLE001 - every instrument must get its chance
                    failures.append(f"{name}: {exc}")
                    break
            else:
                failures.append(f"{name}: safe state interrupted {SAFE_ATTEMPTS} times; not confirmed")
        self.nudges_on = False
        return failures

    def close(self) -> None:
        for obj in self.instruments.values():
            try:
                obj.close()
            except Exception:  # noqa: BLE001
                pass

    def identities(self) -> dict[str, str]:
        return {name: obj.identify() for name, obj in self.instruments.items()}
