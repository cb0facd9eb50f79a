"""The run level as data: the messages a run plan yields to the run engine.

A run plan (:mod:`aeqlab.runs.plans`) is a generator of these messages, as a sample's
plan is a generator of instrument messages (:mod:`aeqlab.engine.plan`). The run
engine (:mod:`aeqlab.runs.engine`) executes each and sends back its result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aeqlab.engine.records import Checkpoint


@dataclass(frozen=True)
class Start:
    """Take the bench as found (the first targets are the parameters as read). Result: the engine state."""


@dataclass(frozen=True)
class Resume:
    """Take up a checkpoint; with ``rehome``, bring the measured parameters back to its targets first."""

    checkpoint: Checkpoint
    rehome: bool = True


@dataclass(frozen=True)
class Evaluate:
    """Predict the test set. Result: an :class:`~aeqlab.engine.records.Evaluation`."""

    epoch: int


@dataclass(frozen=True)
class TrainSample:
    """Train on one example. Result: a :class:`~aeqlab.engine.records.SampleEvent` (without checkpoint)."""

    epoch: int
    index: int
    example: int
    beta: float


@dataclass(frozen=True)
class Emit:
    """Hand an event (a committed step, its checkpoint with it) to every subscriber."""

    event: Any


RunMessage = Start | Resume | Evaluate | TrainSample | Emit
