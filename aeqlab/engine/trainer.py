"""The steps of a run as plans over the bench: take the bench as found, resume, train a sample, evaluate.

The trainer knows the protocol's method (from the registry), the data and the
bench's roles; it never loops over epochs, records anything or cleans up: the run
engine (:mod:`aeqlab.runs.engine`) executes these plans, decides when to stop and
puts every source in its safe state on the way out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from aeqlab.datasets import Split
from aeqlab.engine.bench import Bench
from aeqlab.engine.feedback import SecantGains
from aeqlab.engine.methods import registry
from aeqlab.engine.methods.aeqprop import predict
from aeqlab.engine.methods.base import Oracle, SampleContext, SampleRecord
from aeqlab.engine.methods.phases import FeedbackMemory, PhaseResult, run_phase
from aeqlab.engine.plan import Plan, Read, Set, Setpoints, Switch, execute, phase_seconds
from aeqlab.engine.records import Checkpoint, EpochMetrics, EpochTotals, Evaluation, SampleEvent, r_squared
from aeqlab.engine.state import EngineState
from aeqlab.errors import InputError, Interrupted
from aeqlab.protocol import Protocol


class Trainer:
    """A protocol's method on a bench and a data split, one step at a time.

    Parameters
    ----------
    protocol, bench, data
        What to run, where, on what.
    oracle
        ``oracle(x, y) -> ε⊙∇L`` for methods that need one (``exact``); only a
        composition root that owns a twin can supply it (see :mod:`aeqlab.backends`).
    target
        What plans are executed against (default: the bench; a recorder in front of
        it for ``aeqlab plan``).
    """

    def __init__(
        self, protocol: Protocol, bench: Bench, data: Split, oracle: Oracle | None = None, target: Any = None
    ) -> None:
        self.protocol = protocol
        self.bench = bench
        self.data = data
        self.oracle = oracle
        self.target = bench if target is None else target
        self.method = registry.get(protocol.method.name)
        self.state: EngineState | None = None
        self.samples_done = 0
        self.rehome_result: PhaseResult | None = None
        self._check_widths()
        self.targets = data.targets(data.y_train)

    def _check_widths(self) -> None:
        """Refuse data whose width is not the bench's (a CSV longer than validate reads is checked only here)."""
        d = self.data
        for role, need, what in (
            ("inputs", d.x_train.shape[1], "features"),
            ("outputs", d.n_classes, "targets" if d.task == "regression" else "classes"),
        ):
            have = self.bench.roles[role].size
            if have != need:
                raise InputError(
                    f"data set {d.name} has {need} {what}, but the bench has {have} {role}",
                    where="dataset",
                    hint=f"give roles.{role} {need} channels, or change the data",
                )

    def require_oracle(self) -> None:
        """Refuse a method that needs the twin's oracle on a bench without one (before anything moves)."""
        if self.method.needs_oracle and self.oracle is None:
            raise InputError(
                f"method {self.method.name} needs the twin's gradient oracle, and this bench has none",
                where="method.name",
                hint="run it on the twin with --sim, or choose aeqprop or spsa",
            )

    def start(self) -> EngineState:
        """Execute :meth:`start_plan` on the target (tools and tests; a run does it through the run engine)."""
        return execute(self.start_plan(), self.target)

    def resume(self, checkpoint: Checkpoint, rehome: bool = True) -> PhaseResult | None:
        """Execute :meth:`resume_plan` on the target (tools and tests)."""
        return execute(self.resume_plan(checkpoint, rehome), self.target)

    # ------------------------------------------------------------------ plans
    def start_plan(self) -> Plan[EngineState]:
        """Take the bench as found: the knob setpoints, nudges at zero and on, θ read (the first targets)."""
        knobs = yield Setpoints("knobs")
        n = self.bench.roles["nudges"].size
        yield Set("nudges", np.zeros(n))
        yield Switch("nudges", True)
        targets = yield Read("params")
        self.state = EngineState(targets=targets, knobs=knobs, memory=self.fresh_memory())
        return self.state

    def resume_plan(self, checkpoint: Checkpoint, rehome: bool = True) -> Plan[PhaseResult | None]:
        """Take up a checkpoint's state on this bench.

        With ``rehome`` (a bench, whose physics went on without us) the knobs are set
        to their checkpointed values and homeostasis brings the measured parameters
        back to the checkpointed targets before training goes on. Without it (a twin
        whose own snapshot was restored) nothing but the nudges is touched, so the
        run continues bit for bit.
        """
        self.state = checkpoint.state
        self.state.memory.nudge_bounds = self.role_bounds("nudges")  # from this bench: not checkpointed
        self.samples_done = checkpoint.samples_done
        yield Set("nudges", np.zeros(self.bench.roles["nudges"].size))
        yield Switch("nudges", True)
        if not rehome:
            return None
        m = self.protocol.method
        yield Set("knobs", self.state.knobs)
        res = yield from run_phase(
            self.state.memory, self.state.knobs, self.state.targets, None, m.homeostasis, m.tracking, m.settle
        )
        self.state.knobs = res.knobs
        self.rehome_result = res
        return res

    def sample_plan(self, x: np.ndarray, y: np.ndarray, beta: float) -> Plan[SampleRecord]:
        """The plan of one training sample for the protocol's method."""
        ctx = SampleContext(self.protocol.method, self.samples_done, self.oracle)
        return self.method.sample(self.state, x, y, beta, ctx)

    def predict_plan(self, x: np.ndarray) -> Plan[np.ndarray]:
        return predict(self.state, x, self.protocol.method)

    # ------------------------------------------------------------------ steps
    def train_one(self, epoch: int, index: int, example: int, beta: float) -> SampleEvent:
        """Train on training example ``example`` (the ``index``-th of ``epoch``); the event has no checkpoint yet."""
        timeline: list = []
        ts = time.perf_counter()
        take = getattr(self.bench, "take_compliance", None)  # a bench knows; a stand-in may not
        if take is not None:
            take()  # trips before this sample (the start, an evaluation) are not its own
        plan = self.sample_plan(self.data.x_train[example], self.targets[example], beta)
        rec = execute(plan, self.target, timeline=timeline)
        tripped = take() if take is not None else None
        seconds = time.perf_counter() - ts
        self.samples_done += 1
        spent = phase_seconds(timeline)
        spent.pop("start", None)
        return SampleEvent(
            epoch,
            index,
            len(self.data.y_train),
            rec,
            example=example,
            label=int(self.data.y_train[example]) if self.data.task == "classification" else -1,
            target=self.targets[example],
            samples_done=self.samples_done,
            seconds=seconds,
            phase_seconds={p: spent.get(p, 0.0) for p in self.method.phases} | spent,
            compliance_tripped=tripped,
        )

    def evaluate(self, x: np.ndarray, labels: np.ndarray, should_stop: Callable[[], bool] | None = None) -> Evaluation:
        """Predictions for a data set: accuracy (a regression's R²) and mean loss; stoppable between predictions."""
        method = self.protocol.method
        targets = self.data.targets(labels)
        correct, loss = 0, 0.0
        for xi, ti, li in zip(x, targets, labels):
            if should_stop is not None and should_stop():
                raise Interrupted(f"stopped during an evaluation, after training sample {self.samples_done}")
            out = execute(predict(self.state, xi, method), self.target)
            if self.data.task == "classification":
                correct += int(np.argmax(out) == li)
            loss += 0.5 * float(np.sum((out - ti) ** 2))
        if self.data.task == "regression":  # the accuracy of a regression is its R²
            return Evaluation(r_squared(loss, targets), loss / len(labels))
        return Evaluation(correct / len(labels), loss / len(labels))

    def epoch_metrics(
        self, epoch: int, beta: float, totals: EpochTotals, evaluation: Evaluation | None, wall_s: float
    ) -> EpochMetrics:
        """An epoch's figures from its running totals and (when it was evaluated) its test evaluation."""
        n = len(self.data.y_train)
        train_acc = r_squared(totals.loss, self.targets) if self.data.task == "regression" else totals.correct / n
        return EpochMetrics(
            epoch=epoch,
            samples=self.samples_done,
            beta=beta,
            train_accuracy=train_acc,
            train_loss=totals.loss / n,
            test_accuracy=None if evaluation is None else evaluation.accuracy,
            test_loss=None if evaluation is None else evaluation.loss,
            homeostasis_iterations=totals.iterations / n,
            homeostasis_unconverged=totals.unconverged,
            saturated=totals.saturated,
            step_norm=totals.step / n,
            wall_s=wall_s,
        )

    def checkpoint(self, epoch: int, done: int, beta: float, rng_state: dict, totals: EpochTotals) -> Checkpoint:
        return Checkpoint(epoch, done, self.samples_done, beta, rng_state, totals, self.state)

    def role_bounds(self, role: str) -> tuple[np.ndarray, np.ndarray]:
        """Per channel of a source role, the model-unit window its role and instrument limits leave."""
        b = self.bench
        w = b.roles[role]
        lo, hi = w.model_bounds
        low, high = np.full(w.size, lo), np.full(w.size, hi)
        for inst, pos, ch in w.groups:
            obj = b.instruments[inst]
            table = getattr(obj, "current_limits" if role == "nudges" else "output_limits", None)
            if table is None:
                continue
            a, c = w.to_model(table.low[ch]), w.to_model(table.high[ch])
            low[pos] = np.maximum(low[pos], np.minimum(a, c))
            high[pos] = np.minimum(high[pos], np.maximum(a, c))
        return low, high

    def fresh_memory(self) -> FeedbackMemory:
        low, high = self.role_bounds("knobs")
        return FeedbackMemory(
            knob_gains=SecantGains(low.size, 1.0, min_step=10 * self.protocol.method.homeostasis.tolerance),
            susceptibility=np.eye(self.bench.roles["nudges"].size),
            knob_low=low,
            knob_high=high,
            nudge_bounds=self.role_bounds("nudges"),
            dither_seed=int(self.protocol.seed),
        )
