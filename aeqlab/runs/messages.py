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
class Validate:
    """Predict the validation split (``dataset.validation``). Result: an :class:`~aeqlab.engine.records.Evaluation`."""

    epoch: int


@dataclass(frozen=True)
class MeasureStability:
    """Read the twin's stability ratio ρ: the largest over the first 20 training inputs and ``examples``.

    Result: a :class:`TwinReading`, or None on a bench (no twin to ask).
    """

    examples: tuple[int, ...] = ()


@dataclass(frozen=True)
class UnstableJumps:
    """How many unstable jumps the twin saw since the monitor's last reading (nothing is taken).

    Result: the count; 0 on a bench. Asked after every sample: a jump calls for a reading at once.
    """


@dataclass(frozen=True)
class TwinReading:
    """What a twin shows the stability monitor: ρ now, and the unstable jumps since the last reading."""

    rho: float
    jumps: int = 0  # jumps from an equilibrium with ρ ≥ 1 since the last reading
    jump_rho: float = 0.0  # the largest ρ among them

    @property
    def worst(self) -> float:
        """ρ as the monitor judges it: the larger of ρ now and ρ at the jumps in between."""
        return max(self.rho, self.jump_rho)


@dataclass(frozen=True)
class Rollback:
    """Take ``targets`` as θ* from here on (homeostasis holds them from the next sample); on a twin, ε times
    ``epsilon_factor``. Result: None."""

    targets: Any
    epsilon_factor: float = 1.0


@dataclass(frozen=True)
class Halt:
    """End the run here, resumable (:class:`~aeqlab.errors.StabilityStop`, with ``reason``)."""

    reason: str


@dataclass(frozen=True)
class Emit:
    """Hand an event (a committed step, its checkpoint with it) to every subscriber."""

    event: Any


RunMessage = (
    Start | Resume | Evaluate | Validate | TrainSample | MeasureStability | UnstableJumps | Rollback | Halt | Emit
)
