"""The procedure as data: plans yield messages, an executor applies them to a bench.

A plan is a generator. It yields :class:`Set`, :class:`Read`, :class:`Setpoints`,
:class:`Switch` and :class:`Settle` messages and receives the result of each (the
values read, or ``None``); :class:`Mark` messages name the phase that follows and
never reach the target. Because a plan never touches an instrument itself, the same plan can be
run on a bench, printed, limit-checked or journaled, and cleanup is owned by the
executor, never by the method.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np

ROLES = ("inputs", "outputs", "knobs", "params", "nudges")


@dataclass(frozen=True, eq=False)
class Set:
    """Set the sources of a role to values in model units (knobs, inputs: volts; nudges: currents)."""

    role: str
    values: np.ndarray


@dataclass(frozen=True)
class Read:
    """Read a role's channels; the plan receives the values in model units."""

    role: str


@dataclass(frozen=True)
class Switch:
    """Switch a role's current outputs on or off."""

    role: str
    on: bool


@dataclass(frozen=True)
class Settle:
    """Let the system settle (a fixed wait on the bench's clock)."""

    seconds: float


@dataclass(frozen=True)
class Setpoints:
    """Ask a voltage role's instruments for their present setpoints; the plan receives model units."""

    role: str


@dataclass(frozen=True)
class Mark:
    """The messages that follow belong to ``phase`` (for timings); handled by the executor, never sent."""

    phase: str


Message = Set | Read | Setpoints | Switch | Settle | Mark
R = TypeVar("R")
Plan = Generator[Message, Any, R]


class Target(Protocol):
    """What an executor applies messages to (a bench, or a recorder in front of one)."""

    def apply(self, msg: Message) -> Any: ...


class Stopped(Exception):
    """A plan was stopped between two messages because a stop was requested."""


def execute(
    plan: Plan[R],
    target: Target,
    *,
    stop: Callable[[], bool] | None = None,
    timeline: list[tuple[Message, float]] | None = None,
) -> R:
    """Run a plan to completion against a target and return the plan's result.

    Every message is applied whole: a stop request is looked at only between two
    messages, never during one, so a multi-channel update is never left half done.

    Parameters
    ----------
    plan
        The generator of messages.
    target
        What the messages are applied to (a bench).
    stop
        Asked before each message after the first; when it returns True the plan is
        closed and :class:`Stopped` raised. None runs the plan to its end.
    timeline
        When given, receives ``(message, seconds)`` for every message applied
        (wall-clock time the target took), in order; a :class:`Mark` with 0 s.
    """
    result: Any = None
    try:
        msg = next(plan)
        while True:
            if isinstance(msg, Mark):
                if timeline is not None:
                    timeline.append((msg, 0.0))
                msg = plan.send(None)
                continue
            if timeline is None:
                result = target.apply(msg)
            else:
                t0 = time.perf_counter()
                result = target.apply(msg)
                timeline.append((msg, time.perf_counter() - t0))
            if stop is not None and stop():
                plan.close()
                raise Stopped("stopped between two messages")
            msg = plan.send(result)
    except StopIteration as done:
        return done.value


def phase_seconds(timeline: list[tuple[Message, float]]) -> dict[str, float]:
    """Wall-clock seconds per phase of a timeline, the phases named by its :class:`Mark` messages.

    What comes before the first mark counts as ``"start"``.
    """
    out: dict[str, float] = {}
    phase = "start"
    for msg, dt in timeline:
        if isinstance(msg, Mark):
            phase = msg.phase
            out.setdefault(phase, 0.0)
        else:
            out[phase] = out.get(phase, 0.0) + dt
    return out
