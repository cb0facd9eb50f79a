"""The training engine: epochs of samples, each a plan executed against a bench.

The engine knows only the bench (and through it the drivers' capability Protocols);
it owns cleanup: whatever happens, every source goes to its safe state on the way out.

After every committed step (the initial evaluation, each training sample, each
epoch's evaluation) the engine hands its observers a :class:`Checkpoint`: everything
it needs to continue exactly from there (targets θ*, knob setpoints, learnt feedback
memory, the order generator's state, the position and the epoch's running totals).
:meth:`Trainer.run` continues from such a checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aeqlab.datasets import Split
from aeqlab.engine.bench import Bench
from aeqlab.engine.feedback import SecantGains
from aeqlab.engine.methods import exact, spsa
from aeqlab.engine.methods.aeqprop import EngineState, SampleRecord, predict, train_sample
from aeqlab.engine.methods.phases import FeedbackMemory, PhaseResult, run_phase
from aeqlab.engine.plan import Message, Plan, Read, Settle, Stopped, execute
from aeqlab.errors import InputError, Interrupted
from aeqlab.protocol import Protocol


@dataclass
class EpochMetrics:
    epoch: int
    samples: int  # training samples so far
    beta: float
    train_accuracy: float  # running accuracy (regression: R²) of the free-phase predictions during the epoch
    train_loss: float
    test_accuracy: float
    test_loss: float
    homeostasis_iterations: float  # mean per sample
    homeostasis_unconverged: int
    saturated: int
    step_norm: float  # mean ‖θ′ − θ_h‖
    wall_s: float
    checkpoint: Checkpoint | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "checkpoint"}


@dataclass
class Evaluation:
    accuracy: float
    loss: float
    checkpoint: Checkpoint | None = field(default=None, repr=False, compare=False)


def r_squared(half_sse: float, targets: np.ndarray) -> float:
    """Coefficient of determination from Σ½‖ŷ − y‖² and the targets."""
    sst = float(np.sum((targets - targets.mean(axis=0)) ** 2))
    return 1.0 - 2.0 * half_sse / sst if sst > 0 else float("nan")


@dataclass
class EpochTotals:
    """Running sums of an epoch's training samples (restored with a checkpoint mid-epoch)."""

    correct: int = 0
    loss: float = 0.0
    iterations: int = 0
    unconverged: int = 0
    saturated: int = 0
    step: float = 0.0
    wall_s: float = 0.0

    def add(self, rec: SampleRecord) -> None:
        self.correct += rec.correct
        self.loss += rec.loss
        self.iterations += rec.homeostasis_iterations
        self.unconverged += not rec.converged
        self.saturated += rec.saturated
        self.step += float(np.linalg.norm(rec.step))


@dataclass
class Checkpoint:
    """Everything the engine needs to continue exactly after a committed step.

    Attributes
    ----------
    epoch
        The epoch in progress (1-based).
    done
        Training samples of that epoch already done; equal to the epoch's length when
        only its evaluation is left.
    samples_done
        Training samples done in the whole run.
    beta
        Nudging strength of the epoch in progress.
    rng_state
        State of the training-order generator at the start of ``epoch`` (before it
        drew that epoch's order).
    totals
        Running sums of the epoch in progress.
    state
        Targets θ*, knob setpoints and the learnt feedback memory. Shared with the
        running engine: observers must copy or serialise it before returning.
    """

    epoch: int
    done: int
    samples_done: int
    beta: float
    rng_state: dict[str, Any]
    totals: EpochTotals
    state: EngineState


@dataclass
class SampleEvent:
    """Sent to observers after each training sample.

    ``phase_seconds`` is the wall-clock time of the free, homeostatic and clamped
    phases (None when the plan's messages could not be attributed to phases).
    """

    epoch: int
    index: int
    total: int
    record: SampleRecord
    example: int = -1
    label: int = -1
    target: np.ndarray | None = None
    samples_done: int = 0
    seconds: float = 0.0
    phase_seconds: tuple[float, float, float] | None = None
    checkpoint: Checkpoint | None = field(default=None, repr=False)


def phase_seconds(
    timeline: list[tuple[Message, float]], rec: SampleRecord, free_held: bool
) -> tuple[float, float, float] | None:
    """Split a sample's message timeline into its free, homeostatic and clamped phases.

    Every iteration of a phase's feedback loop starts with a settle wait that follows a
    write (or starts the phase); repeated settle-and-read rounds of one iteration
    follow a read. A phase of ``k`` iterations therefore holds ``k + 1`` such starts.
    What follows the clamped phase (nudges off) counts as clamped. Returns None when
    the timeline does not fit the record's iteration counts.
    """
    counts = [rec.free.iterations + 1 if free_held else 1]
    separate = rec.homeostatic is not rec.free
    if separate:
        counts.append(rec.homeostatic.iterations + 1)
    counts.append(rec.clamped.iterations + 1)
    times = [0.0] * len(counts)
    phase, seen, prev = 0, 0, None
    for msg, dt in timeline:
        if isinstance(msg, Settle) and not isinstance(prev, Read):
            if seen == counts[phase]:
                if phase + 1 == len(counts):
                    return None
                phase, seen = phase + 1, 0
            seen += 1
        times[phase] += dt
        prev = msg
    if phase + 1 != len(counts) or seen != counts[-1]:
        return None
    if not separate:
        times.insert(1, 0.0)
    return (times[0], times[1], times[2])


@dataclass
class Trainer:
    """Runs a protocol's method and schedule on a bench.

    Parameters
    ----------
    protocol, bench, data
        What to run, where, on what.
    on_sample, on_epoch, on_evaluation
        Observers (progress display, run store). ``on_evaluation`` receives the
        evaluation before training.
    stop
        Polled after every committed sample (and between test predictions); when it
        returns True the run stops with :class:`aeqlab.errors.Interrupted`.
    target
        What plans are executed against (default: the bench itself).
    oracle
        ``oracle(x, y) -> ε⊙∇L`` for method ``exact``; only a composition root that owns
        a twin can supply it (see :mod:`aeqlab.backends`).
    """

    protocol: Protocol
    bench: Bench
    data: Split
    on_sample: Callable[[SampleEvent], None] | None = None
    on_epoch: Callable[[EpochMetrics], None] | None = None
    on_evaluation: Callable[[Evaluation], None] | None = None
    stop: Callable[[], bool] | None = None
    target: Any = None
    history: list[EpochMetrics] = field(default_factory=list)
    state: EngineState | None = None
    samples_done: int = 0
    safe_state_failures: list[str] | None = None
    rehome_result: PhaseResult | None = None
    oracle: exact.Oracle | None = None

    @property
    def _target(self) -> Any:
        return self.bench if self.target is None else self.target

    def _stop_requested(self) -> bool:
        return self.stop is not None and bool(self.stop())

    def start(self) -> None:
        """Take the bench as found: read θ (the first targets) and the knob setpoints."""
        b = self.bench
        knobs = b.setpoints("knobs")
        b.write("nudges", np.zeros(b.roles["nudges"].size))
        b.switch("nudges", True)
        targets = b.read("params")
        self.state = EngineState(targets=targets, knobs=knobs, memory=self._fresh_memory())

    def sample_plan(self, x: np.ndarray, y: np.ndarray, beta: float) -> Plan[SampleRecord]:
        """The plan of one training sample for the protocol's method."""
        method = self.protocol.method
        if method.name == "spsa":
            return spsa.train_sample(self.state, x, y, method, self.samples_done)
        if method.name == "exact":
            self.require_oracle()
            return exact.train_sample(self.state, x, y, method, beta, self.oracle)
        return train_sample(self.state, x, y, method, beta)

    def require_oracle(self) -> None:
        """Refuse method ``exact`` without an oracle (one line, before anything moves)."""
        if self.protocol.method.name == "exact" and self.oracle is None:
            raise InputError(
                "method exact needs the twin's gradient oracle, and this bench has none",
                where="method.name",
                hint="run it on the twin (--sim), or choose aeqprop or spsa",
            )

    def _fresh_memory(self) -> FeedbackMemory:
        b = self.bench
        lo, hi = b.roles["knobs"].model_bounds
        n = b.roles["knobs"].size
        low = np.full(n, lo)
        high = np.full(n, hi)
        for inst, pos, ch in b.roles["knobs"].groups:
            table = b.instruments[inst].output_limits
            w = b.roles["knobs"]
            a, c = w.to_model(table.low[ch]), w.to_model(table.high[ch])
            low[pos] = np.maximum(low[pos], np.minimum(a, c))
            high[pos] = np.minimum(high[pos], np.maximum(a, c))
        return FeedbackMemory(
            knob_gains=SecantGains(n, 1.0, min_step=10 * self.protocol.method.homeostasis.tolerance),
            susceptibility=np.eye(b.roles["nudges"].size),
            knob_low=low,
            knob_high=high,
        )

    def resume(self, checkpoint: Checkpoint, rehome: bool = True) -> None:
        """Take up a checkpoint's state on this bench.

        With ``rehome`` (a bench, whose physics went on without us) the knobs are set
        to their checkpointed values and homeostasis brings the measured parameters
        back to the checkpointed targets before training goes on. Without it (a twin
        whose own snapshot was restored) nothing is read or moved, so the run
        continues bit for bit.
        """
        b = self.bench
        self.state = checkpoint.state
        self.samples_done = checkpoint.samples_done
        b.write("nudges", np.zeros(b.roles["nudges"].size))
        b.switch("nudges", True)
        if rehome:
            method = self.protocol.method
            b.write("knobs", self.state.knobs)
            res = execute(
                run_phase(
                    self.state.memory,
                    self.state.knobs,
                    self.state.targets,
                    None,
                    method.homeostasis,
                    method.tracking,
                    method.settle,
                ),
                self._target,
            )
            self.state.knobs = res.knobs
            self.rehome_result = res

    def evaluate(self, x: np.ndarray, labels: np.ndarray) -> Evaluation:
        method = self.protocol.method
        targets = self.data.targets(labels)
        correct, loss = 0, 0.0
        for xi, ti, li in zip(x, targets, labels):
            if self._stop_requested():
                raise Interrupted(f"stopped during an evaluation, after training sample {self.samples_done}")
            out = execute(predict(self.state, xi, method), self._target)
            if self.data.task == "classification":
                correct += int(np.argmax(out) == li)
            loss += 0.5 * float(np.sum((out - ti) ** 2))
        if self.data.task == "regression":  # the accuracy of a regression is its R²
            return Evaluation(r_squared(loss, targets), loss / len(labels))
        return Evaluation(correct / len(labels), loss / len(labels))

    def _checkpoint(self, epoch: int, done: int, beta: float, rng_state: dict, totals: EpochTotals) -> Checkpoint:
        return Checkpoint(epoch, done, self.samples_done, beta, rng_state, totals, self.state)

    def train_epoch(
        self,
        epoch: int,
        beta: float,
        rng: np.random.Generator,
        done: int = 0,
        totals: EpochTotals | None = None,
    ) -> EpochMetrics:
        """Train one epoch (from its ``done``-th sample, with the running ``totals`` so far)."""
        method = self.protocol.method
        rng_state = rng.bit_generator.state
        t0 = time.perf_counter()
        totals = totals or EpochTotals()
        wall0 = totals.wall_s
        n = len(self.data.y_train)
        order = rng.permutation(n) if self.protocol.schedule.shuffle else np.arange(n)
        targets = self.data.targets(self.data.y_train)
        for k in range(done, n):
            i = int(order[k])
            timeline: list[tuple[Message, float]] = []
            ts = time.perf_counter()
            rec = execute(
                self.sample_plan(self.data.x_train[i], targets[i], beta),
                self._target,
                timeline=timeline,
            )
            seconds = time.perf_counter() - ts
            self.samples_done += 1
            totals.add(rec)
            totals.wall_s = wall0 + time.perf_counter() - t0
            if self.on_sample:
                self.on_sample(
                    SampleEvent(
                        epoch,
                        k,
                        n,
                        rec,
                        example=i,
                        label=int(self.data.y_train[i]) if self.data.task == "classification" else -1,
                        target=targets[i],
                        samples_done=self.samples_done,
                        seconds=seconds,
                        phase_seconds=phase_seconds(timeline, rec, method.free_phase_homeostasis),
                        checkpoint=self._checkpoint(epoch, k + 1, beta, rng_state, totals),
                    )
                )
            if k + 1 < n and self._stop_requested():
                raise Interrupted(f"stopped after training sample {self.samples_done}")
        ev = self.evaluate(self.data.x_test, self.data.y_test)
        next_beta = beta * self.protocol.schedule.beta_decay
        m = EpochMetrics(
            epoch=epoch,
            samples=self.samples_done,
            beta=beta,
            train_accuracy=(
                r_squared(totals.loss, self.data.targets(self.data.y_train))
                if self.data.task == "regression"
                else totals.correct / n
            ),
            train_loss=totals.loss / n,
            test_accuracy=ev.accuracy,
            test_loss=ev.loss,
            homeostasis_iterations=totals.iterations / n,
            homeostasis_unconverged=totals.unconverged,
            saturated=totals.saturated,
            step_norm=totals.step / n,
            wall_s=wall0 + time.perf_counter() - t0,
        )
        m.checkpoint = self._checkpoint(epoch + 1, 0, next_beta, rng.bit_generator.state, EpochTotals())
        self.history.append(m)
        if self.on_epoch:
            self.on_epoch(m)
        return m

    def run(
        self, epochs: int, seed: int, resume: Checkpoint | None = None, rehome: bool = True
    ) -> tuple[Evaluation | None, list[EpochMetrics]]:
        """Train up to epoch ``epochs``; returns the initial evaluation and this call's epoch metrics.

        From a checkpoint (``resume``), training continues where it stopped and the
        initial evaluation is None (it was recorded by the run that made it). Every
        source goes to its safe state on the way out, whatever happens.

        Parameters
        ----------
        epochs
            The last epoch to train (the run's planned length, also when resuming).
        seed
            Seed of the training order (replaced by the checkpoint's generator state).
        resume
            A checkpoint to continue from, or None to take the bench as found.
        rehome
            With ``resume``: set the knobs and run homeostasis to the checkpointed θ*
            first (a bench); False when the backend's own snapshot was restored.

        Raises
        ------
        aeqlab.errors.Interrupted
            When ``stop`` asked for it (after the sample in flight was committed).
        """
        self.require_oracle()
        rng = np.random.default_rng(seed)
        initial = None
        try:
            if resume is None:
                self.start()
                initial = self.evaluate(self.data.x_test, self.data.y_test)
                beta, epoch, done, totals = self.protocol.method.beta, 1, 0, EpochTotals()
                initial.checkpoint = self._checkpoint(1, 0, beta, rng.bit_generator.state, totals)
                if self.on_evaluation:
                    self.on_evaluation(initial)
            else:
                self.resume(resume, rehome=rehome)
                rng.bit_generator.state = resume.rng_state
                beta, epoch, done, totals = resume.beta, resume.epoch, resume.done, resume.totals
            while epoch <= epochs:
                if self._stop_requested():
                    raise Interrupted(f"stopped after training sample {self.samples_done}")
                self.train_epoch(epoch, beta, rng, done, totals)
                beta *= self.protocol.schedule.beta_decay
                epoch, done, totals = epoch + 1, 0, EpochTotals()
            return initial, self.history
        except Stopped:
            raise Interrupted(f"stopped after training sample {self.samples_done}") from None
        finally:
            self.shutdown()

    def shutdown(self) -> list[str]:
        """Every source to its safe state; returns (and keeps) the failures."""
        failures = self.bench.safe_state()
        self.safe_state_failures = failures
        return failures
