"""The twin: a simulated bench whose ports are wired to simulated instruments.

A twin holds what a physical system holds between instrument calls: latched inputs,
knob settings and nudging currents, and its own states and floating parameters.
Writes only latch values; the first read after a write lets the system relax to
equilibrium (settling is instantaneous in simulated time, so a fixed settle wait
is always long enough). It knows nothing about training phases.

Ports (model units):

* writable: ``inputs`` (x), ``knobs`` (u), ``nudges`` (currents I into the outputs);
* readable: ``outputs`` (the output states), ``params`` (the floating θ).
"""

from __future__ import annotations

import copy
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from drivers.errors import StabilityError
from sim_backends.clock import SimulatedClock

WRITABLE = ("inputs", "knobs", "nudges")
READABLE = ("outputs", "params")


@dataclass
class StabilityEvent:
    relaxation: int
    rho: float
    max_change: float


@dataclass
class TwinStats:
    relaxations: int = 0
    sweeps: int = 0
    unconverged: int = 0
    jumps: int = 0  # relaxations that moved a state by more than the jump threshold
    unstable_jumps: int = 0  # ... from an equilibrium with ρ ≥ 1
    events: deque[StabilityEvent] = field(default_factory=lambda: deque(maxlen=1000))  # the latest jumps


class Twin:
    """A physical system with floating parameters behind instrument ports.

    The physics object (a :class:`~sim_backends.hopfield.HopfieldNetwork`, a
    :class:`~sim_backends.spring.SpringNetwork`, an :class:`~sim_backends.energy.EnergyNetwork`
    or a plug-in's) satisfies :class:`~sim_backends.physics.TwinPhysics`: ``spec`` (sizes),
    ``relax(x, u, I)``, ``states``, ``outputs``, ``theta``, ``stability_ratio(x)`` and
    ``coupling_summary()``.

    Parameters
    ----------
    net
        The physics.
    theta0
        The parameters the system starts with ("as manufactured"). The knobs start at
        the values that hold them there with all states at zero.
    clock
        The shared simulated clock.
    jump_threshold
        A relaxation that moves some state by more than this is a *jump* (for the outputs, the
        last state array, more than this plus twice the change of the nudge currents since the
        last relaxation: their direct response to a nudge, measured at 0.7–1.3 per unit
        current, is not a jump); the twin then
        checks the stability ratio ρ at the state it left. A new input may move the states
        anywhere and is never a jump.
    settling_tau
        First-order settling time constant (s, simulated time): a reading taken t after a
        change shows ``eq + (before − eq)·exp(−t/τ)``. Zero: instantaneous.
    drift_rate
        Slow drift of every knob → parameter offset (model units per second, a fixed random
        direction per knob): the parameters wander unless homeostasis holds them.
    strict_stability
        Raise :class:`StabilityError` when jumps from states with ρ ≥ 1 become frequent:
        ``unstable_limit`` of them within the last ``unstable_window`` relaxations. A rare one
        (a sample near the edge) is recorded in :attr:`stats` and reported, not fatal.
    """

    def __init__(
        self,
        net,
        theta0: np.ndarray,
        clock: SimulatedClock | None = None,
        *,
        jump_threshold: float = 0.5,
        strict_stability: bool = True,
        settling_tau: float = 0.0,
        drift_rate: float = 0.0,
        drift_seed: int = 0,
        unstable_limit: int = 5,
        unstable_window: int = 2000,
        coupling_place: str = "simulation.epsilon",
    ):
        spec = net.spec
        self.net = net
        self.clock = clock or SimulatedClock()
        if getattr(self.clock, "realtime", False) and hasattr(self.clock, "during_waits"):
            self.clock.during_waits(self._relax_during_wait)  # paced in real time: relax while the clock waits
        self.jump_threshold = jump_threshold
        self.strict_stability = strict_stability
        self.unstable_limit = unstable_limit
        self.unstable_window = unstable_window
        self.coupling_place = coupling_place  # the protocol key a StabilityError points at
        self._unstable: deque[int] = deque()
        self._unread = (0, 0.0)  # unstable jumps since take_unstable_jumps() last asked, and their largest ρ
        self.ports = {
            "inputs": np.zeros(spec.n_inputs),
            "knobs": np.asarray(theta0, float).copy(),
            "nudges": np.zeros(spec.n_outputs),
        }
        net.theta = np.asarray(theta0, float).copy()
        self.stats = TwinStats()
        self._dirty = True
        self._inputs_changed = True
        self._nudge_change = 0.0  # Σ max |ΔI| written since the last relaxation
        self.settling_tau = float(settling_tau)
        self._drift = drift_rate * np.random.default_rng(drift_seed).standard_normal(spec.n_params)
        self._drifting = bool(drift_rate)
        self._relaxed_at = -np.inf
        # what the readings show while the system settles toward its new equilibrium
        self._t_change = 0.0
        self._from: dict[str, np.ndarray] | None = None

    @property
    def sizes(self) -> dict[str, int]:
        spec = self.net.spec
        return {
            "inputs": spec.n_inputs,
            "outputs": spec.n_outputs,
            "knobs": spec.n_params,
            "params": spec.n_params,
            "nudges": spec.n_outputs,
        }

    # --------------------------------------------------------------- ports
    def write(self, port: str, index: np.ndarray, values: np.ndarray) -> None:
        if port not in WRITABLE:
            raise ValueError(f"twin port {port!r} is not writable")
        target = self.ports[port]
        if not np.array_equal(target[index], values):
            if self.settling_tau > 0:
                self._from = self._observed()
                self._t_change = self.clock.now()
            if port == "nudges":
                self._nudge_change += float(np.max(np.abs(target[index] - values)))
            target[index] = values
            self._dirty = True
            self._inputs_changed |= port == "inputs"

    def read(self, port: str, index: np.ndarray) -> np.ndarray:
        if port not in READABLE:
            raise ValueError(f"twin port {port!r} is not readable")
        if self.settling_tau <= 0:  # no settling dynamics: the equilibrium itself
            self.settle()
            values = (self.net.outputs if port == "outputs" else self.net.theta)[index]
        else:
            values = self._observed()[port][index]
        return values.copy() if isinstance(index, slice) else values  # fancy indexing copies already

    def _observed(self) -> dict[str, np.ndarray]:
        """What instruments would read now: the equilibrium, or on its way there."""
        self.settle()
        eq = {"outputs": self.net.outputs, "params": self.net.theta}
        if self.settling_tau <= 0 or self._from is None:
            return eq
        w = float(np.exp(-(self.clock.now() - self._t_change) / self.settling_tau))
        if w < 1e-300:
            return eq
        return {k: eq[k] + (self._from[k] - eq[k]) * w for k in eq}

    def knob_drive(self) -> np.ndarray:
        """Knob values as the physics feels them (drifting offsets included)."""
        if not self._drifting:
            return self.ports["knobs"]
        return self.ports["knobs"] + self._drift * self.clock.now()

    def _relax_during_wait(self, settling: bool) -> None:
        """A real-time wait has begun: do now the relaxation the next read or write would do.

        A read after a wait relaxes; with settling dynamics (τ > 0) a write does too (what
        the instruments show at that moment depends on the equilibrium the system was
        heading for). Doing it inside the wait changes nothing but when it is computed.
        Without settling dynamics a latency wait is left alone: the write that follows it
        does not relax, and relaxing before it would add a stop the unpaced run does not make.
        A drifting twin is left alone too: its equilibrium at the read, a latency later,
        differs from the one at the wait.
        """
        if self._drifting:  # the physics moves with time itself: relax only when read, as unpaced
            return
        if settling or self.settling_tau > 0:
            self.settle()

    def settle(self) -> None:
        """Relax to equilibrium if anything changed since the last relaxation."""
        if self._drifting and self.clock.now() != self._relaxed_at:
            self._dirty = True
        if not self._dirty:
            return
        self._relaxed_at = self.clock.now()
        fresh = getattr(self.net, "fresh_arrays", False)
        if fresh:  # relax binds new arrays: the old ones stay as they were
            before, theta_before = list(self.net.states), self.net.theta
        else:
            before = [s.copy() for s in self.net.states]
            theta_before = self.net.theta.copy()
        info = self.net.relax(self.ports["inputs"], self.knob_drive(), self.ports["nudges"])
        st = self.stats
        st.relaxations += 1
        st.sweeps += info.sweeps
        st.unconverged += not info.converged
        self._dirty = False
        inputs_changed, self._inputs_changed = self._inputs_changed, False
        explained, self._nudge_change = 2.0 * self._nudge_change, 0.0
        moves = getattr(self.net, "last_moves", None) if fresh else None  # (measured by the relaxation itself)
        if moves is None:
            moves = [float(np.max(np.abs(a - b))) for a, b in zip(before, self.net.states)]
        moved = max(moves)
        # a new input legitimately moves the states, and a nudge the outputs (the last state
        # array) by about its own size; knobs, and nudges elsewhere, are meant to move them gently
        jumped = max(moves[:-1], default=0.0) > self.jump_threshold or moves[-1] > self.jump_threshold + explained
        if jumped and not inputs_changed:
            self._check_jump(before, theta_before, moved)

    def _check_jump(self, before: list[np.ndarray], theta_before: np.ndarray, moved: float) -> None:
        """A jump: ρ at the equilibrium it left, and ρ where the parameters held there would put the states.

        The joint relaxation always ends in a minimum of the box-bounded energy, so the state
        a jump leaves reads ρ < 1 even when the system runs away: past ρ = 1 the states slide
        to their bounds (where ρ over the free units is small), homeostasis pulls the
        parameters back, and they slide again. The held ratio (the preflight's) sees the
        saddle they are pulled toward: ρ ≥ 1 there makes the jump an unstable one. It is
        computed on a copy, and only for jumps.
        """
        after, theta_after = self.net.states, self.net.theta
        self.net.states, self.net.theta = before, theta_before
        try:
            rho = self.net.stability_ratio(self.ports["inputs"])
        finally:
            self.net.states, self.net.theta = after, theta_after
        held = getattr(self.net, "held_stability_ratio", None)
        if held is not None and rho < 1.0:
            rho = max(rho, float(self.clone_network().held_stability_ratio(self.ports["inputs"], theta_before)))
        st = self.stats
        st.jumps += 1
        st.events.append(StabilityEvent(st.relaxations, rho, moved))
        if rho < 1.0:
            return
        st.unstable_jumps += 1
        self._unread = (self._unread[0] + 1, max(self._unread[1], rho))
        self._unstable.append(st.relaxations)
        while self._unstable and self._unstable[0] <= st.relaxations - self.unstable_window:
            self._unstable.popleft()
        recent = list(self._unstable)
        if self.strict_stability and len(recent) >= self.unstable_limit:
            raise StabilityError(
                f"the twin keeps jumping to distant states ({len(recent)} jumps within {self.unstable_window} "
                f"relaxations, the last by {moved:.2f}) from equilibria with stability ratio rho = {rho:.2f} >= 1: "
                f"the floating parameters are coupled too softly "
                f"({self.net.coupling_summary()})",
                where=self.coupling_place,
                hint=(
                    f"scale every epsilon by about {0.6 / rho:.2g} or less"
                    if np.isfinite(rho)
                    else "the weights themselves made the states unstable with the parameters held, which no "
                    "epsilon avoids: let the outputs swing with smaller output weights, see 'When rho grows "
                    "whatever epsilon' in docs/protocols.md"
                ),
            )

    def take_unstable_jumps(self, peek: bool = False) -> tuple[int, float]:
        """Unstable jumps (from equilibria with ρ ≥ 1) since the last call, and their largest ρ; then none.

        The stability monitor looks after every sample (``peek``: nothing is taken) and takes
        them at its reading: ρ read every N samples can miss a brief excursion past 1 that a
        jump shows. Kept in :meth:`snapshot`, so that a resumed twin reads what the
        uninterrupted one would.
        """
        unread = self._unread
        if not peek:
            self._unread = (0, 0.0)
        return unread

    # ----------------------------------------------------------- snapshots
    def snapshot(self) -> dict:
        """Everything needed to continue exactly where the twin is (simulated backends only)."""
        return {
            "ports": {k: v.copy() for k, v in self.ports.items()},
            "states": [s.copy() for s in self.net.states],
            "theta": self.net.theta.copy(),
            "dirty": self._dirty,
            "inputs_changed": self._inputs_changed,
            "nudge_change": self._nudge_change,
            "clock": self.clock.now(),
            "t_change": self._t_change,
            "from": None if self._from is None else {k: v.copy() for k, v in self._from.items()},
            "relaxed_at": self._relaxed_at,
            "unread_jumps": list(self._unread),
        }

    def restore(self, snap: dict) -> None:
        self.ports = {k: np.asarray(v, float).copy() for k, v in snap["ports"].items()}
        self.net.states = [np.asarray(s, float).copy() for s in snap["states"]]
        self.net.theta = np.asarray(snap["theta"], float).copy()
        self._dirty = bool(snap["dirty"])
        self._inputs_changed = bool(snap.get("inputs_changed", True))
        self._nudge_change = float(snap.get("nudge_change", 0.0))
        self.clock.set(float(snap["clock"]))
        self._t_change = float(snap.get("t_change", 0.0))
        self._from = None if snap.get("from") is None else {k: np.asarray(v) for k, v in snap["from"].items()}
        self._relaxed_at = float(snap.get("relaxed_at", -np.inf))
        unread = snap.get("unread_jumps", (0, 0.0))  # absent in snapshots written before it was kept
        self._unread = (int(unread[0]), float(unread[1]))

    def clone_network(self):
        """A deep copy of the physics, for diagnostics that must not disturb the twin."""
        return copy.deepcopy(self.net)


HopfieldTwin = Twin  # the name under which the first twin was introduced
