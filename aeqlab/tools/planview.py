"""Plan preview: what the instruments will be told during the first training samples.

The samples run on the protocol's twin (``open_backend(protocol, "sim")``); no real
instrument is opened. A :class:`Recorder` stands between the plan and the twin's
bench: it records every message, converts model values to SI with each role's
calibration, checks them against the role's limits, the instruments' ranges and the
safety maxima, and forwards them, so values that depend on measurements are the
twin's real ones. A value beyond a limit stops the preview and is reported at the
protocol line of the limit it breaks. A composition root: it may open backends.
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
    _iteration: int = 0

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
            self.actions.append(action)
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

    if protocol.simulation is None:
        raise ProtocolError(
            "'aeqlab plan' runs the samples on the protocol's twin, and this protocol has no 'simulation:' section",
            where=str(located.values[()].file) if located else None,
            hint="add one: 'aeqlab init twin' writes a template",
        )
    data = load(protocol.dataset)
    backend = open_backend(protocol, "sim")
    recorder = Recorder(backend.bench, protocol, located)
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
    except AeqlabError as exc:
        return Preview(recorder.actions, info, exc)
    finally:
        backend.__exit__(None, None, None)  # the twin's sources safe, then closed
    return Preview(recorder.actions, info)


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

    table = Table(title=f"plan of {source or protocol.name}: instrument actions (twin, no instrument opened)")
    for col in ("#", "sample", "cycle", "action", "role", "channels", "model units", "SI", "limits", "check"):
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
        check = "" if a.kind in ("settle", "switch") else ("[red]BEYOND LIMIT[/red]" if a.problem else "ok")
        cells = [str(n), "start" if a.sample == 0 else str(a.sample), str(a.iteration or ""), a.kind, a.role, chans]
        table.add_row(*(escape(c) for c in [*cells, model, si, limits]), check)
    console.print(table)
    for s in pv.samples:
        phases = ", ".join(f"{k} {v}" for k, v in s.items() if k not in ("sample", "converged", "saturated", "loss"))
        console.print(
            f"sample {s['sample']}: feedback iterations {phases}; {'converged' if s['converged'] else 'NOT converged'}"
            f"{', saturated' if s['saturated'] else ''}; loss {s['loss']:.4g}"
        )
