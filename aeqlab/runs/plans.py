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
from typing import Any

import numpy as np

from aeqlab.engine.records import Checkpoint, EpochTotals
from aeqlab.engine.trainer import Trainer
from aeqlab.protocol import Schedule
from aeqlab.runs.events import EpochDone, InitialEvaluation, ParamsSaved, Rehomed, SampleDone
from aeqlab.runs.messages import Emit, Evaluate, Resume, RunMessage, Start, TrainSample, Validate
from aeqlab.runs.stability import Best, BestParams, StabilityMonitor

RunPlan = Generator[RunMessage, Any, None]


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
) -> RunPlan:
    """The plan of a run up to epoch ``epochs``, from the start or from a checkpoint.

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
    """
    schedule = trainer.protocol.schedule
    rng = np.random.default_rng(seed)
    best = monitor.best if monitor is not None else Best()
    if resume is None:
        yield Start()
        trainer.state.memory.dither_seed = int(seed)  # the knob dither follows the run's seed, as the order does
        initial = yield Evaluate(0)
        beta, epoch, done, totals = beta_of_epoch(schedule, trainer.protocol.method.beta, 1), 1, 0, EpochTotals()
        initial.checkpoint = trainer.checkpoint(1, 0, beta, rng.bit_generator.state, totals)
        yield Emit(InitialEvaluation(evaluation=initial, knobs=trainer.state.knobs.copy()))
        yield from _validate(trainer, best, 0)
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
            if ev.samples_done % monitor.every == 0:
                beta = yield from monitor.check(
                    epoch,
                    ev.samples_done,
                    trainer.state.targets,
                    beta,
                    lambda b, k=k: trainer.checkpoint(epoch, k + 1, b, rng_state, totals),
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


def _validate(trainer: Trainer, best: Best | None, epoch: int) -> RunPlan:
    """With a validation split, evaluate it; new best parameters are emitted (kept as ``best.npz``)."""
    if best is None or trainer.data.x_val is None:
        return
    val = yield Validate(epoch)
    theta = trainer.state.targets
    if best.remember(theta, val):
        yield Emit(
            BestParams(
                epoch=epoch,
                samples_done=trainer.samples_done,
                accuracy=float(val.accuracy),
                loss=float(val.loss),
                theta=theta.copy(),
            )
        )
