"""What subscribers of a run receive: one event per committed step, from opening to closing.

Every event has a ``kind`` (``"open"``, ``"evaluation"``, ``"sample"``, ``"epoch"``,
``"params"``, ``"rehome"``, ``"close"``) and :meth:`RunEvent.request_stop`, which asks the
run to stop after the sample in flight (a callback's way to end a run). Events that
commit a step carry its :class:`~aeqlab.engine.records.Checkpoint`; subscribers
must copy what they keep, as the running engine goes on changing its state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from aeqlab.engine.records import EpochMetrics, Evaluation, SampleEvent


@dataclass
class RunEvent:
    kind: ClassVar[str] = ""
    _stop: Callable[[str], None] | None = field(default=None, init=False, repr=False, compare=False)

    def request_stop(self, reason: str = "stopped by a callback") -> None:
        """Stop the run after the sample in flight (it ends as ``interrupted``, resumable)."""
        if self._stop is not None:
            self._stop(reason)


@dataclass
class Opened(RunEvent):
    """A session begins: a new run (``mode`` start) or a resumed one."""

    kind: ClassVar[str] = "open"
    mode: str = "start"  # start | resume | resume --force | from-best
    run_dir: str | None = None
    epochs: int = 0
    samples_per_epoch: int = 0
    samples_done: int = 0
    task: str = "classification"
    protocol_text: str | None = None  # a changed protocol a forced resume runs
    parent: dict[str, Any] | None = None  # a child run's (from-best): the run and the best it starts from


@dataclass
class InitialEvaluation(RunEvent):
    """The test set before training (epoch 0)."""

    kind: ClassVar[str] = "evaluation"
    evaluation: Evaluation | None = None
    knobs: np.ndarray | None = None

    @property
    def accuracy(self) -> float:
        return self.evaluation.accuracy

    @property
    def loss(self) -> float:
        return self.evaluation.loss


@dataclass
class SampleDone(RunEvent):
    """A training sample committed."""

    kind: ClassVar[str] = "sample"
    sample: SampleEvent | None = None
    snapshot: bool = False  # a full parameter snapshot goes with it
    replayed: bool = False  # recomputed on resume from the last full checkpoint; journaled before

    @property
    def epoch(self) -> int:
        return self.sample.epoch

    @property
    def samples_done(self) -> int:
        return self.sample.samples_done

    @property
    def loss(self) -> float:
        return self.sample.record.loss

    @property
    def record(self) -> Any:
        return self.sample.record


@dataclass
class EpochDone(RunEvent):
    """An epoch ended (its evaluation, when the schedule asks for one, included)."""

    kind: ClassVar[str] = "epoch"
    metrics: EpochMetrics | None = None

    @property
    def epoch(self) -> int:
        return self.metrics.epoch

    @property
    def test_accuracy(self) -> float | None:
        return self.metrics.test_accuracy


@dataclass
class ParamsSaved(RunEvent):
    """The schedule's ``checkpoint_every``: the parameters at the end of an epoch, to keep as a file."""

    kind: ClassVar[str] = "params"
    epoch: int = 0
    theta: np.ndarray | None = None


@dataclass
class Rehomed(RunEvent):
    """A resumed run on a bench brought the parameters back to the checkpoint's targets."""

    kind: ClassVar[str] = "rehome"
    iterations: int = 0
    residual: float = 0.0


@dataclass
class Closed(RunEvent):
    """The session ended; every source was sent to its safe state (``safe_state`` says what was confirmed)."""

    kind: ClassVar[str] = "close"
    status: str = "failed"  # completed | interrupted | failed
    error: str | None = None
    exit_code: int = 1
    safe_state: str = "unknown"  # "safe", or the failures
    samples_done: int = 0
    wall_s: float = 0.0
    targets: np.ndarray | None = None  # the last committed θ*
    exception: BaseException | None = field(default=None, repr=False, compare=False)  # what ended a failed run
