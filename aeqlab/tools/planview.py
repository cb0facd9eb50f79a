"""Plan preview: what the instruments will be told during the first training samples.

The samples run on the protocol's twin (``open_backend(protocol, "sim")``); no real
instrument is opened. A :class:`Recorder` stands between the plan and the twin's
bench: it records every message, converts model values to SI with each role's
calibration, checks them against the role's limits, the instruments' ranges and the
safety maxima, and forwards them, so values that depend on measurements are the
twin's real ones. A value beyond a limit stops the preview and is reported at the
protocol line of the limit it breaks. A composition root: it may open backends.

A bench protocol without a ``simulation:`` section is previewed *blind*: stand-in
instruments over no physics (:func:`aeqlab.backends.sim.open_blind`). What is known without
physics is shown (the order of the actions, the values taken from the data and the protocol,
the limits, the ramps at the safety slew rates, the safe state at the end); the readings are
placeholders and are marked, as are the values computed from them, and the feedback
iteration counts and the loss are not predicted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aeqlab.engine.plan import Message, Read, Set, Setpoints, Settle, Switch
from aeqlab.errors import AeqlabError, ProtocolError
from aeqlab.protocol import Protocol
from aeqlab.protocol.yamlio import Located, Place


@dataclass
class Action:
    """One instrument action of the preview."""

    sample: int  # 0: the engine's start (take the bench as found)
    kind: str  # set, read, switch, settle
    role: str = ""
    model: np.ndarray | None = None
    si: np.ndarray | None = None
    unit: str = ""
    seconds: float = 0.0
    on: bool | None = None
    iteration: int = 0  # settle waits so far within the sample (one per feedback iteration with fixed waits)
    problem: str = ""
    known: bool = True  # False: a placeholder reading, or a value computed from one (a blind preview)
    ramp_s: float = 0.0  # time the slowest channel needs at the safety slew rate from its last value


class PlanLimitError(ProtocolError):
    """A planned value beyond a limit; ``where`` is the protocol line of that limit."""


@dataclass
class Recorder:
    """A plan target that records, converts to SI, checks limits and forwards to a bench.

    Parameters
    ----------
    bench
        The twin's bench (anything with ``apply``, ``roles`` and ``instruments``).
    protocol
        The validated protocol (limits, instrument ranges, safety maxima).
    located
        Where each protocol value is written, to report a violation at its line.
    """

    bench: Any
    protocol: Protocol
    located: Located | None = None
    actions: list[Action] = field(default_factory=list)
    sample: int = 0
    blind: bool = False  # readings are placeholders: they and what follows from them are marked unknown
    _iteration: int = 0
    _read: bool = False  # a reading was taken in this sample (blind: later values depend on it)
    last_si: dict[str, np.ndarray] = field(default_factory=dict)

    def ramp(self, role: str, si: np.ndarray) -> float:
        """Seconds the largest step of ``role`` to ``si`` takes at the safety slew rate (0 without one)."""
        safety = self.protocol.safety
        rate = safety.current_ramp_rate if role == "nudges" else safety.voltage_ramp_rate
        before = self.last_si.get(role, np.zeros_like(si))
        self.last_si[role] = np.asarray(si, float).copy()
        return float(np.max(np.abs(si - before), initial=0.0)) / rate if rate else 0.0

    @property
    def roles(self) -> dict[str, Any]:
        return self.bench.roles

    @property
    def instruments(self) -> dict[str, Any]:
        return self.bench.instruments

    def apply(self, msg: Message) -> Any:
        """Record ``msg``, check it, and forward it to the bench."""
        if isinstance(msg, Set):
            w = self.bench.roles[msg.role]
            model = np.asarray(msg.values, dtype=float)
            si = w.to_si(model)
            action = Action(self.sample, "set", msg.role, model, si, _unit(msg.role), iteration=self._iteration)
            action.known = not (self.blind and self._read and msg.role != "inputs")
            action.ramp_s = self.ramp(msg.role, si)
            self.actions.append(action)
            problem, where = self._check(msg.role, si)
            if problem:
                action.problem = problem
                raise PlanLimitError(problem, where=where, hint="nothing was sent; change the limit or the values")
            return self.bench.apply(msg)
        if isinstance(msg, Read):
            values = self.bench.apply(msg)
            w = self.bench.roles[msg.role]
            si = w.to_si(values)
            it = self._iteration
            action = Action(self.sample, "read", msg.role, values, si, _unit(msg.role), iteration=it)
            action.known = not self.blind
            self._read = True
            self.actions.append(action)
            if self.blind:
                return values  # a placeholder: checked against nothing
            problem, where = self._check(msg.role, si, source=False)
            if problem:
                action.problem = problem
                raise PlanLimitError(problem, where=where, hint="the reading would be clipped or refused")
            return values
        if isinstance(msg, Settle):
            self._iteration += 1
            self.actions.append(Action(self.sample, "settle", seconds=msg.seconds, unit="s", iteration=self._iteration))
            return self.bench.apply(msg)
        if isinstance(msg, Switch):
            self.actions.append(Action(self.sample, "switch", msg.role, on=msg.on, iteration=self._iteration))
            return self.bench.apply(msg)
        if isinstance(msg, Setpoints):  # a query of the instruments' present state: nothing is sent
            return self.bench.apply(msg)
        raise TypeError(f"unknown plan message {msg!r}")

    def next_sample(self) -> None:
        self.sample += 1
        self._iteration = 0
        self._read = False

    def safe_actions(self) -> None:
        """The safe state at the end, as actions: sources to zero (``zero``) or currents off (``hold``)."""
        hold = self.protocol.safety.safe_state == "hold"
        for role in ("inputs", "knobs", "nudges"):
            si = self.last_si.get(role, np.zeros(self.bench.roles[role].size))
            target = si if hold and role != "nudges" else np.zeros_like(si)
            a = Action(self.sample + 1, "safe", role, None, target, _unit(role))
            a.ramp_s = self.ramp(role, target)
            self.actions.append(a)
        self.actions.append(Action(self.sample + 1, "switch", "nudges", on=False))

    def _place(self, *paths: tuple) -> str:
        if self.located is None:
            return ".".join(str(p) for p in paths[0])
        for path in paths:
            for n in range(len(path), 0, -1):
                place = self.located.values.get(path[:n])
                if place is not None:
                    return f"{place}: {'.'.join(map(str, path))}"
        return str(self.located.values.get((), Place("?", 1, 1)))

    def _check(self, role: str, si: np.ndarray, source: bool = True) -> tuple[str, str]:
        """(problem, place) of the first value beyond a limit, or ("", "").

        Sources are checked against the role's limits, the instrument's range and the
        safety maxima; readings against the role's limits and the instrument's range.
        """
        w = self.bench.roles[role]
        unit = _unit(role)
        verb = "would be set to" if source else "reads"
        bad = np.flatnonzero((si < w.low_si) | (si > w.high_si))
        if bad.size:
            i = int(bad[0])
            return (
                f"roles.{role}[{i}] {verb} {si[i]:.6g} {unit}, outside the role's limits "
                f"[{w.low_si:g}, {w.high_si:g}] {unit}",
                self._place(("roles", role, "limits"), ("roles", role)),
            )
        current = role == "nudges"
        key = "current_range" if current else "voltage_range"
        for inst, pos, _ in w.groups:
            lo, hi = getattr(self.protocol.instruments[inst], key)
            vals = si[pos]
            bad = np.flatnonzero((vals < lo) | (vals > hi))
            if bad.size:
                i = int(pos[bad[0]])
                return (
                    f"roles.{role}[{i}] {verb} {si[i]:.6g} {unit}, beyond what {inst} can do [{lo:g}, {hi:g}] {unit}",
                    self._place(("instruments", inst, key), ("instruments", inst)),
                )
        if not source:
            return "", ""
        smax = self.protocol.safety.max_current if current else self.protocol.safety.max_voltage
        bad = np.flatnonzero(np.abs(si) > smax)
        if bad.size:
            i = int(bad[0])
            name = "max_current" if current else "max_voltage"
            return (
                f"roles.{role}[{i}] would be set to {si[i]:.6g} {unit}, beyond safety.{name} = {smax:g} {unit}",
                self._place(("safety", name), ("roles", role, "limits"), ("roles", role)),
            )
        return "", ""


def _unit(role: str) -> str:
    return "A" if role == "nudges" else "V"


@dataclass
class Preview:
    """The recorded actions and, per sample, its feedback statistics."""

    actions: list[Action]
    samples: list[dict[str, Any]]
    error: AeqlabError | None = None
    blind: bool = False  # no twin: readings are placeholders (see :data:`BLIND_NOTES`)


BLIND_NOTES = (
    "no 'simulation:' section: previewed without physics (stand-in instruments; nothing real was opened)",
    "known: the order of the actions, the inputs (from the data), the values from the protocol, every limit, "
    "the ramps at the safety slew rates, and the safe state at the end",
    "NOT predicted: the readings (marked 'placeholder': each parameter read as its knob's value, each output as 0), "
    "the values computed from them (marked 'from readings'), how many feedback iterations each loop takes "
    "(each is shown stopping at its first check), the loss and anything an instrument would report",
    "the start assumes the sources are at 0 as found; add a 'simulation:' section for a preview on a twin",
)


def preview(protocol: Protocol, located: Located | None, samples: int = 1) -> Preview:
    """Run the engine's start and the first ``samples`` training samples on the twin, recorded.

    Raises
    ------
    AeqlabError
        When the protocol has no twin, or the data cannot be loaded.
    """
    from aeqlab.backends import open_backend
    from aeqlab.datasets import load
    from aeqlab.engine.plan import execute
    from aeqlab.engine.trainer import Trainer

    blind = protocol.simulation is None
    data = load(protocol.dataset)
    if blind:
        from aeqlab.backends.sim import open_blind

        backend = open_blind(protocol)
    else:
        backend = open_backend(protocol, "sim")
    recorder = Recorder(backend.bench, protocol, located, blind=blind)
    info: list[dict[str, Any]] = []
    try:
        trainer = Trainer(protocol, backend.bench, data, oracle=backend.oracle, target=recorder)
        trainer.require_oracle()
        execute(trainer.start_plan(), recorder)
        targets = data.targets(data.y_train)
        beta = protocol.method.beta
        for k in range(min(samples, len(data.y_train))):
            recorder.next_sample()
            rec = execute(trainer.sample_plan(data.x_train[k], targets[k], beta), recorder)  # the protocol's method
            trainer.samples_done += 1
            info.append(
                {
                    "sample": k + 1,
                    **rec.phase_iterations(),
                    "converged": rec.converged,
                    "saturated": rec.saturated,
                    "loss": rec.loss,
                }
            )
        recorder.safe_actions()
    except AeqlabError as exc:
        return Preview(recorder.actions, info, exc, blind)
    finally:
        backend.__exit__(None, None, None)  # the twin's sources safe, then closed
    return Preview(recorder.actions, info, blind=blind)


def _values(a: Action, which: str) -> str:
    v = a.model if which == "model" else a.si
    if v is None:
        return ""
    fmt = "{:.4g}" if which == "model" else "{:.4g} " + a.unit
    if v.size <= 4:
        return ", ".join(fmt.format(x) for x in v)
    return f"{v.size} values in [{fmt.format(v.min())}, {fmt.format(v.max())}]"


def render(pv: Preview, protocol: Protocol, console: Any, source: str | Path = "") -> None:
    """Print the preview as a rich table, then one line per sample."""
    from rich.table import Table

    how = "no twin: placeholder readings" if pv.blind else "twin"
    table = Table(title=f"plan of {source or protocol.name}: instrument actions ({how}, no instrument opened)")
    cols = ["#", "sample", "cycle", "action", "role", "channels", "model units", "SI", "limits", "check"]
    if pv.blind:
        cols.insert(-1, "ramp")
    for col in cols:
        table.add_column(col, justify="right" if col in ("#", "sample", "cycle") else "left")
    from rich.markup import escape

    for n, a in enumerate(pv.actions, 1):
        role = getattr(protocol.roles, a.role) if a.role else None
        chans = ", ".join(role.channels) if role else ""
        lim = role.limits if role else None
        limits = f"[{lim.low:g}, {lim.high:g}] {a.unit}" if lim is not None else ("" if role is None else "instrument")
        if a.kind == "switch":
            limits = ""
        if a.kind == "settle":
            model, si = "", f"{a.seconds:g} s"
        elif a.kind == "switch":
            model, si = "", "on" if a.on else "off"
        else:
            model, si = _values(a, "model"), _values(a, "si")
        if a.kind == "safe":
            model = ""
        check = "" if a.kind in ("settle", "switch") else ("[red]BEYOND LIMIT[/red]" if a.problem else "ok")
        if not a.known:
            check = "placeholder" if a.kind == "read" else "from readings"
            if a.kind == "read":
                model, si = "?", "?"
        stage = "end" if a.kind == "safe" or (pv.blind and a.sample > len(pv.samples)) else str(a.sample)
        cells = [str(n), "start" if a.sample == 0 else stage, str(a.iteration or ""), a.kind, a.role, chans]
        extra = [f"{a.ramp_s:.3g} s" if a.ramp_s else ""] if pv.blind else []
        table.add_row(*(escape(c) for c in [*cells, model, si, limits, *extra]), check)
    console.print(table)
    if pv.blind:
        for note in BLIND_NOTES:
            console.print(f"note: {note}", markup=False)
        for s in pv.samples:
            console.print(f"sample {s['sample']}: feedback iterations and loss not predicted (no physics)",
                          markup=False)
        return
    for s in pv.samples:
        phases = ", ".join(f"{k} {v}" for k, v in s.items() if k not in ("sample", "converged", "saturated", "loss"))
        console.print(
            f"sample {s['sample']}: feedback iterations {phases}; {'converged' if s['converged'] else 'NOT converged'}"
            f"{', saturated' if s['saturated'] else ''}; loss {s['loss']:.4g}"
        )
