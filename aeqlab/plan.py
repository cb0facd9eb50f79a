"""The procedure as data: plans yield messages, an executor applies them to a bench.

A plan is a generator. It yields :class:`Set`, :class:`Read`, :class:`Switch` and
:class:`Settle` messages and receives the result of each (the values read, or
``None``). Because a plan never touches an instrument itself, the same plan can be
run on a bench, printed, limit-checked or journaled, and cleanup is owned by the
executor, never by the method.
"""

from __future__ import annotations

from collections.abc import Generator
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


Message = Set | Read | Switch | Settle
R = TypeVar("R")
Plan = Generator[Message, Any, R]


class Target(Protocol):
    """What an executor applies messages to (a bench, or a recorder in front of one)."""

    def apply(self, msg: Message) -> Any: ...


def execute(plan: Plan[R], target: Target) -> R:
    """Run a plan to completion against a target and return the plan's result."""
    result: Any = None
    try:
        msg = next(plan)
        while True:
            result = target.apply(msg)
            msg = plan.send(result)
    except StopIteration as stop:
        return stop.value
