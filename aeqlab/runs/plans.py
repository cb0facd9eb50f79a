"""Run plans: a whole run as a generator of run messages (start or resume, samples, evaluations, commits).

The plan decides the order of things and what each committed step carries; the run
engine executes the messages, owns stopping and cleanup. Every schedule field acts
here: ``epochs``, ``shuffle``, ``beta_decay``, ``beta_steps``, ``evaluate_every``
(the last epoch is always evaluated) and ``checkpoint_every`` (a parameter file
every N epochs); with a ``stability`` section, the monitor's readings and actions
and the best parameters by the validation split (:mod:`aeqlab.runs.stability`).
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np

from aeqlab.engine.records import Checkpoint, EpochTotals
from aeqlab.engine.state import EngineState
from aeqlab.engine.trainer import Trainer
from aeqlab.protocol import Schedule
from aeqlab.runs.events import EpochDone, InitialEvaluation, ParamsSaved, Rehomed, SampleDone
from aeqlab.runs.messages import Emit, Evaluate, Resume, RunMessage, Start, TrainSample, UnstableJumps, Validate
from aeqlab.runs.stability import Best, BestParams, StabilityMonitor

RunPlan = Generator[RunMessage, Any, None]
WINDOW_READS = 20  # training examples a stability reading looks at, at most


@dataclass(frozen=True)
class Origin:
    """Where a child run (``resume --from-best``) starts: another run's parameters at the end of its ``epoch``.

    ``targets`` are θ* there and ``knobs`` the setpoints that held them (None: the knobs as
    found); ``samples_done`` the training samples behind them; ``beta`` the β the next
    epoch trains with.
    """

    targets: np.ndarray
    knobs: np.ndarray | None
    epoch: int
    samples_done: int
    beta: float


def beta_of_epoch(schedule: Schedule, beta0: float, epoch: int, previous: float | None = None) -> float:
    """β of ``epoch``: a ``beta_steps`` entry starting there, else the previous epoch's β times ``beta_decay``."""
    for step in schedule.beta_steps:
        if step.epoch == epoch:
            return float(step.beta)
    if epoch == 1 or previous is None:
        return beta0
    return previous * schedule.beta_decay


def evaluated(schedule: Schedule, epoch: int, last: int) -> bool:
    """Whether the test set is evaluated at the end of ``epoch``."""
    return epoch % schedule.evaluate_every == 0 or epoch == last


def training(
    trainer: Trainer,
    epochs: int,
    seed: int,
    *,
    resume: Checkpoint | None = None,
    rehome: bool = True,
    snapshot_every: int = 1,
    monitor: StabilityMonitor | None = None,
    origin: Origin | None = None,
) -> RunPlan:
    """The plan of a run up to epoch ``epochs``, from the start, from a checkpoint or from another run's parameters.

    Parameters
    ----------
    trainer
        The protocol's method on the bench and the data.
    epochs
        The last epoch to train (the run's planned length, also when resuming).
    seed
        Seed of the training order (replaced by the checkpoint's generator state).
    resume
        A checkpoint to continue from, or None to take the bench as found.
    rehome
        With ``resume``: homeostasis to the checkpointed θ* first (a bench); False
        when the backend's own snapshot was restored (a twin: bit for bit).
    snapshot_every
        A full parameter snapshot goes with every N-th sample.
    monitor
        The stability monitor and the best parameters (:mod:`aeqlab.runs.stability`), or None.
    origin
        Without ``resume``: a child run's start (:class:`Origin`); after taking the bench as
        found, homeostasis brings the parameters to the origin's, and training goes on at
        the epoch after the origin's, in the order the seed gives that epoch.
    """
    schedule = trainer.protocol.schedule
    rng = np.random.default_rng(seed)
    best = monitor.best if monitor is not None else Best()
    if resume is None:
        found = yield Start()
        trainer.state.memory.dither_seed = int(seed)  # the knob dither follows the run's seed, as the order does
        beta, epoch, done, totals = beta_of_epoch(schedule, trainer.protocol.method.beta, 1), 1, 0, EpochTotals()
        if origin is not None:
            beta, epoch = yield from _take_up(trainer, origin, found, rng)
        initial = yield Evaluate(0)
        # validated before the first checkpoint is committed: a twin's snapshot then holds the state
        # the first sample starts from (the validation's relaxations move the twin's states)
        found = yield from _validated(trainer, best, epoch - 1)
        initial.checkpoint = trainer.checkpoint(epoch, 0, beta, rng.bit_generator.state, totals)
        yield Emit(InitialEvaluation(evaluation=initial, knobs=trainer.state.knobs.copy()))
        if found is not None:
            yield Emit(found)
    else:
        rehomed = yield Resume(resume, rehome)
        if rehomed is not None:
            yield Emit(Rehomed(iterations=rehomed.iterations, residual=rehomed.residual))
        rng.bit_generator.state = resume.rng_state
        beta, epoch, done, totals = resume.beta, resume.epoch, resume.done, resume.totals
    if monitor is not None and monitor.healthy is None:
        monitor.healthy = trainer.state.targets.copy()
    while epoch <= epochs:
        beta = yield from _epoch(
            trainer, schedule, epoch, epochs, beta, rng, done, totals, snapshot_every, monitor, best
        )
        beta = beta_of_epoch(schedule, trainer.protocol.method.beta, epoch + 1, beta)
        epoch, done, totals = epoch + 1, 0, EpochTotals()


def _epoch(
    trainer: Trainer,
    schedule: Schedule,
    epoch: int,
    last: int,
    beta: float,
    rng: np.random.Generator,
    done: int,
    totals: EpochTotals,
    snapshot_every: int,
    monitor: StabilityMonitor | None = None,
    best: Best | None = None,
) -> Generator[RunMessage, Any, float]:
    """One epoch from its ``done``-th sample, with the running ``totals`` so far; returns its last β."""
    rng_state = rng.bit_generator.state  # before the epoch's order is drawn: a resumed epoch draws it again
    t0 = time.perf_counter()
    wall0 = totals.wall_s
    n = len(trainer.data.y_train)
    order = rng.permutation(n) if schedule.shuffle else np.arange(n)
    for k in range(done, n):
        ev = yield TrainSample(epoch, k, int(order[k]), beta)
        totals.add(ev.record)
        totals.wall_s = wall0 + time.perf_counter() - t0
        ev.checkpoint = trainer.checkpoint(epoch, k + 1, beta, rng_state, totals)
        yield Emit(SampleDone(sample=ev, snapshot=ev.samples_done % snapshot_every == 0))
        if monitor is not None:
            monitor.observe(ev.record)
            # every N samples, and at once after a sample in which the twin jumped from an unstable equilibrium
            if ev.samples_done % monitor.every == 0 or (yield UnstableJumps()):
                beta = yield from monitor.check(
                    epoch,
                    ev.samples_done,
                    trainer.state.targets,
                    beta,
                    lambda b, k=k: trainer.checkpoint(epoch, k + 1, b, rng_state, totals),
                    examples=window_examples(order, k, monitor.every),
                )
    evaluation = None
    if evaluated(schedule, epoch, last):
        evaluation = yield Evaluate(epoch)
        yield from _validate(trainer, best, epoch)
    next_beta = beta_of_epoch(schedule, trainer.protocol.method.beta, epoch + 1, beta)
    m = trainer.epoch_metrics(epoch, beta, totals, evaluation, wall0 + time.perf_counter() - t0)
    m.checkpoint = trainer.checkpoint(epoch + 1, 0, next_beta, rng.bit_generator.state, EpochTotals())
    yield Emit(EpochDone(metrics=m))
    if schedule.checkpoint_every is not None and epoch % schedule.checkpoint_every == 0:
        yield Emit(ParamsSaved(epoch=epoch, theta=trainer.state.targets.copy()))
    return beta


def _take_up(
    trainer: Trainer, origin: Origin, found: EngineState, rng: np.random.Generator
) -> Generator[RunMessage, Any, tuple[float, int]]:
    """A child run takes up its origin: θ* and knobs set, homeostasis to them; returns (β, epoch) from there."""
    n = len(trainer.data.y_train)
    for _ in range(origin.epoch):  # the order generator as it stands at the next epoch's start
        if trainer.protocol.schedule.shuffle:
            rng.permutation(n)
    knobs = found.knobs if origin.knobs is None else np.array(origin.knobs, dtype=float)
    state = EngineState(targets=np.array(origin.targets, dtype=float), knobs=knobs, memory=found.memory)
    cp = Checkpoint(
        origin.epoch + 1, 0, origin.samples_done, origin.beta, rng.bit_generator.state, EpochTotals(), state
    )
    rehomed = yield Resume(cp, True)
    if rehomed is not None:
        yield Emit(Rehomed(iterations=rehomed.iterations, residual=rehomed.residual))
    return origin.beta, origin.epoch + 1


def window_examples(order: np.ndarray, k: int, every: int) -> tuple[int, ...]:
    """The training examples a stability reading after the epoch's ``k``-th sample looks at, besides the first 20.

    Those the last ``every`` samples of this epoch trained on (at most ``WINDOW_READS``, evenly
    spread): ρ differs from one input to the next, and the inputs being trained on are the
    ones whose clamped phases would jump. Derived from the epoch's order, not from what this
    process saw, so that a resumed run reads the same examples as an uninterrupted one.
    """
    window = order[max(0, k + 1 - every) : k + 1]
    pick = np.linspace(0, len(window) - 1, min(len(window), WINDOW_READS)).round().astype(int)
    return tuple(int(i) for i in window[np.unique(pick)])


def _validate(trainer: Trainer, best: Best | None, epoch: int) -> RunPlan:
    """With a validation split, evaluate it; new best parameters are emitted (kept as ``best.npz``)."""
    found = yield from _validated(trainer, best, epoch)
    if found is not None:
        yield Emit(found)


def _validated(trainer: Trainer, best: Best | None, epoch: int) -> Generator[RunMessage, Any, BestParams | None]:
    """With a validation split, evaluate it; returns the event of new best parameters, or None."""
    if best is None or trainer.data.x_val is None:
        return None
    val = yield Validate(epoch)
    theta = trainer.state.targets
    if not best.remember(theta, val):
        return None
    return BestParams(
        epoch=epoch,
        samples_done=trainer.samples_done,
        accuracy=float(val.accuracy),
        loss=float(val.loss),
        theta=theta.copy(),
    )
