"""The run engine: executes a run plan, tells its subscribers, owns stopping and the way out.

Modelled on the idea of Bluesky's RunEngine, one level above the sample plans:

* it executes the run messages of :mod:`aeqlab.runs.messages` (start or resume,
  samples, evaluations) through the :class:`~aeqlab.engine.trainer.Trainer`, and hands
  every event a plan emits (committed samples, epochs, checkpoints) to its
  subscribers in order (the journal, the live view, a notebook's callbacks): nothing
  else records;
* it stops on the first Ctrl-C or SIGTERM (deferred to the next sample boundary; a
  second Ctrl-C stops at once), on the caller's :class:`threading.Event`, or when a
  subscriber calls ``event.request_stop()``;
* whatever happens, it ends in one ``finally``: every source to its safe state (shielded
  from further Ctrl-C), then a :class:`~aeqlab.runs.events.Closed` event to every
  subscriber, then the signal handlers it found are put back.

A subscriber's exception (a journal that cannot write: disk full) stops the run through
the same way out, and is the run's error; so does a nudge source's tripped compliance
under ``safety.on_compliance: fault`` (the bench raises it at the nudge write; the error
says which sample, left uncommitted, or which step it cut).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

from aeqlab.engine.plan import execute
from aeqlab.engine.records import Evaluation, SampleEvent
from aeqlab.engine.trainer import Trainer
from aeqlab.errors import AeqlabError, ComplianceTripped, Interrupted, StabilityStop
from aeqlab.runs.events import Closed, Opened, RunEvent
from aeqlab.runs.interrupts import StopRequest, deferred_interrupts, shielded
from aeqlab.runs.messages import (
    Emit,
    Evaluate,
    Halt,
    MeasureStability,
    Resume,
    Rollback,
    Start,
    TrainSample,
    TwinReading,
    UnstableJumps,
    Validate,
)
from aeqlab.runs.plans import RunPlan

Subscriber = Callable[[RunEvent], None]


class RunEngine:
    """Runs one session of a run.

    Parameters
    ----------
    trainer
        The protocol's method on the bench and the data; its target receives every
        instrument message.
    stop_event
        Set it (from any thread) to stop the run after the sample in flight.
    handle_signals
        Install the deferred Ctrl-C/SIGTERM handlers while the run goes (only possible
        in the main thread; the previous handlers are restored afterwards).
    notify
        Called with short messages for a person (a signal arrived, going safe).
    stability, scale_epsilon, unstable_jumps
        A twin's stability ratio over some inputs, its ε scaling and the unstable jumps
        it saw since last asked (the stability monitor's reading and rollback); None on
        a bench.
    """

    def __init__(
        self,
        trainer: Trainer,
        *,
        stop_event: threading.Event | None = None,
        handle_signals: bool = True,
        notify: Callable[[str], None] | None = None,
        stability: Callable[[np.ndarray], float] | None = None,
        scale_epsilon: Callable[[float], None] | None = None,
        unstable_jumps: Callable[..., tuple[int, float]] | None = None,  # peek=True takes nothing
    ) -> None:
        self.trainer = trainer
        self.stability = stability
        self.unstable_jumps = unstable_jumps
        self.scale_epsilon = scale_epsilon
        self.stop = StopRequest(stop_event)
        self.handle_signals = handle_signals
        self.notify = notify
        self.subscribers: list[Subscriber] = []

    def subscribe(self, fn: Subscriber) -> Subscriber:
        """Add a subscriber; it receives every event, in order, in the run's thread."""
        self.subscribers.append(fn)
        return fn

    def request_stop(self, reason: str = "stopped on request") -> None:
        self.stop.request(reason)

    # ------------------------------------------------------------------ running
    def __call__(self, plan: RunPlan, opened: Opened) -> Closed:
        """Execute ``plan`` (one session) and return how it ended; never raises for a run's failure."""
        t0 = time.perf_counter()
        status, error, code = "failed", None, 1
        last_targets = None
        failure: BaseException | None = None
        with deferred_interrupts(self.stop, self.notify, self.handle_signals):
            try:
                self._emit(opened)
                last_targets = self._execute(plan)
                status, code = "completed", 0
            except (Interrupted, KeyboardInterrupt) as exc:
                failure = exc
                status, code = "interrupted", exc.exit_code if isinstance(exc, AeqlabError) else 130
                error = exc.one_line() if isinstance(exc, AeqlabError) else "stopped at once (second Ctrl-C)"
            except AeqlabError as exc:
                failure = exc
                error, code = exc.one_line(), exc.exit_code
            except Exception as exc:  # noqa: BLE001 - recorded in the journal, then reported as one line
                failure = exc
                error = f"{type(exc).__name__}: {exc}"
            finally:
                plan.close()
                with shielded(self.notify, self.handle_signals):
                    safe = self._safe_state()
                    closed = Closed(
                        status=status,
                        error=error,
                        exit_code=code,
                        safe_state=safe,
                        samples_done=self.trainer.samples_done,
                        wall_s=time.perf_counter() - t0,
                        targets=self._committed if self._committed is not None else last_targets,
                        exception=failure,
                    )
                    self._close(closed)
        return closed

    _committed = None  # θ* of the last committed step

    def _execute(self, plan: RunPlan):
        result = None
        msg = next(plan)
        while True:
            if isinstance(msg, Emit):
                self._emit(msg.event)
                cp = getattr(getattr(msg.event, "sample", None), "checkpoint", None) or _checkpoint_of(msg.event)
                if cp is not None:
                    self._committed = cp.state.targets.copy()
                result = None
            else:
                self._check_stop()
                try:
                    result = self._step(msg)
                except ComplianceTripped as exc:  # safety.on_compliance: fault, raised at the nudge write
                    raise ComplianceTripped(exc.what, during=self._doing(msg), where=exc.where, hint=exc.hint) from None
            try:
                msg = plan.send(result)
            except StopIteration:
                return self._committed

    def _stability(self, x: np.ndarray, examples: tuple[int, ...]) -> float:
        """ρ over the first 20 training inputs and the given examples (read 20 at a time, the largest)."""
        if not examples:
            return float(self.stability(x))
        rest = [i for i in dict.fromkeys(examples) if i >= 20]
        chunks = [x[:20]] + [x[rest[i : i + 20]] for i in range(0, len(rest), 20)]
        return max(float(self.stability(c)) for c in chunks if len(c))

    def _step(self, msg):
        trainer = self.trainer
        if isinstance(msg, TrainSample):
            result: SampleEvent = trainer.train_one(msg.epoch, msg.index, msg.example, msg.beta)
        elif isinstance(msg, Evaluate):
            data = trainer.data
            result: Evaluation = trainer.evaluate(data.x_test, data.y_test, self.stop)
        elif isinstance(msg, Validate):
            data = trainer.data
            result = trainer.evaluate(data.x_val, data.y_val, self.stop)
        elif isinstance(msg, MeasureStability):
            result = None
            if self.stability is not None:
                rho = self._stability(trainer.data.x_train, msg.examples)
                jumps, jump_rho = self.unstable_jumps() if self.unstable_jumps is not None else (0, 0.0)
                result = TwinReading(rho, jumps, jump_rho)
        elif isinstance(msg, UnstableJumps):
            result = 0 if self.unstable_jumps is None else self.unstable_jumps(peek=True)[0]
        elif isinstance(msg, Rollback):
            trainer.state.targets = np.array(msg.targets, dtype=float)
            if msg.epsilon_factor != 1.0 and self.scale_epsilon is not None:
                self.scale_epsilon(msg.epsilon_factor)
            result = None
        elif isinstance(msg, Halt):
            raise StabilityStop(f"{msg.reason}, after training sample {trainer.samples_done}")
        elif isinstance(msg, Start):
            trainer.require_oracle()
            result = execute(trainer.start_plan(), trainer.target)
        elif isinstance(msg, Resume):
            trainer.require_oracle()
            result = execute(trainer.resume_plan(msg.checkpoint, msg.rehome), trainer.target)
        else:
            raise TypeError(f"unknown run message {msg!r}")
        return result

    def _doing(self, msg) -> str:
        """What a run message was doing, for an error that stopped it."""
        if isinstance(msg, TrainSample):
            return f"training sample {self.trainer.samples_done + 1} of epoch {msg.epoch}, which is not committed"
        if isinstance(msg, Evaluate):
            return f"the evaluation after epoch {msg.epoch}" if msg.epoch else "the evaluation before training"
        return "the resume" if isinstance(msg, Resume) else "the start"

    def _check_stop(self) -> None:
        if self.stop.requested:
            reason = self.stop.reason
            what = "stopped" if reason in ("interrupted", None) else reason
            raise Interrupted(f"{what} after training sample {self.trainer.samples_done}")

    def _emit(self, event: RunEvent) -> None:
        event._stop = self.stop.request
        for fn in self.subscribers:
            fn(event)

    def _close(self, closed: Closed) -> None:
        """The closing event reaches every subscriber, even when one of them fails."""
        closed._stop = self.stop.request
        errors = []
        for fn in self.subscribers:
            try:
                fn(closed)
            except Exception as exc:  # noqa: BLE001 - every subscriber must get its chance to finish
                errors.append(f"{type(exc).__name__}: {exc}")
        if errors and closed.error is None:
            closed.status, closed.exit_code = "failed", 1
            closed.error = "; ".join(errors)

    def _safe_state(self) -> str:
        try:
            failures = self.trainer.bench.safe_state()
        except Exception as exc:  # noqa: BLE001 - a bench must report, not raise; say so if it did
            return f"unknown ({type(exc).__name__}: {exc})"
        return "safe" if not failures else "; ".join(failures)


def _checkpoint_of(event: RunEvent):
    for name in ("evaluation", "metrics"):
        obj = getattr(event, name, None)
        if obj is not None:
            return obj.checkpoint
    return None
