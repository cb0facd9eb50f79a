"""What a training method is to the engine: a plan per sample and a record type of its own.

A method never touches an instrument: :meth:`TrainingMethod.sample` returns a plan
(:mod:`aeqlab.engine.plan`) that the run engine executes against the bench. Methods
are found by name in :mod:`aeqlab.engine.methods.registry`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from aeqlab.engine.plan import Plan

if TYPE_CHECKING:
    from aeqlab.engine.state import EngineState
    from aeqlab.protocol import Method

Oracle = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``oracle(x, y)``: ε⊙∇_θL at the system's present equilibrium (model units, role order)."""


@runtime_checkable
class SampleRecord(Protocol):
    """What every method's record of one training sample offers the engine and the journal."""

    prediction: np.ndarray
    loss: float
    correct: bool
    step: np.ndarray

    @property
    def converged(self) -> bool: ...

    @property
    def saturated(self) -> bool: ...

    @property
    def homeostasis_iterations(self) -> int: ...

    def journal_fields(self) -> dict[str, Any]:
        """The method's columns of the journal's ``samples`` table (see docs/journal.md)."""
        ...

    def phase_iterations(self) -> dict[str, int]:
        """Feedback iterations per phase, by the phase names of the plan's marks."""
        ...


@dataclass
class SampleContext:
    """What a method may know besides the state and the example."""

    config: Method  # the protocol's method section
    samples_done: int  # training samples before this one, in the whole run
    oracle: Oracle | None = None  # only composition roots that own a twin supply one


class TrainingMethod:
    """Base of training methods. Subclasses set :attr:`name` and implement :meth:`sample`."""

    name: ClassVar[str] = ""
    needs_oracle: ClassVar[bool] = False
    phases: ClassVar[tuple[str, ...]] = ()  # the phase marks its plans yield, in order

    def sample(
        self, state: EngineState, x: np.ndarray, y: np.ndarray, beta: float, ctx: SampleContext
    ) -> Plan[SampleRecord]:
        """The plan of one training sample; updates ``state`` (targets, knobs) as it goes."""
        raise NotImplementedError


def held_phase_fields(record: Any, first: Any, second: Any | None) -> dict[str, Any]:
    """The journal columns of a method that only holds θ (no nudging): one or two held phases.

    ``first`` fills the free-phase columns, ``second`` (when given) the homeostatic ones.
    """
    second_or_first = first if second is None else second
    return {
        "predicted": int(np.argmax(record.prediction)),
        "correct": int(record.correct),
        "loss": float(record.loss),
        "free_output": record.prediction,
        "nudge_homeostatic": None,
        "nudge_clamped": None,
        "nudge_norm": 0.0,
        "step_norm": float(np.linalg.norm(record.step)),
        "free_iterations": int(first.iterations),
        "homeostatic_iterations": int(second.iterations) if second is not None else 0,
        "clamped_iterations": 0,
        "free_residual": float(first.residual),
        "residual": float(second_or_first.residual),
        "tracking_residual": 0.0,
        "converged": int(record.converged),
        "saturated": int(record.saturated),
        "settle_timeouts": int(first.settle_timeouts + (second.settle_timeouts if second is not None else 0)),
    }
